"""Retries with exponential backoff and jitter for the store's idempotent reads."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from app.modelstore.errors import ModelStoreError, TransientError

T = TypeVar("T")
log = logging.getLogger("app.modelstore")


class Backoff:
    """Counts consecutive failures; `wait` sleeps base * 2**n (capped, jittered) or gives up after `attempts`."""

    def __init__(self, what: str, attempts: int = 6, base: float = 0.5, cap: float = 30.0) -> None:
        self.what = what
        self.attempts = max(1, attempts)
        self.base = base
        self.cap = cap
        self.failures = 0

    def wait(self, error: TransientError) -> None:
        self.failures += 1
        if self.failures >= self.attempts:
            raise ModelStoreError(f"{error} (gave up after {self.failures} attempts)") from None
        delay = min(self.cap, self.base * 2 ** (self.failures - 1)) * random.uniform(0.5, 1.0)
        log.warning("%s failed, retrying in %.1fs (%d/%d): %s", self.what, delay, self.failures,
                    self.attempts - 1, error)
        time.sleep(delay)

    def reset(self) -> None:
        """Progress was made: the next failure starts the backoff over."""
        self.failures = 0

    def call(self, func: Callable[[], T]) -> T:
        while True:
            try:
                return func()
            except TransientError as error:
                self.wait(error)
