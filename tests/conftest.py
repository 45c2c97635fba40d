"""Shared fixtures: real local services (tests/fixtures/services.py), trained models and images."""

from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.models",
    "tests.fixtures.images",
    "tests.fixtures.envbot",
    "tests.fixtures.charts",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A test that needs the Docker engine, directly or through any fixture, is in the docker tier
    # (scripts/test runs that tier in its own process beside the rest), whether or not it says so.
    for item in items:
        if "docker_engine" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("docker"):
            item.add_marker(pytest.mark.docker)
