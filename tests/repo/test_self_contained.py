"""The repository is self-contained: a clone with nothing beside it installs, tests and runs.

Reference data (schemas) comes from packages installed by scripts/bootstrap, never from a folder
beside the checkout (CI's Test stage checks out only this repository).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# Spelt in pieces so that this file does not match itself.
SIBLING = "sha" + "red"
OUTSIDE_REFERENCES = [
    re.compile(r"\.\./" + SIBLING + r"\b"),  # ../<sibling> in a path
    re.compile(r"parents?\b[^\n]{0,40}/\s*[\"']" + SIBLING + r"[\"']"),  # Path(...).parent / "<sibling>"
    re.compile(SIBLING + r"/schemas"),
    re.compile("/wo" + "rk/"),  # paths of a development or benchmark machine
    re.compile("(?<![\\w.])/ro" + "ot/"),
    re.compile("(?<![\\w.])/ho" + "me/[a-z]"),
]


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    files = []
    for name in names.decode().split("\0"):
        path = REPO_ROOT / name
        if not name or not path.is_file() or name.endswith("package-lock.json"):
            continue
        data = path.read_bytes()
        if b"\0" not in data[:4096]:
            files.append(path)
    return files


def test_the_repository_has_tracked_files() -> None:
    assert len(tracked_text_files()) > 50


@pytest.mark.parametrize("pattern", OUTSIDE_REFERENCES, ids=lambda p: p.pattern)
def test_no_file_references_a_folder_outside_the_repository(pattern: re.Pattern[str]) -> None:
    found = []
    for path in tracked_text_files():
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if pattern.search(line):
                found.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}")
    assert found == []


def test_the_check_itself_finds_a_reference() -> None:
    line = 'SCHEMAS = REPO_ROOT.parent / "' + SIBLING + '" / "schemas"'
    assert any(p.search(line) for p in OUTSIDE_REFERENCES)
    assert any(p.search("see ../" + SIBLING + "/x") for p in OUTSIDE_REFERENCES)
