"""Every pin change of every app and environment, read from the environments repo's full history at once.

`envbot history` walks one values file commit by commit; the DORA metrics and the dashboard need all
of them over thousands of commits, so this module reads the history with one `git log --raw` and
the values files with one `git cat-file --batch`, and keeps each pin parsed once per blob.

A *pin change* is a commit on the branch's first-parent line after which an environment's values
file pins a different release (bot.pins.same_release: image digest, model digest and URI) than
before it. Commits that only edit other settings of the file are not pin changes. A pull request
merged with a merge commit is one pin change (the merge, when it landed), described by the trailers
of the commit it merged.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bot.git import git_env, parse_trailers
from bot.output import EnvbotError
from bot.pins import same_release
from bot.policy import Policy
from bot.values import IMAGE_KEYS, MODEL_KEYS, ImagePin, ModelPin, ReleasePin, read_pin_text

NULL_BLOB = "0" * 40
# `git revert` writes "This reverts commit <sha>." into the message of a revert made by hand.
_REVERTS = re.compile(r"This reverts commit ([0-9a-f]{40})")
_ACTIONS = ("update", "promote", "rollback")


@dataclass(frozen=True)
class Commit:
    sha: str
    parents: tuple[str, ...]
    committed: int                      # committer time: when it landed on the branch
    author: str
    email: str
    subject: str
    trailers: dict[str, str] = field(default_factory=dict)
    multi_trailers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    reverts: tuple[str, ...] = ()       # Envbot-Reverts trailers and "This reverts commit" lines


@dataclass(frozen=True)
class PinChange:
    """A first-parent commit that changed the release pinned in one app's values file of one environment."""

    app: str
    env: str
    path: str
    commit: Commit                      # the first-parent commit (a merge, for a merged pull request)
    described_by: Commit                # the commit whose trailers describe it (the merged one, or itself)
    pin: ReleasePin | None              # None: the values file was deleted
    previous: ReleasePin | None

    @property
    def sha(self) -> str:
        return self.commit.sha

    @property
    def when(self) -> int:
        return self.commit.committed

    @property
    def ids(self) -> frozenset[str]:
        """Shas a revert may name for this change: the commit on the branch and the one it merged."""
        return frozenset({self.commit.sha, self.described_by.sha})

    @property
    def reverts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.commit.reverts + self.described_by.reverts))

    @property
    def action(self) -> str:
        """update | promote | rollback (envbot trailers), revert (git revert by hand), or manual."""
        action = self.described_by.trailers.get("Envbot-Action", "")
        if action in _ACTIONS:
            return action
        if self.reverts:
            return "revert"
        return "manual"

    @property
    def by(self) -> str:
        return self.described_by.author if self.described_by is not self.commit else self.commit.author

    @property
    def merged_by(self) -> str:
        return self.commit.author

    @property
    def source_env(self) -> str:
        """The environment a promotion came from (Envbot-From: env@sha), else ''."""
        return self.described_by.trailers.get("Envbot-From", "").split("@")[0]

    @property
    def override(self) -> str:
        return self.described_by.trailers.get("Envbot-Override", "")


@dataclass
class Timeline:
    """The first-parent history of a branch and every pin change of the tracked values files."""

    head: str
    commits: list[Commit]                           # first-parent line, oldest first
    changes: dict[str, list[PinChange]]             # values path -> pin changes, oldest first
    current: dict[str, ReleasePin | None]           # values path -> pin at HEAD
    errors: dict[str, str]                          # values path -> why HEAD's file gives no pin
    tracked: dict[str, tuple[str, str]] = field(default_factory=dict)   # values path -> (app, env)
    by_sha: dict[str, Commit] = field(default_factory=dict)

    def changes_of(self, path: str) -> list[PinChange]:
        return self.changes.get(path, [])

    def origin(self, path: str) -> PinChange | None:
        """The pin change that set the pin the path holds at HEAD (when the release landed)."""
        changes = self.changes.get(path)
        return changes[-1] if changes else None


def _run_git(repo: Path, args: list[str], stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(["git", *args], cwd=repo, input=stdin, capture_output=True, check=False,
                          env={**os.environ, **git_env()})
    if proc.returncode != 0:
        raise EnvbotError(f"git {' '.join(args[:2])} in the environments repo failed: "
                          f"{proc.stderr.decode(errors='replace').strip()[-400:]}")
    return proc.stdout


def _commit(sha: str, parents: str, committed: str, author: str, email: str, body: str) -> Commit:
    single, multi = parse_trailers(body)
    reverts = list(multi.get("Envbot-Reverts", ()))
    reverts += [s for s in _REVERTS.findall(body) if s not in reverts]
    return Commit(sha, tuple(parents.split()), int(committed), author, email,
                  body.splitlines()[0] if body else "", single, multi, tuple(reverts))


_FORMAT = "--format=%x1e%H%x1f%P%x1f%ct%x1f%an%x1f%ae%x1f%B%x1d"


def read_log(repo: Path, rev: str, paths: Iterable[str]) -> tuple[list[Commit], dict[str, list[tuple[int, str]]]]:
    """First-parent commits of REV (oldest first) and, per path of PATHS, (commit index, new blob) of its changes."""
    # --diff-merges=first-parent: a merged pull request shows what it changed on the branch. No
    # pathspec: matching hundreds of them per tree entry costs far more than filtering the output.
    out = _run_git(repo, ["log", "--first-parent", "--diff-merges=first-parent", "--raw", "--no-abbrev",
                          "--no-renames", _FORMAT, rev])
    wanted = set(paths)
    commits: list[Commit] = []
    touched: dict[str, list[tuple[int, str]]] = {}
    records = out.decode(errors="replace").split("\x1e")[1:]
    for index, record in enumerate(reversed(records)):
        header, _, raw = record.partition("\x1d")
        sha, parents, committed, author, email, body = header.split("\x1f", 5)
        commits.append(_commit(sha, parents, committed, author, email, body.strip("\n")))
        for line in raw.splitlines():
            # :100644 100644 <old> <new> M\t<path>
            if not line.startswith(":"):
                continue
            meta, _, path = line.partition("\t")
            if path in wanted:
                touched.setdefault(path, []).append((index, meta.split()[3]))
    return commits, touched


def read_commits(repo: Path, shas: Iterable[str]) -> dict[str, Commit]:
    """Commits by sha (merged pull-request commits whose trailers describe a merge)."""
    wanted = "\n".join(dict.fromkeys(shas))
    if not wanted:
        return {}
    out = _run_git(repo, ["log", "--no-walk=unsorted", "--stdin", _FORMAT], stdin=(wanted + "\n").encode())
    result = {}
    for record in out.decode(errors="replace").split("\x1e")[1:]:
        header = record.partition("\x1d")[0]
        sha, parents, committed, author, email, body = header.split("\x1f", 5)
        result[sha] = _commit(sha, parents, committed, author, email, body.strip("\n"))
    return result


def read_blobs(repo: Path, blobs: Iterable[str]) -> dict[str, str]:
    """Blob sha -> text, through one `git cat-file --batch`."""
    wanted = [b for b in dict.fromkeys(blobs) if b != NULL_BLOB]
    if not wanted:
        return {}
    out = _run_git(repo, ["cat-file", "--batch"], stdin=("\n".join(wanted) + "\n").encode())
    result: dict[str, str] = {}
    pos = 0
    for sha in wanted:
        end = out.index(b"\n", pos)
        header = out[pos:end].decode().split()
        pos = end + 1
        if len(header) < 3 or header[1] == "missing":
            continue
        size = int(header[2])
        result[sha] = out[pos:pos + size].decode(errors="replace")
        pos += size + 1
    return result


_PIN_SECTIONS = ("image", "model")
_TOP_KEY = re.compile(r"^([A-Za-z_][\w-]*)\s*:(.*)$")
# Strings for PyYAML (YAML 1.1) that YAML 1.2 (ruamel, read_pin_text) reads as numbers, null or bools.
_NOT_STR_IN_12 = re.compile(r"^([-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|0o[0-7]+|0x[0-9a-fA-F]+|"
                            r"[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)|~|null|Null|NULL|true|True|TRUE|false|False|FALSE)$")
_UNUSUAL = re.compile(r"[&*!{}\[\]|>\t]|^---|^\.\.\.", re.M)


def _quoted(block: list[str], key: str, value: str) -> bool:
    """Whether BLOCK writes KEY's VALUE in quotes on one line (then it is a string in every YAML version)."""
    pattern = re.compile(rf"""^\s+{re.escape(key)}\s*:\s*(["']){re.escape(value)}\1\s*(#.*)?$""")
    return any(pattern.match(line) for line in block)


def fast_pin_text(text: str, display: str) -> ReleasePin:
    """read_pin_text for history-sized reads: only the image and model blocks go through a C YAML parser.

    A values file is mostly settings; the pin is two small top-level blocks. Anything this shortcut
    is not sure about (flow style, anchors, tags, block scalars, repeated keys, a value that YAML
    would read as a float or bool, a parse error) goes to bot.values.read_pin_text, which stays the
    definition; a test checks both agree.
    """
    import yaml

    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line[:1] not in ("", " ", "#"):
            match = _TOP_KEY.match(line)
            if match is None:
                return read_pin_text(text, display)
            key = match.group(1)
            if key in _PIN_SECTIONS:
                if key in blocks or match.group(2).split("#")[0].strip():
                    return read_pin_text(text, display)
                current = blocks[key] = [f"{key}:"]
            else:
                current = None
        elif current is not None:
            current.append(line)
    snippet = "\n".join(line for block in blocks.values() for line in block)
    if _UNUSUAL.search(snippet):
        return read_pin_text(text, display)
    try:
        doc = yaml.load(snippet, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except yaml.YAMLError:
        return read_pin_text(text, display)
    sections = {}
    for name, keys in (("image", IMAGE_KEYS), ("model", MODEL_KEYS)):
        section = doc.get(name) or {}
        if not isinstance(section, dict):
            return read_pin_text(text, display)
        values = {}
        for key in keys:
            value = section.get(key)
            # Only strings that both YAML versions read alike; the rest (version: 2, tag: 1e5) the slow
            # way, unless the file quotes them (version: "2" is a string in both).
            if value is not None and (not isinstance(value, str) or (
                    _NOT_STR_IN_12.match(value) and not _quoted(blocks[name], key, value))):
                return read_pin_text(text, display)
            values[key] = "" if value is None else str(value)
        sections[name] = values
    return ReleasePin(ImagePin(**sections["image"]), ModelPin(**sections["model"]))


class PinCache:
    """Parsed pins by blob sha: a blob never changes, so each is parsed once per process."""

    def __init__(self) -> None:
        self._pins: dict[str, tuple[ReleasePin | None, str]] = {}

    def get(self, blob: str) -> tuple[ReleasePin | None, str] | None:
        return self._pins.get(blob)

    def put(self, blob: str, text: str | None, display: str) -> tuple[ReleasePin | None, str]:
        if text is None:
            parsed: tuple[ReleasePin | None, str] = (None, "deleted")
        else:
            try:
                parsed = (fast_pin_text(text, display), "")
            except EnvbotError as exc:
                parsed = (None, str(exc))
        self._pins[blob] = parsed
        return parsed


def build_timeline(repo: Path, rev: str, tracked: dict[str, tuple[str, str]],
                   cache: PinCache | None = None) -> Timeline:
    """The pin changes of TRACKED (values path -> (app, env)) on REV's first-parent line in REPO."""
    cache = cache or PinCache()
    head = _run_git(repo, ["rev-parse", "--verify", f"{rev}^{{commit}}"]).decode().strip()
    commits, touched = read_log(repo, head, tracked)
    blobs = {blob for entries in touched.values() for _, blob in entries}
    missing = [b for b in blobs if b != NULL_BLOB and cache.get(b) is None]
    texts = read_blobs(repo, missing)
    # Merges without trailers of their own: the merged commit (second parent) describes them.
    merged = read_commits(repo, [c.parents[1] for c in commits if len(c.parents) > 1 and not c.trailers])
    changes: dict[str, list[PinChange]] = {}
    current: dict[str, ReleasePin | None] = {}
    errors: dict[str, str] = {}
    for path, (app, env) in tracked.items():
        previous: ReleasePin | None = None
        had_file = False
        found: list[PinChange] = []
        last_error = "no values file"
        for index, blob in touched.get(path, []):
            commit = commits[index]
            if blob == NULL_BLOB:
                pin, last_error = None, "the values file was deleted"
            else:
                pin, last_error = cache.get(blob) or cache.put(blob, texts.get(blob), f"{path}@{commit.sha[:12]}")
                if pin is None:
                    # A revision that does not parse deploys nothing (the GitOps sync fails): the
                    # environment keeps running what it ran, so it is no pin change.
                    continue
            changed = (pin is None) != (previous is None) or (
                pin is not None and previous is not None and not same_release(pin, previous))
            if changed and (had_file or pin is not None):
                described = merged.get(commit.parents[1], commit) if len(commit.parents) > 1 else commit
                found.append(PinChange(app, env, path, commit, described, pin, previous))
            previous, had_file = pin, True
        changes[path] = found
        current[path] = previous
        if last_error:
            errors[path] = last_error
    return Timeline(head=head, commits=commits, changes=changes, current=current, errors=errors,
                    tracked=dict(tracked), by_sha={c.sha: c for c in commits})


def tracked_paths(policy: Policy, apps: Iterable[str] | None = None) -> dict[str, tuple[str, str]]:
    """Values path -> (app, env) for APPS (default: every app of promotion.yaml) in every environment."""
    names = list(apps) if apps is not None else list(policy.apps)
    return {policy.repo_path(policy.app(name), env.name): (name, env.name)
            for name in names for env in policy.environments}
