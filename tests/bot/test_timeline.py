"""bot.timeline: the fast pin reader agrees with bot.values.read_pin_text, the definition."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.output import EnvbotError
from bot.timeline import fast_pin_text
from bot.values import read_pin_text
from tests.bot.envrepo import REPO_ROOT

BASE = (REPO_ROOT / "environments" / "prod" / "values.yaml").read_text()
VARIANTS = {
    "repo files": None,
    "unquoted int version": BASE.replace('version: "1"', "version: 1"),
    "quoted int version": BASE.replace('version: "1"', "version: '1'"),
    "quoted float tag": BASE.replace('tag: "1a2b3c4"', 'tag: "1e5"'),
    "escaped quote": BASE.replace('tag: "1a2b3c4"', 'tag: "1\\"2"'),
    "float-looking tag": BASE.replace('tag: "1a2b3c4"', "tag: 1e5"),
    "octal tag (1.2)": BASE.replace('tag: "1a2b3c4"', "tag: 0o17"),
    "yes as tag": BASE.replace('tag: "1a2b3c4"', "tag: yes"),
    "sexagesimal": BASE.replace('tag: "1a2b3c4"', "tag: 1:20"),
    "date version": BASE.replace('version: "1"', "version: 2026-01-01"),
    "single quotes": BASE.replace('tag: "1a2b3c4"', "tag: 'it''s'"),
    "comment after value": BASE.replace('tag: "1a2b3c4"', 'tag: "1a2b3c4"   # the build'),
    "flow mapping": BASE.replace("image:\n  repository: aiappacr.azurecr.io/ai-app\n",
                                 "image: {repository: aiappacr.azurecr.io/ai-app,\n"),
    "anchor": BASE.replace("model:\n", "model: &m\n"),
    "no model": BASE.split("model:")[0] + "resources: {}\n",
    "empty image": "image:\nmodel:\n  name: x\n",
    "CRLF": BASE.replace("\n", "\r\n"),
    "tab indented": BASE.replace("  tag:", "\ttag:"),
    "null digest": BASE.replace('digest: "sha256:', "digest: ~\n  x: \"sha256:"),
    "document start": "---\n" + BASE,
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_fast_reader_agrees_with_read_pin_text(name: str) -> None:
    texts = ([p.read_text() for p in (REPO_ROOT / "environments").glob("*/values.yaml")]
             if VARIANTS[name] is None else [VARIANTS[name]])
    for text in texts:
        try:
            expected = read_pin_text(text, "values.yaml")
        except EnvbotError as exc:
            with pytest.raises(EnvbotError) as raised:
                fast_pin_text(text, "values.yaml")
            assert str(raised.value) == str(exc)
            continue
        assert fast_pin_text(text, "values.yaml") == expected


def test_broken_yaml_reports_like_read_pin_text(tmp_path: Path) -> None:
    text = BASE.replace('tag: "1a2b3c4"', 'tag: "1a2b3c4')
    with pytest.raises(EnvbotError, match=r"values.yaml:\d+: malformed YAML"):
        fast_pin_text(text, "values.yaml")


def test_envbot_written_files_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The shortcut must hold for what envbot writes (quoted "2" versions included), or history reads crawl."""
    import bot.timeline

    def slow(text: str, display: str) -> None:
        raise AssertionError(f"{display} fell back to read_pin_text")

    texts = [p.read_text() for p in (REPO_ROOT / "environments").glob("*/values.yaml")]
    expected = [read_pin_text(text, "values.yaml") for text in texts]
    monkeypatch.setattr(bot.timeline, "read_pin_text", slow)
    assert [fast_pin_text(text, "values.yaml") for text in texts] == expected
