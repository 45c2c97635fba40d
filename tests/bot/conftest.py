"""envbot fixtures live in tests/fixtures/envbot.py (a plugin of tests/conftest.py, shared with tests/security)."""

from tests.fixtures.envbot import SOURCE_URL, PublishedModel, PushedImage, SourceRepo, build_and_push, release

__all__ = ["SOURCE_URL", "PublishedModel", "PushedImage", "SourceRepo", "build_and_push", "release"]
