"""How one component call is attempted: timeout, retries, circuit breaker, fallback.

Kept apart from the pipeline so the pipeline reads as the list of steps, and so the policies can
be tested against a local fake upstream without the API layers. Every setting comes from the
component's own metadata, parsed once at load, under a Dapr ``Resiliency`` resource's target when
one names the component; the store makes that one effective policy (``entry.settings.resiliency``).
``docs/resiliency.md`` explains them.

One call, in order, all of it within the component's ``callTimeout`` (the whole call's deadline:
attempts, backoff and fallbacks together; each attempt's timeout is cut to what is left of it):

1. **Circuit breaker** (per component instance): after ``circuitBreakerFailures`` consecutive
   failed attempts the circuit opens and calls fail at once; after ``circuitBreakerTimeout``
   one trial call is let through (half-open): success closes the circuit, failure opens it again.
   Only failures that say something about the upstream's health count (429, 5xx, timeouts,
   connection errors); a 400 or 401 proves the upstream is up.
2. **Attempt** with ``timeout`` (per attempt; 0 means none).
3. **Retry** retryable failures up to ``maxRetries`` times (-1: until the deadline): by default
   exponential backoff from ``retryBackoff`` with full jitter (a uniform draw in
   ``[0, backoff·2^n]``, capped at ``max_interval``); a Resiliency's ``constant`` policy waits
   ``duration`` each time, its ``exponential`` one follows dapr/kit (×1.5 per retry, ±50 %
   randomised, capped at ``maxInterval``); or exactly the upstream's ``Retry-After`` when it sent one. A
   ``Retry-After`` longer than :data:`MAX_RETRY_AFTER` ends the retries at once: waiting that
   long would hold the client's request for nothing, and a fallback may answer now.
4. **Fallback**: when the component still fails with a provider error, the components named in
   its ``fallback`` metadata are tried in order, each with its own policy (and its own
   fallbacks; a name already tried in this call is skipped, so cycles end). A fallback gets the
   request without the per-request ``model``/``key`` overrides, which belong to the first
   component. Errors that are the request's fault (``ValueError``) never fall back.

A stream (:func:`stream`) gets the same policy up to its first piece: an attempt there is opening
the stream and waiting for its first piece, so ``timeout`` is the first-byte timeout and
``callTimeout`` ends at the first piece (a long answer may stream for minutes). After the first
piece nothing is retried or falls back (the caller has it); ``streamIdleTimeout`` bounds each wait
for the next piece.

The breaker is the entry's own (``entry.breaker``), so reloading a component with new metadata
starts it closed. Log lines and error messages carry the upstream's status and message, never
a key (``components.http_kit`` redacts them before they get here).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, TypeVar

from parley_sidecar import errors, tracing
from parley_sidecar.components import base, streaming
from parley_sidecar.components.component_settings import ResiliencySettings
from parley_sidecar.components.store import ComponentStore, Entry
from parley_sidecar.metrics import Metrics

if TYPE_CHECKING:
    from parley_sidecar import tracing_otel

__all__ = ["MAX_BACKOFF", "MAX_RETRY_AFTER", "DeadlineExceeded", "EmptyStream", "StreamIdle", "invoke", "stream"]

log = logging.getLogger("parley.resiliency")

MAX_RETRY_AFTER = 30.0
"""Seconds: the longest upstream ``Retry-After`` we wait for before giving up on retries."""
MAX_BACKOFF = 20.0
"""Seconds: the ceiling of one exponential backoff step (the metadata policy's ``max_interval``)."""
_MULTIPLIER = 1.5
_RANDOMIZATION = 0.5
"""dapr/kit's exponential backoff: each interval ×1.5, the wait drawn within ±50 % of it."""

Sleep = Callable[[float], Awaitable[Any]]
_T = TypeVar("_T")
Attempt = Callable[[ComponentStore, Entry, base.ConverseRequest, "float | None"], Awaitable[_T]]
"""One try at one component, given its own timeout (a plain call, or opening a stream); the policy
around it (breaker, cut to the deadline, retries, fallbacks) is the same for both."""

_GUARD_DELAY = 0.05
"""Seconds after ``callTimeout`` at which the whole call is stopped regardless (see :func:`invoke`)."""


class DeadlineExceeded(errors.ProviderError):
    """The whole call (attempts, backoff, fallbacks) ran out of its ``callTimeout``."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"no answer within the call deadline of {seconds:g}s (callTimeout)", retryable=False)


def _label(exc: errors.ProviderError) -> str:
    if isinstance(exc, errors.ProviderTimeout):
        return "timeout"
    return str(exc.status) if exc.status else "connection"


class _Deadline:
    # A plain class, as _Opened and alpha2.Prepared: see Prepared for why not a dataclass.
    __slots__ = ("at", "seconds")

    def __init__(self, at: float, seconds: float) -> None:
        self.at: Final = at
        """The event loop's clock when the call must end."""
        self.seconds: Final = seconds
        """The budget it was given (for the error message)."""

    def left(self) -> float:
        return max(0.0, self.at - asyncio.get_running_loop().time())


def _cut(timeout: float | None, deadline: _Deadline | None) -> float | None:
    if deadline is None:
        return timeout
    left = deadline.left()
    return left if timeout is None else min(timeout, left)


def _backoff(policy: ResiliencySettings, attempt: int) -> float:
    """Seconds to wait before retry ``attempt + 1`` when the upstream named none."""
    if policy.backoff_policy == "constant":
        return policy.backoff
    if policy.backoff_policy == "exponential":
        # The exponent is capped: with maxRetries -1 it would otherwise overflow a float one day.
        interval = min(policy.max_interval, policy.backoff * _MULTIPLIER ** min(attempt, 64))
        low, high = interval * (1 - _RANDOMIZATION), interval * (1 + _RANDOMIZATION)
        return min(policy.max_interval, random.uniform(low, high))
    return random.uniform(0.0, min(policy.max_interval, policy.backoff * 2 ** min(attempt, 64)))


# -- attempt spans (tracing on only) ----------------------------------------------------------------
# One client span per attempt, named and described by OpenTelemetry's GenAI conventions; retries
# and fallbacks are each an attempt, so they show as siblings under the API call's span.

_PROVIDER_NAMES = {
    # GenAI semantic-convention names where they differ from the component type's last part.
    "conversation.googleai": "gcp.gemini", "conversation.aws.bedrock": "aws.bedrock",
    "conversation.mistral": "mistral_ai", "conversation.huggingface": "huggingface",
}


def _model(entry: Entry, request: base.ConverseRequest) -> str:
    return request.model or str(entry.settings.metadata.get("model") or "")


def _message_json(messages: tuple[base.Message, ...]) -> str:
    """The GenAI conventions' ``gen_ai.input.messages`` shape (only when content capture is on)."""
    out = []
    for message in messages:
        parts: list[dict[str, str]] = []
        for part in message.parts:
            if isinstance(part, base.TextPart):
                parts.append({"type": "text", "content": part.text})
            elif isinstance(part, base.ToolCall):
                parts.append({"type": "tool_call", "id": part.id, "name": part.name, "arguments": part.arguments})
            else:
                parts.append({"type": "tool_call_response", "id": part.tool_id, "response": part.content})
        out.append({"role": str(message.role), "parts": parts})
    return json.dumps(out, ensure_ascii=False)


def _attempt_span(entry: Entry, request: base.ConverseRequest) -> tracing_otel.AttemptScope | None:
    model = _model(entry, request)
    attributes: dict[str, tracing.Value] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": _PROVIDER_NAMES.get(entry.spec.type, entry.spec.type.rsplit(".", 1)[-1]),
        "parley.component": entry.spec.name,
    }
    if model:
        attributes["gen_ai.request.model"] = model
    if request.max_tokens:
        attributes["gen_ai.request.max_tokens"] = request.max_tokens
    if request.temperature:
        attributes["gen_ai.request.temperature"] = request.temperature
    if tracing.capture_content():
        attributes["gen_ai.input.messages"] = _message_json(request.messages)
    return tracing.attempt(f"chat {model}" if model else "chat", attributes)


def _usage(usage: base.Usage | None, attributes: dict[str, tracing.Value]) -> None:
    if usage is not None:
        attributes["gen_ai.usage.input_tokens"] = usage.prompt_tokens
        attributes["gen_ai.usage.output_tokens"] = usage.completion_tokens


def _answered(response: base.ConverseResponse) -> dict[str, tracing.Value]:
    attributes: dict[str, tracing.Value] = {
        "gen_ai.response.finish_reasons": tuple(c.finish_reason for o in response.outputs for c in o.choices),
    }
    if response.served_model or response.model:
        attributes["gen_ai.response.model"] = response.served_model or response.model
    _usage(response.usage, attributes)
    if tracing.capture_content():
        attributes["gen_ai.output.messages"] = json.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": c.content}], "finish_reason": c.finish_reason}
             for o in response.outputs for c in o.choices], ensure_ascii=False)
    return attributes


def _piece(span: tracing.AttemptSpan, delta: base.Delta) -> None:
    """What a streamed piece says of the answer as a whole (most pieces say nothing: no cost).
    With content capture on, the pieces' text is gathered and set at the finish, as :func:`_answered`
    sets a whole answer's."""
    capture = tracing.capture_content()
    if capture and delta.content:
        span.collect(delta.content)
    if not (delta.model or delta.finish_reason or delta.usage is not None):
        return
    attributes: dict[str, tracing.Value] = {}
    if delta.served_model or delta.model:
        attributes["gen_ai.response.model"] = delta.served_model or delta.model
    if delta.finish_reason:
        attributes["gen_ai.response.finish_reasons"] = (delta.finish_reason,)
        if capture:
            attributes["gen_ai.output.messages"] = json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": span.collected()}],
                  "finish_reason": delta.finish_reason}], ensure_ascii=False)
    _usage(delta.usage, attributes)
    span.answered(attributes)


async def _attempts(
    store: ComponentStore, entry: Entry, request: base.ConverseRequest, metrics: Metrics | None, sleep: Sleep,
    deadline: _Deadline | None, attempt_once: Attempt[_T],
) -> _T:
    """The component alone: breaker, attempts with timeout, retries; never past the deadline."""
    name = entry.spec.name
    policy = entry.settings.resiliency
    breaker = entry.breaker
    attempt = 0
    while True:
        if deadline is not None and deadline.left() <= 0:
            raise DeadlineExceeded(deadline.seconds)
        timeout = _cut(policy.timeout, deadline)
        if breaker is not None:
            breaker.before(name)
        span = _attempt_span(entry, request) if tracing.recording() else None
        try:
            # The component's own timeout stays the attempt's: when the deadline cuts it, the
            # cut fires here first and is reported as the deadline, not as a slow upstream. (A
            # plain call's component gets no timeout of its own: this timer is the only one.)
            if timeout:
                async with asyncio.timeout(timeout):
                    response = await attempt_once(store, entry, request, policy.timeout)
            else:
                response = await attempt_once(store, entry, request, None)
        except TimeoutError:
            failure: errors.ProviderError = (
                errors.ProviderTimeout(policy.timeout or 0.0) if timeout == policy.timeout
                else DeadlineExceeded(deadline.seconds if deadline is not None else 0.0)
            )
        except errors.ProviderError as exc:
            failure = exc
        except BaseException as exc:
            if breaker is not None:
                breaker.release()
            if span is not None:
                span.close("cancelled" if isinstance(exc, asyncio.CancelledError) else type(exc).__name__, str(exc))
            raise
        else:
            if breaker is not None:
                breaker.success()
            if span is not None:
                span.close()
            return response
        if span is not None:
            span.close(_label(failure), failure.reason)
        if isinstance(failure, DeadlineExceeded):
            if breaker is not None:
                breaker.release()  # cut short by the call's budget: says nothing of the upstream
            raise failure
        if breaker is not None:
            if failure.retryable:
                breaker.failure(failure.reason)
            else:
                breaker.success()  # the upstream answered: it is up
        if (not failure.retryable or 0 <= policy.max_retries <= attempt
                or (breaker is not None and breaker.is_open)):
            raise failure
        if failure.retry_after is not None:
            if failure.retry_after > MAX_RETRY_AFTER:
                log.warning("component %r: upstream asks to retry after %.0fs (over %.0fs); not retrying",
                            name, failure.retry_after, MAX_RETRY_AFTER)
                raise failure
            delay = failure.retry_after
        else:
            delay = _backoff(policy, attempt)
        if deadline is not None and delay >= deadline.left():
            # Waiting would outlive the call's deadline: the last failure says more than a timeout.
            raise failure
        attempt += 1
        if metrics is not None:
            metrics.provider_retries.inc((name, _label(failure)))
        log.warning("component %r attempt %d failed (%s); retry %d of %s in %.2fs", name, attempt, failure.reason,
                    attempt, policy.max_retries if policy.max_retries >= 0 else "unlimited", delay)
        await sleep(delay)


async def _converse(store: ComponentStore, entry: Entry, request: base.ConverseRequest,
                    timeout: float | None) -> base.ConverseResponse:
    """One attempt of a plain call. ``timeout`` is not passed on: :func:`_attempts` already bounds
    the whole attempt (lease, request, answer) with it, and the component's client would only
    start a second timer that fires after that one (a timer per call, ~3 % of its instructions)."""
    async with store.lease(entry) as component:
        response = await component.converse(request, timeout=None)
    span = tracing.attempt_span()
    if span is not None:
        span.answered(_answered(response))
    return response


async def invoke(
    store: ComponentStore,
    entry: Entry,
    request: base.ConverseRequest,
    *,
    metrics: Metrics | None = None,
    sleep: Sleep = asyncio.sleep,
) -> base.ConverseResponse:
    """Call ``entry``'s component under its policy, then its fallbacks, within its ``callTimeout``.

    Raises ``ProviderError`` (the first component's, with each fallback's reason appended) when
    nothing answered, ``DeadlineExceeded`` when the whole call ran out of time, or ``ValueError``
    when the request cannot be sent to this provider.
    """
    return await _run(store, entry, request, metrics, sleep, _converse)


async def _run(store: ComponentStore, entry: Entry, request: base.ConverseRequest, metrics: Metrics | None,
               sleep: Sleep, attempt_once: Attempt[_T]) -> _T:
    """``attempt_once`` under ``entry``'s policy, then its fallbacks', within its ``callTimeout``."""
    seconds = entry.settings.resiliency.deadline
    deadline = None if seconds is None else _Deadline(asyncio.get_running_loop().time() + seconds, seconds)
    try:
        # Attempts are cut to the deadline and report it with what failed before; this guard only
        # ends what is not cut (a lease, a backoff sleep), so it fires a moment later, never first.
        async with asyncio.timeout_at(None if deadline is None else deadline.at + _GUARD_DELAY):
            response, answered_by = await _chain(store, entry, request, metrics, sleep, deadline, attempt_once,
                                                 visited={entry.spec.name})
    except TimeoutError:
        # What can outlast the deadline here is only a backoff sleep or a lease: attempts are cut to it.
        raise DeadlineExceeded(seconds or 0.0) from None
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
    deadline: _Deadline | None,
    attempt_once: Attempt[_T],
    *,
    visited: set[str],
) -> tuple[_T, str]:
    """The response and the name of the component that gave it."""
    try:
        return await _attempts(store, entry, request, metrics, sleep, deadline, attempt_once), entry.spec.name
    except DeadlineExceeded:
        raise
    except errors.ProviderError as exc:
        failure = exc
    names = entry.settings.resiliency.fallback
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
            return await _chain(store, fallback, plain, metrics, sleep, deadline, attempt_once, visited=visited)
        except DeadlineExceeded as exc:
            notes.append(f"fallback {name}: {exc.reason}")
            break
        except errors.ProviderError as exc:
            notes.append(f"fallback {name}: {exc.reason}")
    if not notes:
        raise failure
    raise errors.ProviderError(
        "; ".join([failure.reason, *notes]), status=failure.status, retryable=False,
    ) from None


# -- streams ---------------------------------------------------------------------------------------
# A stream gets the same policy as a call, up to its first piece: opening the stream and waiting for
# that piece is the "attempt" above (breaker, per-attempt timeout as the first-piece timeout,
# retries, fallbacks, all within callTimeout). Once a piece has gone to the caller nothing can be
# taken back, so a later failure ends the stream; only streamIdleTimeout guards it from then on.


class StreamIdle(errors.ProviderError):
    """A stream that had begun went longer than ``streamIdleTimeout`` without a piece."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the stream stalled: no piece for {seconds:g}s (streamIdleTimeout)", retryable=False)


class EmptyStream(errors.ProviderError):
    """The upstream ended its stream before any piece of an answer (as a cut connection would)."""

    def __init__(self) -> None:
        super().__init__("the upstream ended the stream before any answer", retryable=True)


class _Opened:
    """A stream whose first piece has arrived: the rest, and what closes it (stream, lease)."""

    __slots__ = ("first", "idle_timeout", "lease", "rest", "span")

    def __init__(self, first: base.Delta, rest: AsyncIterator[base.Delta],
                 lease: contextlib.AbstractAsyncContextManager[base.Conversation], idle_timeout: float | None,
                 span: tracing.AttemptSpan | None = None) -> None:
        self.first = first
        self.rest = rest
        self.lease = lease
        self.idle_timeout = idle_timeout
        """The answering component's ``streamIdleTimeout`` (a fallback's own)."""
        self.span = span
        """The answering attempt's span (tracing on), kept open until the stream ends."""

    async def aclose(self) -> None:
        await _release(self.lease, self.rest, self.span)


async def _release(lease: contextlib.AbstractAsyncContextManager[base.Conversation],
                   pieces: AsyncIterator[base.Delta] | None, span: tracing.AttemptSpan | None) -> None:
    """End the span, close the stream, end the lease: each even when one before it failed. (An
    ``AsyncExitStack`` did this; its two deques were ~0.8 KB for as long as a stream stays open.)"""
    try:
        if span is not None:
            span.end()
    finally:
        try:
            if pieces is not None:
                await _close(pieces)
        finally:
            await lease.__aexit__(None, None, None)


def _empty(delta: base.Delta) -> bool:
    """A piece with nothing for the client (a role-only chunk, a bare model name): it neither ends
    the first-piece wait nor makes a retry unsafe."""
    return not (delta.content or delta.tool_calls or delta.finish_reason or delta.usage is not None)


async def _close(pieces: AsyncIterator[base.Delta]) -> None:
    # base.Streaming: closing the iterator closes the upstream connection.
    close = getattr(pieces, "aclose", None)
    if close is not None:
        await close()


async def _open(store: ComponentStore, entry: Entry, request: base.ConverseRequest,
                timeout: float | None) -> _Opened:
    """One attempt of a stream: lease the component, open its stream, wait for a first real piece.
    ``timeout`` is not passed on, as :func:`_converse` does not: :func:`_attempts` already bounds
    all of this (lease, request, first piece) with it, and the component's own first-piece timer
    would fire after that one (two timers armed and cancelled per stream for nothing)."""
    lease = store.lease(entry)
    component = await lease.__aenter__()
    pieces: AsyncIterator[base.Delta] | None = None
    span: tracing.AttemptSpan | None = None
    try:
        pieces = streaming.open_stream(component, request, timeout=None)
        model = ""
        async for piece in pieces:
            if not _empty(piece):
                first = dataclasses.replace(piece, model=model) if model and not piece.model else piece
                span = tracing.attempt_span()
                if span is not None:  # the attempt's span lasts as long as its stream
                    span.keep_open()
                    _piece(span, first)
                return _Opened(first, pieces, lease, entry.settings.stream.idle_timeout, span)
            model = piece.model or model
        raise EmptyStream()
    except BaseException:
        await _release(lease, pieces, span)
        raise


class _IdleWatch:
    """``streamIdleTimeout`` for one stream: cancels the waiting task when no piece came for
    ``idle`` seconds while the caller waited, as ``asyncio.timeout`` would, but with one timer per
    idle period instead of one per piece. :meth:`waiting` only notes the time; the timer, when it
    fires, re-arms itself at the end of the current wait unless that has passed. A stream of
    thousands of pieces then costs a clock read per piece, not a timer scheduled and cancelled."""

    __slots__ = ("_cancelling", "_handle", "_idle", "_loop", "_since", "_task", "fired")

    def __init__(self, idle: float) -> None:
        self._idle = idle
        self._loop = asyncio.get_running_loop()
        self._since: float | None = None
        """When the caller began waiting for the current piece; None: it is not waiting."""
        self._task: asyncio.Task[Any] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._cancelling = 0
        self.fired = False

    def waiting(self) -> None:
        self._since = self._loop.time()
        self._task = asyncio.current_task()
        if self._handle is None:
            self._handle = self._loop.call_at(self._since + self._idle, self._check)

    def arrived(self) -> None:
        self._since = None

    def _check(self) -> None:
        self._handle = None
        if self._since is None or self._task is None:
            return  # not waiting: the next wait arms the timer again
        due = self._since + self._idle
        if self._loop.time() < due:
            self._handle = self._loop.call_at(due, self._check)
            return
        self.fired = True
        self._cancelling = self._task.cancelling()
        self._task.cancel()

    def expired(self) -> bool:
        """After a ``CancelledError``: whether it was this watch's (and no one else's) cancel."""
        if not self.fired or self._task is None:
            return False
        self.fired = False
        return self._task.uncancel() <= self._cancelling

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


async def stream(
    store: ComponentStore,
    entry: Entry,
    request: base.ConverseRequest,
    *,
    metrics: Metrics | None = None,
    sleep: Sleep = asyncio.sleep,
) -> AsyncGenerator[base.Delta, None]:
    """``entry``'s component's stream under its policy until the first piece (as :func:`invoke`),
    then each piece as the caller asks for it, each within ``streamIdleTimeout``.

    Raises what :func:`invoke` raises from the first ``__anext__``; after the first piece,
    ``ProviderError`` (:class:`StreamIdle`, or the component's own) ends the stream. Closing the
    generator closes the component's stream and ends the lease."""
    opened = await _run(store, entry, request, metrics, sleep, _open)
    idle = opened.idle_timeout
    watch = _IdleWatch(idle) if idle else None
    rest = opened.rest
    try:
        yield opened.first
        while True:
            # The clock runs only while the caller waits for a piece: a slow reader is not an
            # idle upstream (and nothing is read ahead for it: no queue grows).
            if watch is not None:
                watch.waiting()
            try:
                delta = await anext(rest)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                if watch is not None and watch.expired():
                    if opened.span is not None:
                        opened.span.failed("stream_idle", f"no piece for {idle:g}s (streamIdleTimeout)")
                    raise StreamIdle(idle or 0.0) from None
                raise
            except errors.ProviderError as exc:
                if opened.span is not None:
                    opened.span.failed(_label(exc), exc.reason)
                raise
            if watch is not None:
                watch.arrived()
            if opened.span is not None:
                _piece(opened.span, delta)
            yield delta
    finally:
        if watch is not None:
            watch.close()
        await opened.aclose()
