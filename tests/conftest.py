"""Shared fixtures: real local services (tests/fixtures/services.py), trained models and images."""

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.models",
    "tests.fixtures.images",
    "tests.fixtures.envbot",
]
