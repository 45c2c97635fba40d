"""envbot fixtures live in tests/fixtures/envbot.py (a plugin of tests/conftest.py, shared with tests/security)."""

from tests.fixtures.envbot import PublishedModel, PushedImage, SourceRepo, build_and_push, release

__all__ = ["PublishedModel", "PushedImage", "SourceRepo", "build_and_push", "release"]
