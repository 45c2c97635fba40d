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


def venv_without_helm_on_path(tmp_path: Path) -> Path:
    """A venv like scripts/bootstrap's (.venv/bin/python), seeing this environment's packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(tmp_path / "v")],
                   check=True)
    return tmp_path / "v" / "bin"


def test_helm_beside_envbots_python_is_found_without_path(helm_bin: str, tmp_path: Path) -> None:
    bin_dir = venv_without_helm_on_path(tmp_path)
    (bin_dir / "helm").symlink_to(helm_bin)  # where scripts/bootstrap puts helm: beside python
    env = bare_env(PATH="/usr/bin:/bin", PYTHONPATH=os.pathsep.join(sys.path))
    assert shutil.which("helm", path=env["PATH"]) is None, "this machine has a helm on PATH"
    result = resolve(env, python=str(bin_dir / "python"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(bin_dir / "helm")
    version = subprocess.run([result.stdout.strip(), "version", "--short"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("v")


def test_envbot_helm_wins(tmp_path: Path) -> None:
    chosen = tmp_path / "my-helm"
    result = resolve(bare_env(ENVBOT_HELM=str(chosen)))
    assert result.stdout.strip() == str(chosen)


def test_no_helm_anywhere_is_a_clear_error(tmp_path: Path) -> None:
    bin_dir = venv_without_helm_on_path(tmp_path)
    result = resolve(bare_env(PATH="/nonexistent", PYTHONPATH=os.pathsep.join(sys.path)),
                     python=str(bin_dir / "python"))
    assert result.returncode != 0
    assert f"helm is not installed: put helm on PATH, set ENVBOT_HELM, or install it in {bin_dir}" in result.stderr
