"""envbot finds helm the way a newcomer installs it: ENVBOT_HELM, PATH, else beside its own Python."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PROBE = "from bot.helm import helm_binary; print(helm_binary())"


def resolve(env: dict[str, str], python: str = sys.executable) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, "-c", PROBE], env=env, capture_output=True, text=True, check=False,
                          cwd=REPO_ROOT)


def bare_env(**extra: str) -> dict[str, str]:
    # PATH without the venv, as in a shell where it was not activated.
    env = {k: v for k, v in os.environ.items() if k not in ("ENVBOT_HELM", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                                  if Path(p).resolve() != Path(sys.executable).parent.resolve())
    return env | extra


def test_helm_beside_envbots_python_is_found_without_path(helm_bin: str) -> None:
    beside = Path(sys.executable).parent / "helm"
    assert beside.exists(), "scripts/bootstrap installs helm into the venv's bin directory"
    env = bare_env()
    result = resolve(env)
    assert result.returncode == 0, result.stderr
    # A machine-wide helm on PATH wins; otherwise the one in the venv.
    assert result.stdout.strip() == (shutil.which("helm", path=env["PATH"]) or str(beside))


def test_envbot_helm_wins(tmp_path: Path) -> None:
    chosen = tmp_path / "my-helm"
    result = resolve(bare_env(ENVBOT_HELM=str(chosen)))
    assert result.stdout.strip() == str(chosen)


def test_no_helm_anywhere_is_a_clear_error(tmp_path: Path) -> None:
    # A Python with no helm beside it (a venv made here without one) and an empty PATH.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(tmp_path / "v")],
                   check=True)
    env = bare_env(PATH="/nonexistent", PYTHONPATH=os.pathsep.join(sys.path))
    result = resolve(env, python=str(tmp_path / "v" / "bin" / "python"))
    assert result.returncode != 0
    assert "helm is not installed: put helm on PATH, set ENVBOT_HELM, or install it in" in result.stderr
