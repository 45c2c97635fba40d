"""docs/cli.md lists every option of both tools: the glossary cannot drift from the parsers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
GLOSSARY = (REPO_ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
AI_APP_VERBS = ["serve", "fetch-model", "publish-model", "check-model", "train"]
ENVBOT_VERBS = ["update", "promote", "rollback", "status", "history", "diff", "verify", "metrics", "dashboard"]
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


def options_in_help(*command: str) -> set[str]:
    done = subprocess.run([*command, "--help"], capture_output=True, text=True, cwd=REPO_ROOT, check=True,
                          timeout=60)
    section = done.stdout.split("options:", 1)[-1]
    return set(OPTION.findall(section)) - {"--help"}


def documented() -> set[str]:
    rows = [line for line in GLOSSARY.splitlines() if line.startswith("| `") or line.startswith("| `FILE")]
    return {option for row in rows for option in OPTION.findall(row.split("|")[1])}


@pytest.mark.parametrize("verb", AI_APP_VERBS)
def test_every_ai_app_option_is_in_the_glossary(verb: str) -> None:
    assert options_in_help(sys.executable, "-m", "app", verb) - documented() == set()


@pytest.mark.parametrize("verb", ENVBOT_VERBS)
def test_every_envbot_option_is_in_the_glossary(verb: str) -> None:
    assert options_in_help(sys.executable, "-m", "bot.main", verb) - documented() == set()


def test_every_devenv_image_option_is_in_the_glossary() -> None:
    hidden_defaults = {"--tag", "--base-image", "--revision"}  # build plumbing, described by --help
    assert options_in_help(sys.executable, "-m", "devenv.image") - documented() - hidden_defaults == set()


def test_the_glossary_lists_no_option_that_no_tool_has() -> None:
    every = set()
    for verb in AI_APP_VERBS:
        every |= options_in_help(sys.executable, "-m", "app", verb)
    for verb in ENVBOT_VERBS:
        every |= options_in_help(sys.executable, "-m", "bot.main", verb)
    every |= options_in_help(sys.executable, "-m", "devenv.image") | {"--version"}
    assert documented() - every == set()
