"""Git plumbing for envbot: a throwaway shallow, partial clone of the environments repo, commits with
trailers, pushes that report rejections, and history walks that deepen the clone only as far as needed.

Every change is made in a temporary clone and lands with one push (or one fast-forward of a local
checkout), so a failure at any point leaves the target untouched: a commit is never half-made.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import git

from bot.errors import BadInput, Conflict, EnvbotError, PushRefused, Unreachable
from bot.output import progress
from bot.pushqueue import PushTurn
from bot.urls import parse_remote_url

DEFAULT_NAME = "envbot"
DEFAULT_EMAIL = "envbot@users.noreply.local"
TRAILER_PREFIX = "Envbot-"
# Served by `git upload-pack` for file:// remotes (inherited through the environment): partial clones.
_SERVER_CONFIG = {"uploadpack.allowFilter": "true", "uploadpack.allowAnySHA1InWant": "true"}
_DEEPEN_STEPS = (16, 128, 1024)
_REJECTED = re.compile(r"\[rejected\]|\[remote rejected\]|non-fast-forward|fetch first|cannot lock ref|"
                       r"failed to update ref|Not possible to fast-forward|unable to update local ref")
# The client saw the remote ref ahead of what it pushes on: certainly a moved branch.
_MOVED = re.compile(r"\(fetch first\)|\(non-fast-forward\)|\(stale info\)")
# Another writer holds the ref's lock right now: a race even though the tip may not have moved yet.
_LOCKED = re.compile(r"cannot lock ref|unable to update local ref|index\.lock|Unable to create .*\.lock")


class PushRejected(Conflict):
    """The target moved while we worked: fetch the new tip and rebase or replay."""


class StaleBase(PushRejected):
    """Seen on taking the push turn, before anything was sent: the target moved to TIP; no push was tried."""

    def __init__(self, message: str, tip: str) -> None:
        super().__init__(message)
        self.tip = tip


@dataclass(frozen=True)
class Identity:
    name: str = DEFAULT_NAME
    email: str = DEFAULT_EMAIL

    @classmethod
    def resolve(cls, name: str | None = None, email: str | None = None) -> Identity:
        return cls(name or os.environ.get("ENVBOT_GIT_NAME") or DEFAULT_NAME,
                   email or os.environ.get("ENVBOT_GIT_EMAIL") or DEFAULT_EMAIL)


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    parents: tuple[str, ...]
    committed: int               # unix time the commit landed on the branch (committer date)
    author: str
    email: str
    subject: str
    trailers: dict[str, str] = field(default_factory=dict)
    multi_trailers: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _commit_info(record: str) -> CommitInfo:
    """A CommitInfo from `git log --format=%H%x1f%P%x1f%ct%x1f%an%x1f%ae%x1f%B`."""
    sha, parents, committed, author, email, body = record.strip("\n").split("\x1f", 5)
    single, multi = parse_trailers(body)
    return CommitInfo(sha, tuple(parents.split()), int(committed), author, email,
                      body.splitlines()[0] if body else "", single, multi)


def git_env() -> dict[str, str]:
    """Environment for envbot's git calls: no prompts, plus envbot's own config entries appended
    after any GIT_CONFIG_* entries the caller set (CI passes its credentials that way)."""
    inherited = int(os.environ.get("GIT_CONFIG_COUNT", "0") or 0)
    env = {"GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_COUNT": str(inherited + len(_SERVER_CONFIG))}
    for index, (key, value) in enumerate(_SERVER_CONFIG.items(), start=inherited):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


def is_url(target: str) -> bool:
    """A remote git reaches by URL (scheme://, file:// included, or scp-like ssh), not a local path."""
    return parse_remote_url(target).scheme != ""


def parse_trailers(message: str) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    """Envbot-* trailers of a commit message; repeated keys (Envbot-Reverts) keep every value."""
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for line in message.splitlines():
        match = re.match(rf"^({TRAILER_PREFIX}[\w-]+):\s*(.*)$", line.strip())
        if match:
            single.setdefault(match.group(1), match.group(2))
            multi.setdefault(match.group(1), []).append(match.group(2))
    return single, {k: tuple(v) for k, v in multi.items()}


def format_message(subject: str, body: str, trailers: list[tuple[str, str]]) -> str:
    lines = [subject, ""]
    if body:
        lines += [body.rstrip(), ""]
    lines += [f"{key}: {value}" for key, value in trailers]
    return "\n".join(lines) + "\n"


def _git(cwd: Path | None = None) -> git.Git:
    runner = git.Git(str(cwd) if cwd else None)
    runner.update_environment(**git_env())
    return runner


def server_message(output: str) -> str:
    """One line from a refused push: the server's own `remote:` lines and the porcelain reason."""
    # GitPython prefixes the captured streams ("stderr: '..."): match `remote:` anywhere in a line.
    remote = [match.group(1).strip() for match in re.finditer(r"(?m)remote:[ \t]*(.*?)[ \t']*$", output)
              if match.group(1).strip()]
    reasons = re.findall(r"\[(?:remote )?rejected\]\s*(?:\S+ -> \S+\s*)?\(([^)]*)\)", output)
    parts = list(dict.fromkeys([*remote, *reasons]))
    return "; ".join(parts) or "rejected (no message from the server)"


def _explain(exc: git.GitCommandError) -> str:
    stderr = (exc.stderr or "").strip().replace("stderr: ", "").strip("'\n ")
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and not line.startswith("hint:")]
    return "; ".join(lines[-3:]) or str(exc)


@dataclass
class Workspace:
    """A temporary clone of the environments repo; `target` is where commits land."""

    path: Path
    target: str                  # URL or path of the remote, or of the local checkout
    branch: str
    checkout: Path | None        # the local working checkout commits land on, if that is the target
    forge_url: str               # what the pull-request client is given (origin URL of a checkout)
    depth: int | None = 1        # None: full history
    # This machine's turn to push to the target branch: taken at the first push, released on landing.
    turn: PushTurn | None = field(default=None, repr=False)

    @property
    def repo(self) -> git.Repo:
        return git.Repo(self.path)

    @property
    def g(self) -> git.Git:
        return _git(self.path)

    def head(self) -> str:
        return self.g.rev_parse("HEAD")

    def shallow_commits(self) -> set[str]:
        shallow = self.path / ".git" / "shallow"
        return set(shallow.read_text().split()) if shallow.exists() else set()

    def deepen(self) -> bool:
        """Fetch more history; False once the clone already has all of it."""
        if not self.shallow_commits():
            return False
        try:
            bigger = next((step for step in _DEEPEN_STEPS if self.depth is not None and step > self.depth), None)
            if bigger is None:
                self.g.fetch("--quiet", "--unshallow", "origin", self.branch)
                self.depth = None
            else:
                self.g.fetch("--quiet", f"--depth={bigger}", "origin", self.branch)
                self.depth = bigger
        except git.GitCommandError as exc:
            raise Unreachable(f"cannot fetch history from {self.target}: {_explain(exc)}") from exc
        return True

    def include(self, paths: list[str]) -> None:
        """Check out PATHS too (files or directories, relative to the repo root) in the sparse clone."""
        self.g.sparse_checkout("add", *[f"/{p.strip('/')}" for p in paths])

    def show(self, rev: str, path: str) -> str | None:
        """PATH's text at REV (None when absent); a symbolic link there is refused, not followed."""
        try:
            entry = self.g.ls_tree("--end-of-options", rev, "--", path)
        except git.GitCommandError:
            return None
        if entry.startswith("120000 "):
            raise BadInput(f"{path}: is a symbolic link at {rev[:12]}; envbot reads and writes only regular "
                           f"files inside the repository")
        if not entry:
            return None
        try:
            # --end-of-options: REV may come from a command line or a trailer; it is never an option.
            return self.g.show("--end-of-options", f"{rev}:{path}", strip_newline_in_stdout=False)
        except git.GitCommandError:
            return None

    def resolve(self, rev: str) -> str:
        """A revision name -> commit sha, deepening the clone until it is known and connected to HEAD."""
        while True:
            try:
                sha = self.g.rev_parse("--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
            except git.GitCommandError:
                if not self.deepen():
                    raise EnvbotError(f"unknown revision {rev!r} in {self.target}") from None
                continue
            # A partial clone fetches a lone commit on demand; its history to HEAD may still be cut off.
            if self.is_ancestor(sha, "HEAD") or not self.deepen():
                return sha

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        try:
            self.g.merge_base("--is-ancestor", "--end-of-options", ancestor, descendant)
            return True
        except git.GitCommandError:
            return False

    def commit_info(self, sha: str) -> CommitInfo:
        out = self.g.log("-1", "--format=%H%x1f%P%x1f%ct%x1f%an%x1f%ae%x1f%B", sha)
        return _commit_info(out)

    def walk(self, paths: list[str], first_parent: bool = True) -> Iterator[CommitInfo]:
        """Commits touching PATHS, newest first, deepening the shallow clone only as far as the caller reads."""
        yielded = 0
        while True:
            args = ["--format=%H%x1f%P%x1f%ct%x1f%an%x1f%ae%x1f%B%x1e"]
            if first_parent:
                args.append("--first-parent")
            out = self.g.log(*args, "HEAD", "--", *paths)
            entries = [e.strip("\n") for e in out.split("\x1e") if e.strip()]
            shallow = self.shallow_commits()
            hit_boundary = False
            for index, entry in enumerate(entries):
                sha = entry.split("\x1f", 1)[0]
                if sha in shallow:
                    # A shallow boundary looks as if it added every file: its real change is unknown.
                    hit_boundary = True
                    break
                if index < yielded:
                    continue
                yielded += 1
                yield _commit_info(entry)
            if not hit_boundary or not self.deepen():
                return

    def commit(self, paths: list[str], message: str, identity: Identity) -> str:
        env = {"GIT_AUTHOR_NAME": identity.name, "GIT_AUTHOR_EMAIL": identity.email,
               "GIT_COMMITTER_NAME": identity.name, "GIT_COMMITTER_EMAIL": identity.email}
        runner = self.g
        runner.update_environment(**env)
        runner.add("--all", "--", *paths)
        message_file = self.path / ".git" / "ENVBOT_MSG"
        message_file.write_text(message)
        runner.commit("--quiet", "--no-verify", "--cleanup=strip", "-F", str(message_file))
        return self.head()

    def fetch_tip(self) -> str:
        """Fetch the target branch's newest tip (into origin/BRANCH) without touching HEAD; its sha."""
        try:
            self.g.fetch("--quiet", "--depth=1", "origin",
                         f"+refs/heads/{self.branch}:refs/remotes/origin/{self.branch}")
        except git.GitCommandError as exc:
            raise Unreachable(f"cannot fetch {self.branch} from {self.target}: {_explain(exc)}") from exc
        return self.g.rev_parse(f"refs/remotes/origin/{self.branch}")

    def reset_to(self, rev: str) -> str:
        self.g.reset("--quiet", "--hard", rev)
        return self.head()

    def reset_to_remote(self) -> str:
        """Fetch the target's newest tip and make it HEAD (the base a retry replays onto)."""
        return self.reset_to(self.fetch_tip())

    def changed_paths(self, old: str, new: str, paths: tuple[str, ...] | list[str]) -> list[str]:
        """Which of PATHS differ between the trees of OLD and NEW (trees only: no blob is fetched)."""
        if old == new:
            return []
        out = self.g.diff_tree("-r", "--no-commit-id", "--name-only", old, new, "--", *paths)
        return [line for line in out.splitlines() if line]

    def replant(self, commit: str, onto: str, identity: Identity) -> str:
        """COMMIT (one commit on its parent) re-made on top of ONTO, which HEAD is at (the retry reset
        to it), same message and author; HEAD moves there.

        Only called when ONTO did not change the files COMMIT touches, so it applies exactly.
        """
        runner = self.g
        runner.update_environment(GIT_COMMITTER_NAME=identity.name, GIT_COMMITTER_EMAIL=identity.email)
        try:
            runner.cherry_pick("--allow-empty", "--keep-redundant-commits", commit)
        except git.GitCommandError as exc:
            with contextlib.suppress(git.GitCommandError):
                runner.cherry_pick("--abort")
            raise Conflict(f"cannot move the prepared commit onto {onto[:12]}: {_explain(exc)}") from exc
        return self.head()

    def remote_tip(self, ref: str, remote: str = "origin") -> str | None:
        try:
            out = self.g.ls_remote(remote, ref)
        except git.GitCommandError as exc:
            raise Unreachable(f"cannot reach {self.target}: {_explain(exc)}") from exc
        return out.split()[0] if out.strip() else None

    def push(self, ref: str, force: bool = False, remote: str = "origin") -> None:
        """Push HEAD to REF of the target (or of REMOTE, a URL).

        PushRejected when the ref moved meanwhile (a race: rebase or replay); PushRefused when the
        server said no although the ref did not move (a hook, branch protection): retrying cannot help.
        """
        if self.checkout is not None and remote == "origin" and ref == f"refs/heads/{self.branch}":
            self._fast_forward_checkout()
            return
        # What the ref was when this attempt started: the remote-tracking tip (clone or fetch_tip).
        expected = None
        if remote == "origin" and ref == f"refs/heads/{self.branch}":
            with contextlib.suppress(git.GitCommandError):
                expected = self.g.rev_parse("--verify", "--quiet", f"refs/remotes/origin/{self.branch}")
        if expected is not None and not force and self.take_turn():
            # The turn may come after other writers of this machine landed: then rebase first rather
            # than send a push that must fail. The fetched tip is the one the retry starts from.
            now = self.fetch_tip()
            if now != expected:
                raise StaleBase(f"{self.target} moved meanwhile (to {now[:12]}) while waiting to push", tip=now)
        args = ["--porcelain", remote, f"{'+' if force else ''}HEAD:{ref}"]
        try:
            # A hook of a local remote that runs envbot again must not wait for the turn this push holds.
            self.g.push(*args, env=self.turn.holder_env() if self.turn is not None else {})
        except git.GitCommandError as exc:
            text = f"{exc.stdout or ''}\n{exc.stderr or ''}"
            if not _REJECTED.search(text):
                raise Unreachable(f"cannot push to {self.target}: {_explain(exc)}") from exc
            if _LOCKED.search(text) or (not force and _MOVED.search(text)):
                # git itself saw the ref move (or another writer holds its lock): a race, no need to ask.
                raise PushRejected(f"{self.target} moved meanwhile: {_explain(exc)}") from exc
            now = self.remote_tip(ref, remote)
            moved = not force and expected is not None and now != expected
            if moved:
                raise PushRejected(f"{self.target} moved meanwhile: {_explain(exc)}") from exc
            raise PushRefused(f"{self.target} refused the push to {ref.removeprefix('refs/heads/')}: "
                              f"{server_message(text)}") from exc

    def take_turn(self) -> bool:
        """Wait for this machine's turn to push to the target branch (bot/pushqueue.py); True on taking it now.

        Taken at the first push and held until the commit lands (run_steps releases it).
        """
        if self.turn is None or self.turn.held:
            return False
        return self.turn.acquire()

    def release_turn(self) -> None:
        if self.turn is not None:
            self.turn.release()

    def _fast_forward_checkout(self) -> None:
        # A checked-out branch refuses pushes: fetch our commit into it and fast-forward its work tree.
        assert self.checkout is not None
        checkout = _git(self.checkout)
        try:
            current = checkout.symbolic_ref("--quiet", "--short", "HEAD")
        except git.GitCommandError as exc:
            raise EnvbotError(f"{self.checkout}: HEAD is detached; check out {self.branch}") from exc
        if current != self.branch:
            raise EnvbotError(f"{self.checkout}: on branch {current}, envbot works on {self.branch}")
        incoming = f"refs/envbot/incoming-{os.getpid()}"
        try:
            checkout.fetch("--quiet", str(self.path), f"+HEAD:{incoming}")
            checkout.merge("--quiet", "--ff-only", incoming)
        except git.GitCommandError as exc:
            if _REJECTED.search(f"{exc.stdout or ''}\n{exc.stderr or ''}") or "index.lock" in (exc.stderr or ""):
                raise PushRejected(f"{self.checkout} moved meanwhile: {_explain(exc)}") from exc
            raise EnvbotError(f"cannot fast-forward {self.checkout}: {_explain(exc)}") from exc
        finally:
            with contextlib.suppress(git.GitCommandError):
                checkout.update_ref("-d", incoming)


def regular_file(root: Path, relative: str) -> Path:
    """ROOT/RELATIVE, refused unless it is a regular file inside ROOT: no symlink anywhere on the way
    (a symlinked values file or promotion.yaml would make envbot read or write outside the repository)."""
    root = root.resolve()
    path = root
    for part in Path(relative).parts:
        path = path / part
        if path.is_symlink():
            raise BadInput(f"{relative}: {path.relative_to(root).as_posix()} is a symbolic link; envbot reads "
                           f"and writes only regular files inside the repository")
    if not path.resolve().is_relative_to(root):
        raise BadInput(f"{relative}: outside the repository")
    if path.exists() and not path.is_file():
        raise BadInput(f"{relative}: not a regular file")
    return path


def find_checkout_root(start: Path) -> Path:
    """The git work tree containing START that holds promotion.yaml (at its root or under environments/)."""
    try:
        top = Path(_git(start).rev_parse("--show-toplevel"))
    except (git.GitCommandError, git.NoSuchPathError) as exc:
        raise EnvbotError(f"{start} is not inside a git checkout; pass --repo PATH or URL") from exc
    if not ((top / "promotion.yaml").is_file() or (top / "environments" / "promotion.yaml").is_file()):
        raise EnvbotError(f"{top} has no promotion.yaml (at its root or under environments/); pass --repo")
    return top


def _remote_default_branch(target: str) -> str:
    try:
        out = _git().ls_remote("--symref", "--", target, "HEAD")
    except git.GitCommandError as exc:
        raise Unreachable(f"cannot reach the environments repo {target}: {_explain(exc)}") from exc
    match = re.search(r"^ref: refs/heads/(\S+)\s+HEAD", out, re.M)
    if not match:
        raise EnvbotError(f"{target} has no default branch (empty repository?)")
    return match.group(1)


@contextmanager
def open_workspace(repo_arg: str | None, branch: str | None = None, depth: int | None = 1) -> Iterator[Workspace]:
    """Clone the environments repo (shallow, blobs on demand, one branch) into a temporary directory.

    REPO_ARG: a URL, a bare repository, or a working checkout (default: the checkout around the current
    directory). A checkout is cloned too: commits land on it with a fast-forward, leaving uncommitted
    edits alone, and nothing changes in it unless the whole change is ready.
    """
    checkout: Path | None = None
    forge_url: str
    if repo_arg is None or not is_url(repo_arg):
        local = Path(repo_arg or ".").resolve()
        if not local.exists():
            raise EnvbotError(f"the environments repo {local} does not exist")
        try:
            bare = _git(local).rev_parse("--is-bare-repository") == "true"
        except git.GitCommandError as exc:
            raise EnvbotError(f"{local} is not a git repository") from exc
        if bare:
            source, forge_url = local.as_uri(), str(local)
        else:
            checkout = find_checkout_root(local) if repo_arg is None else Path(_git(local).rev_parse("--show-toplevel"))
            source = checkout.as_uri()
            try:
                forge_url = _git(checkout).remote("get-url", "origin")
            except git.GitCommandError:
                forge_url = str(checkout)
    else:
        source = forge_url = repo_arg
    if branch is None:
        if checkout is not None:
            try:
                branch = _git(checkout).symbolic_ref("--quiet", "--short", "HEAD")
            except git.GitCommandError as exc:
                raise EnvbotError(f"{checkout}: HEAD is detached; pass --branch") from exc
        else:
            branch = _remote_default_branch(source)
    tmp = Path(tempfile.mkdtemp(prefix="envbot-"))
    clone = tmp / "repo"
    ws: Workspace | None = None
    # --sparse: only root files are checked out; commands add the few paths they need (include()).
    args = ["--quiet", "--no-tags", "--single-branch", "--branch", branch, "--filter=blob:none", "--sparse"]
    if depth is not None:
        args.append(f"--depth={depth}")
    progress(f"cloning the environments repo {repo_arg or source} ({branch})")
    try:
        try:
            _git().clone(*args, "--", source, str(clone))
        except git.GitCommandError as exc:
            raise Unreachable(f"cannot clone the environments repo {repo_arg or source}: {_explain(exc)}") from exc
        target = str(checkout) if checkout else repo_arg or source
        ws = Workspace(path=clone, target=target, branch=branch, checkout=checkout, forge_url=forge_url,
                       depth=depth, turn=None if checkout else PushTurn(source, branch))
        ws.g.sparse_checkout("set", "--no-cone", "/promotion.yaml", "/environments/promotion.yaml")
        yield ws
    finally:
        if ws is not None:
            ws.release_turn()
        shutil.rmtree(tmp, ignore_errors=True)
