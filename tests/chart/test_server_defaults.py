"""The chart's server values are the service's own defaults (app/config.py), passed as its env vars."""

from __future__ import annotations

import pytest

from app.config import Settings, load_settings
from tests.chart.helmchart import CHART_DIR, load_yaml, render

VALUES = load_yaml(CHART_DIR / "values.yaml")
# values.yaml `server.<key>` -> the service's setting (its environment variable)
SERVER_VALUES = {
    "port": "PORT",
    "workers": "WEB_CONCURRENCY",
    "threads": "WEB_THREADS",
    "maxRequestBytes": "MAX_REQUEST_BYTES",
    "maxResponseBytes": "MAX_RESPONSE_BYTES",
    "headerTimeout": "HEADER_TIMEOUT",
    "bodyTimeout": "BODY_TIMEOUT",
    "gracefulTimeout": "GRACEFUL_TIMEOUT",
    "logLevel": "LOG_LEVEL",
}


def test_every_server_value_is_mapped() -> None:
    assert set(VALUES["server"]) == set(SERVER_VALUES)


@pytest.mark.parametrize(("key", "setting"), SERVER_VALUES.items())
def test_chart_default_is_the_service_default(key: str, setting: str) -> None:
    assert VALUES["server"][key] == getattr(Settings(), setting), (
        f"charts/ai-app/values.yaml server.{key} drifted from app/config.py Settings.{setting}"
    )


def test_rendered_env_reaches_the_service_as_its_defaults(helm_bin: str) -> None:
    env = {e["name"]: e["value"] for e in render(helm_bin, {}).app_container()["env"] if "value" in e}
    passed = {setting: env[setting] for setting in SERVER_VALUES.values()}
    settings = load_settings(passed)
    for setting in SERVER_VALUES.values():
        assert getattr(settings, setting) == getattr(Settings(), setting), setting


def test_termination_grace_covers_the_drain() -> None:
    # SIGKILL must not come before preStop plus the server's own graceful timeout are over.
    grace = VALUES["terminationGracePeriodSeconds"]
    assert grace > VALUES["preStopSleepSeconds"] + VALUES["server"]["gracefulTimeout"]
