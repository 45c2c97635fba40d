"""Combine the test tiers' results into one exit code and one closing line.

Each tier's pytest wrote a JUnit XML report; a tier that failed, ran no test (pytest's exit 5) or
left no report fails the whole run.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

LOGS = Path(__file__).resolve().parent.parent / ".devenv" / "logs"


def main(args: list[str]) -> int:
    passed = failed = skipped = 0
    rc = 0
    for arg in args:
        name, _, code = arg.partition(":")
        report = LOGS / f"tier-{name}.xml"
        if not report.is_file():
            print(f"tier {name}: no report (pytest exit {code})", file=sys.stderr)
            rc = 1
            continue
        suite = ET.parse(report).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        total, errors, failures, skips = (int(suite.get(k, 0)) for k in ("tests", "errors", "failures", "skipped"))
        passed += total - errors - failures - skips
        failed += errors + failures
        skipped += skips
        if code == "5" or total == 0:
            print(f"tier {name}: pytest collected no tests: failing", file=sys.stderr)
            rc = 1
        elif code != "0":
            print(f"tier {name}: pytest exited {code}", file=sys.stderr)
            rc = 1
    print(f"tests: {passed} passed, {failed} failed, {skipped} skipped")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
