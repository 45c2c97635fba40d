"""app/oip_grpc/codec.py, through tests/app/grpc_codec_checks.py in a pytest process of its own (our
stubs and tritonclient's cannot share one process's descriptor pool; see that module)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHECKS = Path(__file__).with_name("grpc_codec_checks.py")


def test_the_codec_checks_pass_in_their_own_process(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp", str(tmp_path), str(CHECKS)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    # pytest exits 0 when every check collected passed (5 when it collected none); none may be skipped.
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "skipped" not in result.stdout, result.stdout[-2000:]
