"""The circuit breaker of one live component instance.

closed → open after ``threshold`` consecutive failed attempts → half-open (one trial call) after
``reset`` seconds (up to ``max_requests`` concurrent trial calls, a Resiliency's ``maxRequests``): a
trial's success closes it, its failure opens it again. The store makes one
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
    def __init__(self, threshold: int, reset: float, clock: Callable[[], float] = time.monotonic,
                 max_requests: int = 1) -> None:
        self.threshold = threshold
        self.max_requests = max_requests
        self.reset = reset
        self.clock = clock
        self.state = "closed"
        self.failures = 0
        self.opened_at = 0.0
        self.last_reason = ""
        self._trials = 0

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
        if self._trials >= self.max_requests:
            raise CircuitOpen(f"circuit half-open for component {name}: a trial call is in flight")
        self._trials += 1

    def success(self) -> None:
        self.state, self.failures, self._trials = "closed", 0, 0

    def failure(self, reason: str) -> None:
        self.failures += 1
        self.last_reason = reason
        if self.state == "half-open" or self.failures >= self.threshold:
            self.state, self.opened_at = "open", self.clock()
        self._trials = 0

    def release(self) -> None:
        """An attempt ended without saying anything about the upstream (cancelled, bad request)."""
        self._trials = max(0, self._trials - 1)
        if self.state == "half-open" and self._trials == 0:
            self.state = "open"

    @property
    def is_open(self) -> bool:
        return self.state == "open"
