"""The source commits behind a pinned image: its revision label, and their commit times in the source repo.

Lead time for changes needs, for each release, the source commits it brought and when each was made.
The image says which commit it was built from (org.opencontainers.image.revision) and where that
repository lives (org.opencontainers.image.source, else promotion.yaml's `source` of the app). Every
answer is cached for the life of the process: a digest's labels and a commit's time never change.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import git

from bot.git import git_env, is_url
from bot.output import EnvbotError
from bot.registry import REVISION_LABEL, SOURCE_LABEL, ImageRef, RegistryClient, parse_image_ref
from bot.values import ImagePin

_SHA = re.compile(r"^[0-9a-f]{7,64}$")
# Commits a single release may bring that are listed one by one; beyond, the oldest are dropped.
MAX_COMMITS_PER_RELEASE = 2_000


class SourceUnknown(Exception):
    """Why the source commits of a release cannot be known (said in the metrics, not raised to the user)."""


@dataclass(frozen=True)
class ImageSource:
    revision: str
    source: str


class SourceTimes:
    """Revision labels from the registry, commit times from the source repositories (cloned once)."""

    def __init__(self, registry: RegistryClient | None = None, default_source: dict[str, str] | None = None) -> None:
        self.registry = registry or RegistryClient()
        self.default_source = default_source or {}          # app -> source repo from promotion.yaml
        self._labels: dict[str, dict[str, str] | SourceUnknown] = {}
        self._unreachable: dict[str, str] = {}              # registry host -> why: asked once per run
        self._repos: dict[str, Path | SourceUnknown] = {}
        self._tmp: Path | None = None
        self._lock = threading.RLock()

    def image_source(self, app: str, image: ImagePin) -> ImageSource:
        """Revision and source repository of IMAGE; SourceUnknown says why when they cannot be known."""
        if not image.digest:
            raise SourceUnknown("the pin has no image digest")
        with self._lock:
            labels = self._labels.get(image.digest)
            if labels is None:
                labels = self._fetch_labels(image)
                self._labels[image.digest] = labels
        if isinstance(labels, SourceUnknown):
            raise labels
        revision = labels.get(REVISION_LABEL, "").strip()
        if not _SHA.match(revision):
            raise SourceUnknown(f"image {image.digest[:19]} has no {REVISION_LABEL} label")
        source = labels.get(SOURCE_LABEL, "").strip() or self.default_source.get(app, "")
        if not source:
            raise SourceUnknown(f"image {image.digest[:19]} has no {SOURCE_LABEL} label and promotion.yaml "
                                f"names no source for app {app}")
        return ImageSource(revision, source)

    def _fetch_labels(self, image: ImagePin) -> dict[str, str] | SourceUnknown:
        try:
            ref = parse_image_ref(f"{image.repository}@{image.digest}")
        except EnvbotError as exc:
            return SourceUnknown(str(exc))
        if ref.registry in self._unreachable:
            return SourceUnknown(self._unreachable[ref.registry])
        try:
            return self.registry.resolve(ImageRef(ref.registry, ref.repository, digest=image.digest)).labels
        except EnvbotError as exc:
            reason = str(exc)
            if f"registry {ref.registry}:" in reason:
                # Unreachable or refusing: every other image there would wait for the same answer.
                self._unreachable[ref.registry] = reason
            return SourceUnknown(reason)

    def _repo(self, source: str) -> Path:
        with self._lock:
            known = self._repos.get(source)
            if known is None:
                known = self._open(source)
                self._repos[source] = known
        if isinstance(known, SourceUnknown):
            raise known
        return known

    def _open(self, source: str) -> Path | SourceUnknown:
        if source.startswith("-"):
            return SourceUnknown(f"source repository {source!r} is not a path or URL")
        if not is_url(source) and not source.startswith("file:"):
            path = Path(source)
            return path if path.exists() else SourceUnknown(f"source repository {source} does not exist here")
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="envbot-sources-"))
        target = self._tmp / f"src{len(self._repos)}.git"
        runner = git.Git()
        runner.update_environment(**git_env())
        try:
            # Commits only: metrics read times and ancestry, never file contents.
            runner.clone("--quiet", "--bare", "--filter=blob:none", "--no-tags", "--", source, str(target))
        except git.GitCommandError as exc:
            lines = (exc.stderr or str(exc)).strip().splitlines()
            return SourceUnknown(f"source repository {source} is not reachable: {lines[-1] if lines else exc}")
        return target

    def new_commits(self, source: str, revision: str, deployed_before: list[str]) -> list[tuple[str, int]]:
        """(sha, commit time) of REVISION's commits not in any of DEPLOYED_BEFORE, newest first.

        With nothing deployed before (the environment's first release we can place in the source
        history) only REVISION itself counts: its ancestors' age says nothing about this delivery.
        """
        repo = self._repo(source)
        runner = git.Git(str(repo))
        runner.update_environment(**git_env())
        known = [r for r in deployed_before if _SHA.match(r) and self._has(runner, r)]
        if not self._has(runner, revision):
            raise SourceUnknown(f"revision {revision[:12]} is not in {source}")
        limit = MAX_COMMITS_PER_RELEASE if known else 1
        out = runner.rev_list(f"--max-count={limit}", "--format=%ct", revision,
                              *[f"^{r}" for r in known])
        commits: list[tuple[str, int]] = []
        sha = ""
        for line in out.splitlines():
            if line.startswith("commit "):
                sha = line.split()[1]
            elif line.strip():
                commits.append((sha, int(line)))
        return commits

    @staticmethod
    def _has(runner: git.Git, revision: str) -> bool:
        try:
            runner.rev_parse("--verify", "--quiet", f"{revision}^{{commit}}")
            return True
        except git.GitCommandError:
            return False

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
