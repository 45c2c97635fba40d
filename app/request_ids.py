"""Request ids: the caller's when well formed (X-Request-ID header, x-request-id gRPC metadata), else a new one."""

from __future__ import annotations

import itertools
import os
import re

# Accept caller ids that are safe to echo into headers and logs; anything else gets a fresh id.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")


class RequestIds:
    """Generated ids: a random 64-bit per-process prefix plus a counter.

    Unique like a uuid4 but without a getrandom() system call per request. Forked processes get a
    new prefix, so workers never share the parent's.
    """

    def __init__(self) -> None:
        self._new_prefix()
        os.register_at_fork(after_in_child=self._new_prefix)

    def _new_prefix(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count(1)

    def new(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"

    def for_request(self, incoming: str | None) -> str:
        """The caller's id if it is well formed, else a new one."""
        return incoming if incoming and REQUEST_ID.fullmatch(incoming) else self.new()
