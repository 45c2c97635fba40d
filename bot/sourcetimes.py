"""The source commits behind a pinned image: its revision label, and their commit times in the source repo.

Lead time for changes needs, for each release, the source commits it brought and when each was made.
The image says which commit it was built from (org.opencontainers.image.revision) and where that
repository lives (org.opencontainers.image.source, else promotion.yaml's `source` of the app). Every
answer is cached for the life of the process: a digest's labels and a commit's time never change.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import git

from bot.changelog import label_source_problem, normalize_revision
from bot.git import git_env, is_url
from bot.output import EnvbotError
from bot.registry import REVISION_LABEL, SOURCE_LABEL, ImageRef, RegistryClient, parse_image_ref
from bot.values import ImagePin

# Commits a single release may bring that are listed one by one; beyond, the oldest are dropped.
MAX_COMMITS_PER_RELEASE = 2_000


def clone_env() -> dict[str, str]:
    """The environment for cloning a source repository named by an image label.

    The label is written by whoever built the image, so the URL may be any host: credentials that
    the caller passed for every host (an unscoped http.extraHeader in GIT_CONFIG_*, as CI does for
    the environments repo) are left out. URL-scoped entries (http.<url>.extraHeader) stay: git
    sends them only to their host.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_"))}
    kept = []
    for index in range(int(env.pop("GIT_CONFIG_COUNT", "0") or 0)):
        key = os.environ.get(f"GIT_CONFIG_KEY_{index}", "")
        if key.lower() != "http.extraheader":
            kept.append((key, os.environ.get(f"GIT_CONFIG_VALUE_{index}", "")))
    for index, (key, value) in enumerate(kept):
        env[f"GIT_CONFIG_KEY_{index}"], env[f"GIT_CONFIG_VALUE_{index}"] = key, value
    env["GIT_CONFIG_COUNT"] = str(len(kept))
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


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
        self._graphs: dict[str, dict[str, tuple[tuple[str, ...], int]]] = {}
        self._ancestor_sets: dict[tuple[str, str], frozenset[str]] = {}
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
        label = labels.get(REVISION_LABEL)
        revision = normalize_revision(label)
        if revision is None:
            raise SourceUnknown(f"image {image.digest[:19]} has no {REVISION_LABEL} label" if not label else
                                f"image {image.digest[:19]}: its {REVISION_LABEL} label is not a 40- or "
                                f"64-hex-character commit id")
        # promotion.yaml's apps.*.source is the operators' choice; a label is anyone's who can push an
        # image, so it is used only when it names a forge repository (bot.changelog's rule).
        source, problem = labels.get(SOURCE_LABEL, "").strip(), ""
        if source and (problem := label_source_problem(source) or ""):
            source = ""
        source = source or self.default_source.get(app, "")
        if not source:
            why = f"its {SOURCE_LABEL} label is not used ({problem})" if problem else f"no {SOURCE_LABEL} label"
            raise SourceUnknown(f"image {image.digest[:19]}: {why}, and promotion.yaml names no source "
                                f"for app {app}")
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
        # Commits only: metrics read times and ancestry, never file contents.
        proc = subprocess.run(["git", "clone", "--quiet", "--bare", "--filter=blob:none", "--no-tags", "--",
                               source, str(target)], capture_output=True, text=True, check=False,
                              env=clone_env(), timeout=600)
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines()
            reason = lines[-1] if lines else f"git clone exited with {proc.returncode}"
            return SourceUnknown(f"source repository {source} is not reachable: {reason}")
        return target

    def new_commits(self, source: str, revision: str, deployed_before: list[str]) -> list[tuple[str, int]]:
        """(sha, commit time) of REVISION's commits not in any of DEPLOYED_BEFORE, newest first.

        `git rev-list REVISION --not DEPLOYED_BEFORE...`, answered from the source repository's commit
        graph read once (one process per repository, not one per release). With nothing deployed
        before (the environment's first release we can place in the source history) only REVISION
        itself counts: its ancestors' age says nothing about this delivery.
        """
        graph = self._graph(source)
        full = self._full(source, revision)
        if full is None:
            raise SourceUnknown(f"revision {revision[:12]} is not in {source}")
        known = [self._ancestors(source, sha) for sha in
                 dict.fromkeys(s for s in (self._full(source, r) for r in deployed_before) if s)]
        if not known:
            return [(full, graph[full][1])]
        commits: list[tuple[str, int]] = []
        seen = {full}
        stack = [full]
        while stack and len(commits) < MAX_COMMITS_PER_RELEASE:
            sha = stack.pop()
            if any(sha in ancestors for ancestors in known):
                continue
            parents, committed = graph[sha]
            commits.append((sha, committed))
            for parent in parents:
                if parent in graph and parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
        return sorted(commits, key=lambda c: c[1], reverse=True)

    def _graph(self, source: str) -> dict[str, tuple[tuple[str, ...], int]]:
        """sha -> (parents, committer time) of every commit of SOURCE's branches."""
        with self._lock:
            if source not in self._graphs:
                repo = self._repo(source)
                runner = git.Git(str(repo))
                runner.update_environment(**git_env())
                graph = {}
                for line in runner.rev_list("--all", "--parents", "--timestamp").splitlines():
                    stamp, sha, *parents = line.split()
                    graph[sha] = (tuple(parents), int(stamp))
                self._graphs[source] = graph
            return self._graphs[source]

    def _full(self, source: str, revision: str) -> str | None:
        """REVISION when SOURCE has it, else None."""
        graph = self._graph(source)
        if revision in graph:
            return revision
        return None

    def _ancestors(self, source: str, revision: str) -> frozenset[str]:
        with self._lock:
            key = (source, revision)
            if key not in self._ancestor_sets:
                graph = self._graph(source)
                seen = {revision}
                stack = [revision]
                while stack:
                    for parent in graph[stack.pop()][0]:
                        if parent in graph and parent not in seen:
                            seen.add(parent)
                            stack.append(parent)
                self._ancestor_sets[key] = frozenset(seen)
            return self._ancestor_sets[key]

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
