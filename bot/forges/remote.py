"""Which forge hosts a git remote, from its URL alone (no network): bot.urls is the one parser."""

from __future__ import annotations

from bot.urls import AzureReposRepo, GitHubRepo, parse_remote

__all__ = ["AzureReposRepo", "GitHubRepo", "parse_remote"]
