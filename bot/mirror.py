"""A full local clone of the environments repo, for readers of its whole history (metrics, dashboard).

The commands that write (update, promote, rollback) use bot.git's shallow, sparse, blob-less clone
and deepen it only as far as they read. Metrics and the dashboard read every values file at every
commit, which a blob-less clone would fetch one blob per request; so they keep one complete clone of
the branch (values files are small) and refresh it with `git fetch`.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

import git

from bot.git import _explain, _git, _remote_default_branch, find_checkout_root, is_url
from bot.output import EnvbotError


def resolve_source(repo_arg: str | None, branch: str | None) -> tuple[str, str]:
    """(clone source, branch) for REPO_ARG as every envbot verb reads it: URL, bare repo or checkout."""
    if repo_arg is not None and is_url(repo_arg):
        source = repo_arg
        checkout = None
    else:
        local = Path(repo_arg or ".").resolve()
        if not local.exists():
            raise EnvbotError(f"the environments repo {local} does not exist")
        try:
            bare = _git(local).rev_parse("--is-bare-repository") == "true"
        except git.GitCommandError as exc:
            raise EnvbotError(f"{local} is not a git repository") from exc
        checkout = None if bare else (find_checkout_root(local) if repo_arg is None
                                      else Path(_git(local).rev_parse("--show-toplevel")))
        source = (checkout or local).as_uri()
    if branch is None:
        if checkout is not None:
            try:
                branch = _git(checkout).symbolic_ref("--quiet", "--short", "HEAD")
            except git.GitCommandError as exc:
                raise EnvbotError(f"{checkout}: HEAD is detached; pass --branch") from exc
        else:
            branch = _remote_default_branch(source)
    return source, branch


class Mirror:
    """A complete single-branch clone in a temporary directory; `refresh()` fetches the newest tip.

    The clone's work tree holds the branch tip (promotion.yaml and an in-repo chart are read from
    it); `lock` serializes a refresh with readers of the work tree.
    """

    def __init__(self, repo_arg: str | None, branch: str | None = None) -> None:
        self.repo_arg = repo_arg
        self.source, self.branch = resolve_source(repo_arg, branch)
        self._tmp = Path(tempfile.mkdtemp(prefix="envbot-mirror-"))
        self.path = self._tmp / "repo"
        self.lock = threading.RLock()
        try:
            # Every commit and blob, but only promotion.yaml in the work tree (include() adds a chart).
            _git().clone("--quiet", "--no-tags", "--single-branch", "--branch", self.branch, "--sparse",
                         self.source, str(self.path))
            _git(self.path).sparse_checkout("set", "--no-cone", "/promotion.yaml", "/environments/promotion.yaml")
        except git.GitCommandError as exc:
            self.close()
            raise EnvbotError(f"cannot clone the environments repo {repo_arg or self.source}: "
                              f"{_explain(exc)}") from exc

    def include(self, paths: list[str]) -> None:
        """Check out PATHS too (directories or files relative to the repo root)."""
        with self.lock:
            _git(self.path).sparse_checkout("add", *[f"/{p.strip('/')}" for p in paths])

    @property
    def display(self) -> str:
        return self.repo_arg or self.source

    def head(self) -> str:
        return _git(self.path).rev_parse("HEAD")

    def refresh(self) -> str:
        """Fetch the branch and move the work tree to its tip; the new HEAD sha."""
        with self.lock:
            runner = _git(self.path)
            try:
                runner.fetch("--quiet", "--no-tags", "origin",
                             f"+refs/heads/{self.branch}:refs/remotes/origin/{self.branch}")
            except git.GitCommandError as exc:
                raise EnvbotError(f"cannot fetch {self.branch} from {self.display}: {_explain(exc)}") from exc
            runner.reset("--quiet", "--hard", f"origin/{self.branch}")
            return runner.rev_parse("HEAD")

    def show(self, rev: str, path: str) -> str | None:
        try:
            return _git(self.path).show(f"{rev}:{path}", strip_newline_in_stdout=False)
        except git.GitCommandError:
            return None

    def resolve(self, rev: str) -> str:
        if not rev or rev.startswith("-") or any(c.isspace() or c in ":\\" for c in rev):
            raise EnvbotError(f"{rev!r} is not a revision")
        try:
            return _git(self.path).rev_parse("--verify", "--quiet", f"{rev}^{{commit}}")
        except git.GitCommandError:
            raise EnvbotError(f"unknown revision {rev!r} in {self.display}") from None

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> Mirror:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
