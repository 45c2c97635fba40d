"""Source commits between two images, from their org.opencontainers.image.revision labels.

Labels are written by whoever can push an image, so they are data: a revision must be a 40- or
64-hex-character commit id, a source URL from a label must be https or ssh to a known forge host,
git is told where its options end (`--end-of-options`, `--`), and what the commits say (subject,
author) is escaped for Markdown and HTML and capped in length and count before it reaches a PR.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import git

from bot.git import git_env
from bot.urls import AzureReposRepo, GitHubRepo, is_source_host, parse_remote_url, redact, redact_text

REVISION = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
MAX_COMMITS = 50                 # listed in a description; the rest are counted in an "N more" line
MAX_SUBJECT = 200                # characters of a commit subject shown
MAX_AUTHOR = 80                  # characters of an author name shown
# CommonMark lets any ASCII punctuation be backslash-escaped; these start inline markup, links, images,
# tables or math in the middle of a line (block markers like '#' or '-' only act at a line's start).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()!|~$])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class SourceCommit:
    sha: str
    subject: str
    author: str
    url: str | None


@dataclass(frozen=True)
class SourceLog:
    commits: list[SourceCommit]  # newest first, at most the limit asked for
    total: int                   # all commits in OLD..NEW


def escape_markdown(text: str, limit: int) -> str:
    """TEXT as inert Markdown/HTML on one line, cut to LIMIT characters (with an ellipsis)."""
    flat = _CONTROL.sub(" ", text).strip()
    if len(flat) > limit:
        flat = flat[: limit - 1].rstrip() + "…"
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # "://" escaped too: GitHub turns bare http(s):// text into links.
    return _MARKDOWN_SPECIAL.sub(r"\\\1", flat).replace("://", ":\\/\\/")


def code_span(text: str, limit: int) -> str:
    """TEXT as an inline code span (inert in Markdown and HTML): one line, no backticks, capped."""
    flat = _CONTROL.sub(" ", text).replace("`", "'").strip()
    return f"`{flat[: limit - 1] + '…' if len(flat) > limit else flat}`"


def normalize_revision(value: str | None) -> str | None:
    """A commit id from a label: 40 (SHA-1) or 64 (SHA-256) hex characters, lower-cased; else None."""
    if value is None:
        return None
    text = value.strip().lower()
    return text if REVISION.match(text) else None


def label_source_problem(source: str) -> str | None:
    """Why a source URL taken from an image label is not used (None when it may be cloned)."""
    remote = parse_remote_url(source)
    if re.search(r"(^|[/@:])-", source.strip()):
        return "a URL part starting with '-' could be taken for an option"
    if remote.scheme not in ("https", "ssh"):
        return "only https or ssh URLs of a forge are used from image labels"
    if not is_source_host(remote.host):
        return (f"{remote.host or 'that host'} is not a known forge host (GitHub, Azure Repos, "
                f"or ENVBOT_SOURCE_HOSTS)")
    return None


def browse_url(source: str) -> str | None:
    """https base of a GitHub or Azure Repos repository (for commit links); None for other hosts."""
    remote = parse_remote_url(source)
    repo = remote.forge
    if isinstance(repo, GitHubRepo):
        host = remote.host if remote.scheme == "https" else "github.com"
        return f"https://{host}/{quote(repo.owner)}/{quote(repo.name)}"
    if isinstance(repo, AzureReposRepo):
        return (f"https://dev.azure.com/{quote(repo.organization)}/{quote(repo.project)}/_git/"
                f"{quote(repo.name)}")
    return None


def source_commits(source: str, old_rev: str, new_rev: str, limit: int = MAX_COMMITS) -> SourceLog:
    """`git log OLD..NEW` (first line of each message) in SOURCE, a local repository or a clone URL."""
    link = browse_url(source)
    tmp: Path | None = None
    span = f"{old_rev}..{new_rev}"
    try:
        if parse_remote_url(source).scheme:
            tmp = Path(tempfile.mkdtemp(prefix="envbot-source-"))
            runner = git.Git()
            runner.update_environment(**git_env())
            runner.clone("--quiet", "--bare", "--filter=blob:none", "--", source, str(tmp / "src.git"))
            path = tmp / "src.git"
        else:
            path = Path(source)
        runner = git.Git(str(path))
        runner.update_environment(**git_env())
        total = int(runner.rev_list("--count", "--end-of-options", span).strip() or 0)
        out = runner.log(f"--max-count={limit}", "--format=%H%x1f%s%x1f%an", "--end-of-options", span, "--")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    commits = []
    for line in out.splitlines():
        sha, subject, author = line.split("\x1f", 2)
        commits.append(SourceCommit(sha, subject, author, f"{link}/commit/{sha}" if link else None))
    return SourceLog(commits, max(total, len(commits)))


def changelog_markdown(source: str | None, old_label: str | None, new_label: str | None,
                       source_problem: str | None = None) -> str:
    """The "Source changes" section; says why when it cannot be listed.

    SOURCE_PROBLEM: why the only source named (an image label) was not used.
    """
    if not new_label:
        return "Source changes are not available: the new image has no org.opencontainers.image.revision label.\n"
    new_rev = normalize_revision(new_label)
    if new_rev is None:
        return (f"Source changes are not listed: the new image's revision label "
                f"{escape_markdown(new_label, 80)} is not a 40- or 64-hex-character commit id.\n")
    if not old_label:
        return (f"Source changes are not available: the current image has no revision label "
                f"(new revision {new_rev[:12]}).\n")
    old_rev = normalize_revision(old_label)
    if old_rev is None:
        return (f"Source changes are not listed: the current image's revision label "
                f"{escape_markdown(old_label, 80)} is not a 40- or 64-hex-character commit id.\n")
    if old_rev == new_rev:
        return f"Same source revision ({new_rev[:12]}).\n"
    if not source:
        why = f" ({escape_markdown(source_problem, 300)})" if source_problem else ""
        return (f"Source changes {old_rev[:12]}..{new_rev[:12]} are not listed: no source repository{why} "
                f"(pass --source-repo or label the image with org.opencontainers.image.source).\n")
    shown = code_span(redact(source), 300)
    try:
        log = source_commits(source, old_rev, new_rev)
    except git.GitCommandError as exc:
        reason = (exc.stderr or str(exc)).strip().splitlines()[-1:] or [str(exc)]
        return (f"Source changes {old_rev[:12]}..{new_rev[:12]} are not available from {shown}: "
                f"{escape_markdown(redact_text(reason[0]), 300)}\n")
    if not log.commits:
        return f"No source commits in {old_rev[:12]}..{new_rev[:12]} (the new image is not newer).\n"
    lines = [f"{log.total} commit(s) {old_rev[:12]}..{new_rev[:12]}:", ""]
    for commit in log.commits:
        sha = f"[`{commit.sha[:12]}`]({commit.url})" if commit.url else f"`{commit.sha[:12]}`"
        lines.append(f"- {sha} {escape_markdown(commit.subject, MAX_SUBJECT)} "
                     f"({escape_markdown(commit.author, MAX_AUTHOR)})")
    if log.total > len(log.commits):
        lines.append(f"- … and {log.total - len(log.commits)} more (git log {old_rev[:12]}..{new_rev[:12]})")
    return "\n".join(lines) + "\n"
