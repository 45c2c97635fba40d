"""What both forge clients share: the result type, the error, JSON over HTTP, description limits, and the
one create-or-update algorithm for pull requests (PullRequestClient.open_or_update)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import requests

from bot.output import EnvbotError

TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class PullRequest:
    url: str      # web page of the pull request
    number: int   # GitHub number / Azure Repos pullRequestId
    created: bool  # False when an open pull request for the same branches was updated


class ForgeError(EnvbotError):
    """A forge refused or could not be reached; the message says which call, status and why."""

    kind = "unreachable"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def api_error_message(response: requests.Response) -> str:
    """The API's own explanation: GitHub {message, errors[]}, Azure DevOps {message}, else the body."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip()
        return text[:300] if text else response.reason or "no response body"
    if not isinstance(body, dict):
        return str(body)[:300]
    message = str(body.get("message") or body.get("error") or "")
    details = [
        str(e.get("message") or e.get("code"))
        for e in body.get("errors") or []
        if isinstance(e, dict) and (e.get("message") or e.get("code"))
    ]
    if details:
        message = f"{message} ({'; '.join(details)})" if message else "; ".join(details)
    return message or str(body)[:300]


class JsonApi:
    """A requests session bound to one forge: every call returns decoded JSON or raises ForgeError."""

    def __init__(self, forge: str, headers: dict[str, str]) -> None:
        self.forge = forge
        self.session = requests.Session()
        self.session.headers.update(headers)

    def call(self, method: str, url: str, *, params: dict[str, str] | None = None,
             json: Any = None, expected: tuple[int, ...] = (200, 201)) -> Any:
        try:
            # No redirects: an invalid Azure DevOps token is answered with a redirect to a sign-in page.
            response = self.session.request(method, url, params=params, json=json,
                                            timeout=TIMEOUT_SECONDS, allow_redirects=False)
        except requests.RequestException as exc:
            raise ForgeError(f"{self.forge}: cannot reach {url}: {exc}") from exc
        if response.status_code not in expected:
            hint = ""
            if response.status_code in (203, 301, 302, 401):
                hint = " (is the token valid and allowed to read and write pull requests?)"
            raise ForgeError(
                f"{self.forge} {method} {url}: HTTP {response.status_code}: "
                f"{api_error_message(response)}{hint}",
                status=response.status_code,
            )
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise ForgeError(
                f"{self.forge} {method} {url}: HTTP {response.status_code} but the body is not JSON "
                f"(starts with {response.text[:80]!r})",
                status=response.status_code,
            ) from exc


def fit_description(text: str, limit: int, where_is_the_rest: str) -> tuple[str, bool]:
    """text cut to at most limit characters at a line boundary, with a note saying so.

    Returns (description, truncated). A cut inside a ``` block closes the block so the note
    renders as text, not as part of the diff.
    """
    if len(text) <= limit:
        return text, False
    note_template = "\n\n---\n**Truncated**: {shown} of {total} characters shown. {rest}"
    # Reserve room for the note (its numbers are at most as long as len(text)) and a closing fence.
    reserve = len(note_template.format(shown=len(text), total=len(text), rest=where_is_the_rest)) + 4
    budget = max(limit - reserve, 0)
    cut = text.rfind("\n", 0, budget + 1)
    kept = text[: cut if cut > 0 else budget]
    if kept.count("```") % 2 == 1:
        kept += "\n```"
    note = note_template.format(shown=len(kept), total=len(text), rest=where_is_the_rest)
    return kept + note, True


class PullRequestClient(ABC):
    """One forge's pull-request calls; `open_or_update` is the algorithm both forges share.

    Idempotent: the same promotion run again updates its open pull request (only when the title
    or description changed) instead of opening another; a pull request opened concurrently by
    another run between our search and our create is found again and updated.
    """

    description_limit: int
    truncation_note: str          # where the rest of a cut description is

    @abstractmethod
    def find_open(self, source_branch: str, target_branch: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def create(self, source_branch: str, target_branch: str, title: str, body: str) -> dict[str, Any]: ...

    @abstractmethod
    def is_already_open(self, error: ForgeError) -> bool:
        """The create failed because a pull request for these branches exists (opened concurrently)."""

    @abstractmethod
    def current(self, pull: dict[str, Any]) -> tuple[str, str]:
        """(title, description) of PULL as the forge returned it."""

    @abstractmethod
    def update(self, pull: dict[str, Any], title: str, body: str) -> dict[str, Any]: ...

    @abstractmethod
    def finish(self, pull: dict[str, Any], description: str, truncated: bool, auto_merge: bool) -> None:
        """After create/update: record a cut description in full, turn auto-merge on."""

    @abstractmethod
    def result(self, pull: dict[str, Any], created: bool) -> PullRequest: ...

    def open_or_update(self, source_branch: str, target_branch: str, title: str, description: str,
                       auto_merge: bool) -> PullRequest:
        body, truncated = fit_description(description, self.description_limit, self.truncation_note)
        existing = self.find_open(source_branch, target_branch)
        created = False
        if existing is None:
            try:
                pull = self.create(source_branch, target_branch, title, body)
                created = True
            except ForgeError as exc:
                existing = self.find_open(source_branch, target_branch) if self.is_already_open(exc) else None
                if existing is None:
                    raise
        if existing is not None:
            pull = existing
            # Skipping an identical update keeps the pull request's history free of no-op edits.
            if self.current(existing) != (title, body):
                pull = self.update(existing, title, body)
        self.finish(pull, description, truncated, auto_merge)
        return self.result(pull, created)
