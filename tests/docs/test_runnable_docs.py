"""Every shell command in README.md and docs/ that can run here is run here.

Fenced shell blocks carry a tag after the language saying what they need:
- `runnable`: runs on this machine against the local stand-ins: executed below, in order per
  document, with bash -euo pipefail, in a scratch workspace that mirrors the repository (so the
  paths in the docs work) and the venv's tools on PATH;
- `e2e`: the local delivery run (`scripts/e2e`), run by tests/e2e;
- `suite`: the test suite itself (`scripts/test`);
- `cloud`: needs an Azure subscription, an AKS cluster or a forge (`az`, `kubectl`, `argocd`);
- `placeholders`: a reference card with `<values>` to fill in.
An untagged shell block fails the test: whoever adds one decides which kind it is. A runnable
block tagged `needs-torch` as well is skipped where PyTorch is not installed (scripts/bootstrap
installs its CPU build where a wheel is reachable).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
SHELLS = {"sh", "bash", "shell", "console"}
TAGS = {"runnable", "e2e", "suite", "cloud", "placeholders"}
FENCE = re.compile(r"^(`{3,})(.*)$")
ACTIVATE = re.compile(r"^\. \.venv/bin/activate$", re.M)
BLOCK_TIMEOUT = 600  # seconds; the slowest block (a PyTorch export on 2 shared cores) takes ~30 s
# Made by scripts/bootstrap, not tracked: linked into the scratch workspace.
INSTALLED = [".venv", "devenv/node_modules"]


@dataclass(frozen=True)
class Block:
    document: Path
    line: int
    language: str
    tags: frozenset[str]
    text: str

    def __str__(self) -> str:
        return f"{self.document.relative_to(REPO_ROOT)}:{self.line}"


def blocks(document: Path) -> list[Block]:
    found, lines = [], document.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        fence, info = opening.groups()
        end = next((j for j in range(index + 1, len(lines)) if lines[j].startswith(fence)
                    and not lines[j].strip("`")), len(lines))
        words = info.split()
        if words and words[0] in SHELLS:
            found.append(Block(document, index + 1, words[0], frozenset(words[1:]), "\n".join(lines[index + 1:end])))
        index = end + 1
    return found


ALL_BLOCKS = [block for document in DOCUMENTS for block in blocks(document)]
RUNNABLE_DOCUMENTS = sorted({b.document for b in ALL_BLOCKS if "runnable" in b.tags})


def test_every_shell_block_says_what_it_needs() -> None:
    untagged = [f"{b}: ```{b.language} {' '.join(sorted(b.tags))}" for b in ALL_BLOCKS if len(b.tags & TAGS) != 1]
    assert untagged == [], f"tag each shell block with one of {sorted(TAGS)}"


def test_placeholder_blocks_have_placeholders_and_runnable_ones_do_not() -> None:
    for block in ALL_BLOCKS:
        if "placeholders" in block.tags:
            assert re.search(r"<[a-z][^>]*>", block.text), f"{block}: no <placeholder>: make it runnable"
        if "runnable" in block.tags:
            assert not re.search(r"<[a-z][a-z-]*>", block.text), f"{block}: a <placeholder> cannot run"


def test_runnable_blocks_that_use_the_tools_activate_the_venv_or_their_page_says_to() -> None:
    tools = re.compile(r"^(envbot|ai-app|python) ", re.M)
    for block in ALL_BLOCKS:
        if "runnable" in block.tags and tools.search(block.text) and not ACTIVATE.search(block.text):
            assert ". .venv/bin/activate" in block.document.read_text(encoding="utf-8"), (
                f"{block}: runs the tools but neither it nor its page activates the venv")


def test_there_are_runnable_blocks_in_the_readme_and_the_guides() -> None:
    names = {d.name for d in RUNNABLE_DOCUMENTS}
    assert {"README.md", "onboard-a-model.md", "envbot.md"} <= names


def workspace_for(tmp_path: Path) -> Path:
    """A copy of the tracked files (what a clone has) plus links to what scripts/bootstrap installed:
    the blocks run there, so nothing they write lands in the repository."""
    work = tmp_path / "repo"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, work / name)
    for name in INSTALLED:
        if (REPO_ROOT / name).exists():
            (work / name).parent.mkdir(parents=True, exist_ok=True)
            (work / name).symlink_to(REPO_ROOT / name)
    # A clone is a git repository: verbs that read history (envbot metrics) run in it.
    git = ["git", "-c", "user.name=Docs Reader", "-c", "user.email=reader@example.com", "-C", str(work)]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "clone"], check=True)
    if not (work / ".venv").exists():
        # Tools installed another way (CI's setup-python): an activate script with the same effect.
        (work / ".venv" / "bin").mkdir(parents=True)
        (work / ".venv" / "bin" / "activate").write_text(f'export PATH="{Path(sys.executable).parent}:$PATH"\n')
    return work


def block_env(home: Path, venv_on_path: bool = True) -> dict[str, str]:
    """VENV_ON_PATH False: the tools are found only if the block activates the venv itself, as written."""
    # Nothing that would reach a real forge, registry, store or cluster; a git identity for commits.
    dropped = ("ENVBOT_", "GITHUB_", "AZURE_", "ARGOCD_", "SYSTEM_ACCESSTOKEN", "AWS_", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    venv_bin = str(Path(sys.executable).parent)
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p).resolve() != Path(venv_bin).resolve()]
    return env | {
        "PATH": os.pathsep.join([venv_bin, *path] if venv_on_path else path),
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Docs Reader", "GIT_AUTHOR_EMAIL": "reader@example.com",
        "GIT_COMMITTER_NAME": "Docs Reader", "GIT_COMMITTER_EMAIL": "reader@example.com",
        "NO_COLOR": "1",
        # A command that would reach beyond this machine (the template pins Azure hosts) fails at a
        # closed local port instead of sending anything out.
        "HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
    }


@pytest.mark.parametrize("document", RUNNABLE_DOCUMENTS, ids=lambda d: str(d.relative_to(REPO_ROOT)))
def test_runnable_blocks_run(document: Path, tmp_path: Path) -> None:
    work = workspace_for(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    # Twice: a reader who runs a walkthrough again (after fixing a typo, say) must not hit "already exists".
    for block in [b for b in blocks(document) if "runnable" in b.tags] * 2:
        if "needs-torch" in block.tags and importlib.util.find_spec("torch") is None:
            continue  # said in the module docstring; the PyTorch test of check-model says it too
        # A block that activates the venv must work from a shell where nothing else put the tools on PATH
        # (the README's everyday commands, as written); the others rely on the activation their page asks for.
        activates = ACTIVATE.search(block.text) is not None
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", block.text], cwd=work,
                              env=block_env(home, venv_on_path=not activates),
                              capture_output=True, text=True, timeout=BLOCK_TIMEOUT, check=False)
        assert done.returncode == 0, (f"{block} failed ({done.returncode}):\n"
                                      f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
