"""Source commits between two images, from their org.opencontainers.image.revision labels."""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import git

from bot.git import git_env, is_url


@dataclass(frozen=True)
class SourceCommit:
    sha: str
    subject: str
    author: str
    url: str | None


def browse_url(source: str) -> str | None:
    """https base of a GitHub or Azure Repos repository (for commit links); None for other hosts."""
    text = source.strip()
    ssh = re.match(r"^git@github\.com:(.+?)(?:\.git)?/?$", text)
    if ssh:
        return f"https://github.com/{ssh.group(1)}"
    ssh_azure = re.match(r"^git@ssh\.dev\.azure\.com:v3/([^/]+)/([^/]+)/(.+?)/?$", text)
    if ssh_azure:
        return f"https://dev.azure.com/{ssh_azure.group(1)}/{ssh_azure.group(2)}/_git/{ssh_azure.group(3)}"
    https = re.match(r"^https://(?:[^@/]+@)?(github\.com/[^/]+/[^/]+?|dev\.azure\.com/.+/_git/[^/]+?|"
                     r"[\w-]+\.visualstudio\.com/.+/_git/[^/]+?)(?:\.git)?/?$", text)
    return f"https://{https.group(1)}" if https else None


def source_commits(source: str, old_rev: str, new_rev: str, limit: int = 200) -> list[SourceCommit]:
    """`git log OLD..NEW` (first line of each message) in SOURCE, a local repository or a clone URL."""
    link = browse_url(source)
    tmp: Path | None = None
    try:
        if is_url(source):
            tmp = Path(tempfile.mkdtemp(prefix="envbot-source-"))
            runner = git.Git()
            runner.update_environment(**git_env())
            runner.clone("--quiet", "--bare", "--filter=blob:none", source, str(tmp / "src.git"))
            path = tmp / "src.git"
        else:
            path = Path(source)
        runner = git.Git(str(path))
        runner.update_environment(**git_env())
        out = runner.log(f"--max-count={limit}", "--format=%H%x1f%s%x1f%an", f"{old_rev}..{new_rev}")
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    commits = []
    for line in out.splitlines():
        sha, subject, author = line.split("\x1f", 2)
        commits.append(SourceCommit(sha, subject, author, f"{link}/commit/{sha}" if link else None))
    return commits


def changelog_markdown(source: str | None, old_rev: str | None, new_rev: str | None) -> str:
    """The "Source changes" section; says why when it cannot be listed."""
    if not new_rev:
        return "Source changes are not available: the new image has no org.opencontainers.image.revision label.\n"
    if not old_rev:
        return (f"Source changes are not available: the current image has no revision label "
                f"(new revision {new_rev[:12]}).\n")
    if old_rev == new_rev:
        return f"Same source revision ({new_rev[:12]}).\n"
    if not source:
        return (f"Source changes {old_rev[:12]}..{new_rev[:12]} are not listed: no source repository "
                f"(pass --source-repo or label the image with org.opencontainers.image.source).\n")
    try:
        commits = source_commits(source, old_rev, new_rev)
    except git.GitCommandError as exc:
        reason = (exc.stderr or str(exc)).strip().splitlines()[-1:] or [str(exc)]
        return f"Source changes {old_rev[:12]}..{new_rev[:12]} are not available from {source}: {reason[0]}\n"
    if not commits:
        return f"No source commits in {old_rev[:12]}..{new_rev[:12]} (the new image is not newer).\n"
    lines = [f"{len(commits)} commit(s) {old_rev[:12]}..{new_rev[:12]}:", ""]
    for commit in commits:
        sha = f"[`{commit.sha[:12]}`]({commit.url})" if commit.url else f"`{commit.sha[:12]}`"
        lines.append(f"- {sha} {commit.subject} ({commit.author})")
    return "\n".join(lines) + "\n"
