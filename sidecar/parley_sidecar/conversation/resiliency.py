"""How one component call is attempted: timeout, retries, circuit breaker, fallback.

Kept apart from the pipeline so the pipeline reads as the list of steps, and so the policies can
be tested against a local fake upstream without the API layers. Every setting comes from the
component's own metadata (``catalog.COMMON_FIELDS``); ``docs/resiliency.md`` explains them.

One call, in order:

1. **Circuit breaker** (per component instance): after ``circuitBreakerFailures`` consecutive
   failed attempts the circuit opens and calls fail at once; after ``circuitBreakerTimeout``
   one trial call is let through (half-open): success closes the circuit, failure opens it again.
   Only failures that say something about the upstream's health count (429, 5xx, timeouts,
   connection errors); a 400 or 401 proves the upstream is up.
2. **Attempt** with ``timeout`` (per attempt; 0 means none).
3. **Retry** retryable failures up to ``maxRetries`` times: exponential backoff from
   ``retryBackoff`` with full jitter (a uniform draw in ``[0, backoff·2^n]``, capped at
   :data:`MAX_BACKOFF`), or exactly the upstream's ``Retry-After`` when it sent one. A
   ``Retry-After`` longer than :data:`MAX_RETRY_AFTER` ends the retries at once: waiting that
   long would hold the client's request for nothing, and a fallback may answer now.
4. **Fallback**: when the component still fails with a provider error, the components named in
   its ``fallback`` metadata are tried in order, each with its own policy (and its own
   fallbacks; a name already tried in this call is skipped, so cycles end). A fallback gets the
   request without the per-request ``model``/``key`` overrides, which belong to the first
   component. Errors that are the request's fault (``ValueError``) never fall back.

The breaker state is kept per component *instance*, so reloading a component with new metadata
starts it closed. Log lines and error messages carry the upstream's status and message, never
a key (``components.http_kit`` redacts them before they get here).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from parley_sidecar import errors
from parley_sidecar.components import base
from parley_sidecar.components.store import ComponentStore, Entry
from parley_sidecar.metrics import Metrics

__all__ = ["MAX_BACKOFF", "MAX_RETRY_AFTER", "Breaker", "CircuitOpen", "Policy", "breaker_for", "invoke", "policy_for"]

log = logging.getLogger("parley.resiliency")

MAX_RETRY_AFTER = 30.0
"""Seconds: the longest upstream ``Retry-After`` we wait for before giving up on retries."""
MAX_BACKOFF = 20.0
"""Seconds: the ceiling of one exponential backoff step."""

Sleep = Callable[[float], Awaitable[Any]]


class CircuitOpen(errors.ProviderError):
    """The component's circuit is open: the call was not attempted."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, retryable=False)


@dataclasses.dataclass(frozen=True, slots=True)
class Policy:
    timeout: float | None
    max_retries: int
    backoff: float
    breaker_failures: int
    """0 disables the circuit breaker."""
    breaker_timeout: float
    fallback: tuple[str, ...]

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> Policy:
        """Read a component's resolved metadata; out-of-range values are clamped, not fatal."""

        def number(key: str, default: float) -> float:
            value = settings.get(key, default)
            return max(0.0, float(value)) if isinstance(value, (int, float)) else default

        timeout = number("timeout", 60.0)
        return cls(
            timeout=timeout or None,
            max_retries=int(number("maxRetries", 3)),
            backoff=number("retryBackoff", 0.5),
            breaker_failures=int(number("circuitBreakerFailures", 5)),
            breaker_timeout=number("circuitBreakerTimeout", 30.0),
            fallback=tuple(settings.get("fallback") or ()),
        )


class Breaker:
    """closed → open after ``threshold`` consecutive failures → half-open (one trial) after ``reset``."""

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


_BREAKERS: weakref.WeakKeyDictionary[Any, Breaker] = weakref.WeakKeyDictionary()
"""One breaker per live component instance; dropped with the instance."""


def breaker_for(entry: Entry, policy: Policy) -> Breaker | None:
    if policy.breaker_failures <= 0:
        return None
    try:
        breaker = _BREAKERS.get(entry.instance)
        if breaker is None:
            breaker = _BREAKERS[entry.instance] = Breaker(policy.breaker_failures, policy.breaker_timeout)
    except TypeError:  # an instance that cannot be weakly referenced gets no breaker
        return None
    return breaker


_POLICIES: weakref.WeakKeyDictionary[Any, tuple[Mapping[str, Any], Policy]] = weakref.WeakKeyDictionary()
"""Each live component instance's policy, read once from its settings (reading it per call was
~2 % of an echo request's CPU); a reload brings a new instance or new settings, hence a new read."""


def policy_for(entry: Entry) -> Policy:
    try:
        cached = _POLICIES.get(entry.instance)
        if cached is not None and cached[0] is entry.settings:
            return cached[1]
        policy = Policy.of(entry.settings)
        _POLICIES[entry.instance] = (entry.settings, policy)
    except TypeError:  # an instance that cannot be weakly referenced: read it every time
        return Policy.of(entry.settings)
    return policy


def _label(exc: errors.ProviderError) -> str:
    if isinstance(exc, errors.ProviderTimeout):
        return "timeout"
    return str(exc.status) if exc.status else "connection"


async def _attempts(
    store: ComponentStore, entry: Entry, request: base.ConverseRequest, metrics: Metrics | None, sleep: Sleep
) -> base.ConverseResponse:
    """The component alone: breaker, attempts with timeout, retries."""
    name = entry.spec.name
    policy = policy_for(entry)
    breaker = breaker_for(entry, policy)
    attempt = 0
    while True:
        if breaker is not None:
            breaker.before(name)
        try:
            async with store.lease(entry) as component:
                if policy.timeout:
                    async with asyncio.timeout(policy.timeout):
                        response = await component.converse(request, timeout=policy.timeout)
                else:
                    response = await component.converse(request, timeout=None)
        except TimeoutError:
            failure: errors.ProviderError = errors.ProviderTimeout(policy.timeout or 0.0)
        except errors.ProviderError as exc:
            failure = exc
        except BaseException:
            if breaker is not None:
                breaker.release()
            raise
        else:
            if breaker is not None:
                breaker.success()
            return response
        if breaker is not None:
            if failure.retryable:
                breaker.failure(failure.reason)
            else:
                breaker.success()  # the upstream answered: it is up
        if not failure.retryable or attempt >= policy.max_retries or (breaker is not None and breaker.is_open):
            raise failure
        if failure.retry_after is not None:
            if failure.retry_after > MAX_RETRY_AFTER:
                log.warning("component %r: upstream asks to retry after %.0fs (over %.0fs); not retrying",
                            name, failure.retry_after, MAX_RETRY_AFTER)
                raise failure
            delay = failure.retry_after
        else:
            delay = random.uniform(0.0, min(MAX_BACKOFF, policy.backoff * 2**attempt))
        attempt += 1
        if metrics is not None:
            metrics.provider_retries.inc((name, _label(failure)))
        log.warning("component %r attempt %d failed (%s); retry %d of %d in %.2fs",
                    name, attempt, failure.reason, attempt, policy.max_retries, delay)
        await sleep(delay)


async def invoke(
    store: ComponentStore,
    entry: Entry,
    request: base.ConverseRequest,
    *,
    metrics: Metrics | None = None,
    sleep: Sleep = asyncio.sleep,
) -> base.ConverseResponse:
    """Call ``entry``'s component under its policy, then its fallbacks.

    Raises ``ProviderError`` (the first component's, with each fallback's reason appended) when
    nothing answered, or ``ValueError`` when the request cannot be sent to this provider.
    """
    response, answered_by = await _chain(store, entry, request, metrics, sleep, visited={entry.spec.name})
    if answered_by != entry.spec.name:
        log.info("component %r: answered by fallback %r", entry.spec.name, answered_by)
        if metrics is not None:
            metrics.fallbacks.inc((entry.spec.name, answered_by))
    return response


async def _chain(
    store: ComponentStore,
    entry: Entry,
    request: base.ConverseRequest,
    metrics: Metrics | None,
    sleep: Sleep,
    *,
    visited: set[str],
) -> tuple[base.ConverseResponse, str]:
    """The response and the name of the component that gave it."""
    try:
        return await _attempts(store, entry, request, metrics, sleep), entry.spec.name
    except errors.ProviderError as exc:
        failure = exc
    names = policy_for(entry).fallback
    if not names:
        raise failure
    notes: list[str] = []
    plain = dataclasses.replace(request, model=None, api_key=None)
    for name in names:
        if name in visited:
            continue
        visited.add(name)
        fallback = store.get(name)
        if fallback is None:
            log.warning("component %r: fallback %r is not loaded; skipped", entry.spec.name, name)
            notes.append(f"fallback {name}: not loaded")
            continue
        log.warning("component %r failed (%s); trying fallback %r", entry.spec.name, failure.reason, name)
        try:
            return await _chain(store, fallback, plain, metrics, sleep, visited=visited)
        except errors.ProviderError as exc:
            notes.append(f"fallback {name}: {exc.reason}")
    if not notes:
        raise failure
    raise errors.ProviderError(
        "; ".join([failure.reason, *notes]), status=failure.status, retryable=False,
    ) from None
