"""`python -m app <verb>`."""

from app.main import main

raise SystemExit(main())
