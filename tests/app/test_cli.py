"""ai-app's shared CLI behaviour: --version, renamed options, the catch-all error line, progress on a
TTY only; and scripts/bootstrap's colour only on a TTY."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from app import main as app_main
from app.cli import tool_version
from app.training import TrainedModel
from tests.fixtures.models import ModelStore

REPO_ROOT = Path(__file__).resolve().parents[2]


def ai_app(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app", *args], capture_output=True, text=True, cwd=REPO_ROOT,
                          env={**os.environ, **(env or {})}, check=False, timeout=300)


def test_version_is_the_distributions() -> None:
    done = ai_app("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"ai-app {tool_version()}"
    assert tool_version() != "unknown"


def test_a_deprecated_spelling_works_and_says_its_replacement(tmp_path: Path) -> None:
    done = ai_app("train", "--out", str(tmp_path), "--model", "iris-logreg", "--version", "3", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["version"] == "3"
    assert done.stderr.splitlines() == ["ai-app train: --model is deprecated, use --model-name",
                                        "ai-app train: --version is deprecated, use --model-version"]
    help_text = ai_app("train", "--help").stdout
    assert "--model-name" in help_text and "--model " not in help_text  # the old spelling is hidden


def test_an_unexpected_error_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                         tmp_path: Path) -> None:
    # A bug in a verb (here: a KeyError deep inside check-model) must not print a traceback.
    from app.commands import check_model

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("probabilities")

    monkeypatch.setattr(check_model, "check_model", broken)
    code = app_main.main(["check-model", str(tmp_path / "m.onnx"), "--samples", str(tmp_path / "s.npz")])
    out, err = capsys.readouterr()
    assert code == 70
    assert err == "ai-app check-model: unexpected error: KeyError: 'probabilities'\n" and out == ""
    code = app_main.main(["check-model", str(tmp_path / "m.onnx"), "--samples", str(tmp_path / "s.npz"), "--json"])
    out, err = capsys.readouterr()
    assert json.loads(out) == {"error": "unexpected error: KeyError: 'probabilities'", "kind": "internal",
                               "exit_code": 70, "type": "KeyError"}


def run_with_stderr_on_a_tty(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """stdout to a pipe, stderr to a pseudo-terminal: what a person sees when piping the output."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=terminal, cwd=REPO_ROOT, env=env, text=True)
    os.close(terminal)
    chunks = []
    while True:
        ready, _, _ = select.select([controller], [], [], 120)
        if not ready:
            process.kill()
            raise AssertionError("no output for 120 s")
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # the terminal closed: the process has exited
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    stdout = process.stdout.read() if process.stdout else ""
    return process.wait(timeout=60), stdout, b"".join(chunks).decode()


def test_publish_progress_only_on_a_terminal(model_store: ModelStore, trained_models: dict[str, TrainedModel]) -> None:
    model = trained_models["iris-logreg"]
    env = {**os.environ, **model_store.env}
    uri = model_store.unique_uri("progress")
    code, stdout, terminal = run_with_stderr_on_a_tty(
        [sys.executable, "-m", "app", "publish-model", str(model.path), "--uri", uri], env)
    assert code == 0, terminal
    assert f"ai-app publish-model: loading {model.path} with onnxruntime" in terminal
    assert f"to {uri}" in terminal
    assert stdout.startswith(f"{uri} sha256:{model.sha256}")
    piped = ai_app("publish-model", str(model.path), "--uri", model_store.unique_uri("piped"), env=model_store.env)
    assert piped.returncode == 0 and piped.stderr == ""


# scripts/bootstrap's own `log` definition, run alone: the whole script would install things.
LOG_ONLY = 'eval "$(sed -n "/^if \\[\\[ -t 2/,/^fi$/p" scripts/bootstrap)"; log ready'


def test_bootstrap_colours_only_a_terminal() -> None:
    assert "if [[ -t 2" in (REPO_ROOT / "scripts" / "bootstrap").read_text()
    piped = subprocess.run(["bash", "-c", LOG_ONLY], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert piped.stderr == "[bootstrap] ready\n"
    code, _, terminal = run_with_stderr_on_a_tty(["bash", "-c", LOG_ONLY], dict(os.environ))
    assert code == 0 and "\033[1m[bootstrap]\033[0m ready" in terminal
    code, _, terminal = run_with_stderr_on_a_tty(["bash", "-c", LOG_ONLY], {**os.environ, "NO_COLOR": "1"})
    assert code == 0 and "\033[" not in terminal and "[bootstrap] ready" in terminal
