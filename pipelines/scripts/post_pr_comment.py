"""Posts a file's text as a new comment thread on an Azure Repos pull request.

Usage: post_pr_comment.py --file FILE [--pull-request ID] [--repository NAME]
Azure Repos REST: POST {collection}{project}/_apis/git/repositories/{repo}/pullRequests/{id}/threads
?api-version=7.1, authenticated with the job's access token (SYSTEM_ACCESSTOKEN, mapped into the
step's env). Defaults come from the predefined variables Azure Pipelines exports:
SYSTEM_COLLECTIONURI, SYSTEM_TEAMPROJECT, SYSTEM_PULLREQUEST_PULLREQUESTID.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from urllib.parse import quote

import requests

API_VERSION = "7.1"
# Azure Repos rejects comments over 150,000 characters; keep the head and say so.
MAX_COMMENT_CHARS = 150_000


def threads_url(collection_uri: str, project: str, repository: str, pull_request_id: int) -> str:
    return (
        f"{collection_uri.rstrip('/')}/{quote(project, safe='')}/_apis/git/repositories/"
        f"{quote(repository, safe='')}/pullRequests/{pull_request_id}/threads?api-version={API_VERSION}"
    )


def thread_body(text: str) -> dict:
    if len(text) > MAX_COMMENT_CHARS:
        note = "\n\n*(truncated: the full diff is in the pipeline log)*"
        text = text[: MAX_COMMENT_CHARS - len(note)] + note
    # status "closed": an informational thread, not one that blocks completion as "active" would.
    return {"comments": [{"parentCommentId": 0, "content": text, "commentType": 1}], "status": "closed"}


def post_comment(url: str, token: str, text: str, timeout: float = 30.0) -> int:
    """Creates the thread; returns its id. Raises RuntimeError with the server's answer on failure."""
    response = requests.post(
        url,
        json=thread_body(text),
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        timeout=timeout,
    )
    if response.status_code not in (200, 201):
        raise RuntimeError(f"POST {url.split('?')[0]}: HTTP {response.status_code}: {response.text[:500]}")
    return int(response.json()["id"])


def _required_env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise SystemExit(f"environment variable {name} is not set (map it in the step's env:)")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, required=True, help="markdown to post")
    parser.add_argument("--pull-request", type=int, help="default: SYSTEM_PULLREQUEST_PULLREQUESTID")
    parser.add_argument("--repository", help="repository name or id (default: BUILD_REPOSITORY_NAME)")
    args = parser.parse_args(argv)
    try:
        text = args.file.read_text(encoding="utf-8")
    except OSError as err:
        raise SystemExit(f"{args.file}: {err.strerror}") from err
    if not text.strip():
        raise SystemExit(f"{args.file}: empty, nothing to post")
    pull_request = args.pull_request or int(_required_env("SYSTEM_PULLREQUEST_PULLREQUESTID"))
    url = threads_url(
        _required_env("SYSTEM_COLLECTIONURI"),
        _required_env("SYSTEM_TEAMPROJECT"),
        args.repository or _required_env("BUILD_REPOSITORY_NAME"),
        pull_request,
    )
    try:
        thread_id = post_comment(url, _required_env("SYSTEM_ACCESSTOKEN"), text)
    except (RuntimeError, requests.RequestException) as err:
        print(f"posting the comment failed: {err}", file=sys.stderr)
        return 1
    print(f"posted thread {thread_id} on pull request {pull_request}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
