"""scripts/check-prereqs on recorded `az` outputs (tests/pipelines/fixtures/az): what it reads from each
command, and what it prints as missing. az itself cannot run here (no Azure); every command line the
script would run is answered from a recording of that command's real output format."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pipelines.azure_schema import REPO_ROOT

FIXTURES = Path(__file__).parent / "fixtures" / "az"
SCRIPT = REPO_ROOT / "scripts" / "check-prereqs"


def load_script():
    loader = importlib.machinery.SourceFileLoader("check_prereqs", str(SCRIPT))
    spec = importlib.util.spec_from_loader("check_prereqs", loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_prereqs"] = module    # dataclasses look their module up there
    loader.exec_module(module)
    return module


check_prereqs = load_script()


def recorded(overrides: dict[str, tuple[int, str, str]] | None = None):
    """An az stand-in answering each command line from the recordings; records what it was asked."""
    answers = {
        "version": (0, (FIXTURES / "version.json").read_text(), ""),
        "account show": (0, (FIXTURES / "account-show.json").read_text(), ""),
        "provider list": (0, (FIXTURES / "provider-list.json").read_text(), ""),
        "acr check-name": (0, (FIXTURES / "acr-check-name-free.json").read_text(), ""),
        "storage account check-name": (0, (FIXTURES / "storage-check-name-taken.json").read_text(), ""),
        "group exists": (0, (FIXTURES / "group-exists.txt").read_text(), ""),
        **(overrides or {}),
    }
    asked: list[list[str]] = []

    def az(args: list[str]) -> tuple[int, str, str]:
        asked.append(args)
        command = " ".join(a for a in args if not a.startswith("-") and a not in ("json",))
        key = next(k for k in sorted(answers, key=len, reverse=True) if command.startswith(k))
        return answers[key]

    az.asked = asked
    return az


def test_parsers_read_the_recorded_outputs() -> None:
    assert check_prereqs.parse_version((FIXTURES / "version.json").read_text()) == (2, 67, 0)
    assert check_prereqs.parse_account((FIXTURES / "account-show.json").read_text()) == (
        "Contoso Platform Dev", "0b1f6471-1bf0-4dda-aec3-cb9272f09590", "Enabled")
    providers = check_prereqs.parse_providers((FIXTURES / "provider-list.json").read_text())
    assert providers["microsoft.containerregistry"] == "NotRegistered"
    assert providers["microsoft.storage"] == "Registering"
    assert check_prereqs.parse_name_check("acr check-name",
                                          (FIXTURES / "acr-check-name-free.json").read_text()) == (True, "")
    available, reason = check_prereqs.parse_name_check(
        "storage account check-name", (FIXTURES / "storage-check-name-taken.json").read_text())
    assert not available and reason.startswith("AlreadyExists The storage account named aiappmodels")


def test_prints_what_is_missing(capsys) -> None:
    az = recorded()
    assert check_prereqs.main([], az=az, which=lambda name: "/usr/bin/az") == 1
    out = capsys.readouterr().out
    assert "MISSING provider Microsoft.ContainerRegistry is NotRegistered" in out
    assert "az provider register --namespace Microsoft.ContainerRegistry --wait" in out
    assert "MISSING provider Microsoft.Storage is Registering" in out
    assert "ok      acr name aiappacr is free" in out
    assert "MISSING storage name aiappmodels is taken (AlreadyExists" in out
    assert "ok      resource group rg-ai-app is free" in out
    assert "ok      subscription Contoso Platform Dev" in out
    assert out.rstrip().endswith("3 missing")
    assert ["acr", "check-name", "--name", "aiappacr", "--output", "json"] in az.asked


def test_not_logged_in_stops_before_the_subscription_checks(capsys) -> None:
    stderr = (FIXTURES / "account-show-logged-out.stderr").read_text()
    az = recorded({"account show": (1, "", stderr)})
    assert check_prereqs.main([], az=az, which=lambda name: "/usr/bin/az") == 1
    out = capsys.readouterr().out
    assert "MISSING az is not logged in (Please run 'az login' to setup account.)" in out and "-> az login" in out
    assert not any(a[0] == "provider" for a in az.asked)


def test_an_old_az_is_missing(capsys) -> None:
    az = recorded({"version": (0, (FIXTURES / "version-old.json").read_text(), "")})
    check_prereqs.main([], az=az, which=lambda name: "/usr/bin/az")
    assert "MISSING az 2.49.0 (needs 2.61.0+)" in capsys.readouterr().out


def test_no_az_at_all(capsys) -> None:
    assert check_prereqs.main([], az=recorded(), which=lambda name: None) == 1
    assert "MISSING az (Azure CLI) is not installed" in capsys.readouterr().out


def test_unreadable_az_output_names_the_command(capsys) -> None:
    az = recorded({"provider list": (0, "WARNING: something\n[", "")})
    assert check_prereqs.main([], az=az, which=lambda name: "/usr/bin/az") == 1
    assert "`az provider list` printed no JSON" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--acr=--help"], ["--storage", "Has-Upper"], ["--acr", "ab"]])
def test_bad_names_are_refused_before_az_runs(argv: list[str], capsys) -> None:
    az = recorded()
    assert check_prereqs.main(argv, az=az, which=lambda name: "/usr/bin/az") == 2
    assert "must be" in capsys.readouterr().err and az.asked == []


def test_the_script_runs_standalone_without_az(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                          env={"PATH": str(tmp_path)})
    assert proc.returncode == 1 and "az (Azure CLI) is not installed" in proc.stdout
