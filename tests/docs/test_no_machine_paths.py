"""No path of the machine that wrote a file gets into the repository (benchmark write-ups record their
command line, for instance): a clone elsewhere has none of them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# Home and work directories of the machines this is developed and benchmarked on.
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|root|home/[a-z][\w-]*)/")


def test_tracked_text_files_hold_no_machine_paths() -> None:
    listing = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "-z"], capture_output=True, check=True).stdout
    found = []
    for name in filter(None, listing.decode().split("\0")):
        path = REPO_ROOT / name
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary
        for number, line in enumerate(text.splitlines(), 1):
            if MACHINE_PATH.search(line) and name != "tests/docs/test_no_machine_paths.py":
                found.append(f"{name}:{number}: {line.strip()[:120]}")
    assert not found, "machine paths in tracked files:\n" + "\n".join(found)
