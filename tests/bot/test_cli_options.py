"""Options only on verbs that use them: --dry-run and the commit identity on the verbs that commit, --app on
the verbs that work on one app; any other verb refuses them as bad input (one line, exit 2)."""

from __future__ import annotations

import importlib

import pytest

from bot.commands import VERBS
from bot.errors import BadInput
from bot.main import build_parser


def options_of(verb: str) -> set[str]:
    parser = build_parser()
    verbs = next(action for action in parser._actions if action.dest == "verb")
    return {option for action in verbs.choices[verb]._actions for option in action.option_strings}


@pytest.mark.parametrize("verb", VERBS)
def test_write_and_app_options_only_where_used(verb: str) -> None:
    module = importlib.import_module(f"bot.commands.{verb}")
    options = options_of(verb)
    writes = getattr(module, "WRITES", False)
    assert ({"--dry-run", "--git-name", "--git-email"} <= options) is writes
    assert not writes or "--dry-run" in options
    assert not ({"--dry-run", "--git-name", "--git-email"} & options) or writes
    assert ("--app" in options) is getattr(module, "ONE_APP", True)
    assert {"--repo", "--branch", "--json"} <= options


@pytest.mark.parametrize("args", [["status", "--dry-run"], ["diff", "dev", "prod", "--git-name", "x"],
                                  ["dashboard", "--app", "ai-app"], ["verify", "--dry-run"]])
def test_an_option_a_verb_does_not_use_is_refused(args: list[str]) -> None:
    with pytest.raises(BadInput, match="unrecognized arguments"):
        build_parser().parse_args(args)
