"""The circuit breaker of one live component instance.

closed → open after ``threshold`` consecutive failed attempts → half-open (one trial call) after
``reset`` seconds: the trial's success closes it, its failure opens it again. The store makes one
per entry from the entry's settings, so a reloaded component starts closed. No I/O here.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from parley_sidecar import errors

__all__ = ["Breaker", "CircuitOpen"]


class CircuitOpen(errors.ProviderError):
    """The component's circuit is open: the call was not attempted."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, retryable=False)


class Breaker:
    def __init__(self, threshold: int, reset: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.reset = reset
        self.clock = clock
        self.state = "closed"
        self.failures = 0
        self.opened_at = 0.0
        self.last_reason = ""
        self._trial = False

    def before(self, name: str) -> None:
        """Let an attempt through, or raise :class:`CircuitOpen`."""
        if self.state == "closed":
            return
        if self.state == "open":
            waited = self.clock() - self.opened_at
            if waited < self.reset:
                raise CircuitOpen(
                    f"circuit open for component {name} after {self.failures} consecutive failures "
                    f"(last: {self.last_reason}); next trial in {self.reset - waited:.1f}s"
                )
            self.state = "half-open"
        if self._trial:
            raise CircuitOpen(f"circuit half-open for component {name}: a trial call is in flight")
        self._trial = True

    def success(self) -> None:
        self.state, self.failures, self._trial = "closed", 0, False

    def failure(self, reason: str) -> None:
        self.failures += 1
        self.last_reason = reason
        if self.state == "half-open" or self.failures >= self.threshold:
            self.state, self.opened_at = "open", self.clock()
        self._trial = False

    def release(self) -> None:
        """An attempt ended without saying anything about the upstream (cancelled, bad request)."""
        self._trial = False
        if self.state == "half-open":
            self.state = "open"

    @property
    def is_open(self) -> bool:
        return self.state == "open"
