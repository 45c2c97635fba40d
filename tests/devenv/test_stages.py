"""The stage runner of scripts/e2e colours its headers only on a terminal, and never under NO_COLOR."""

from __future__ import annotations

import io

import pytest

from devenv import stages


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("stream", "no_color", "coloured"), [
    (Terminal, None, True), (Terminal, "1", False), (io.StringIO, None, False),
])
def test_stage_headers_are_coloured_only_on_a_terminal(monkeypatch, stream, no_color, coloured):
    out = stream()
    monkeypatch.setattr("sys.stdout", out)
    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)
    stages.StageRunner().run([("say hello", lambda: None)])
    text = out.getvalue()
    assert "==> [1/1] say hello" in text
    assert ("\033[" in text) is coloured
