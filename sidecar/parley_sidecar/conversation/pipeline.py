"""One conversation request, the same for every API surface.

validate → scrub inputs → cache lookup → component call (timeout, retries, fallback) → scrub
outputs → cache store → metrics. The alpha1/alpha2 modules do the version-specific parts
(validation order, message shapes) and call :meth:`Pipeline.call` for the rest. The pipeline never
imports a provider and never compares a component type: it only sees ``base.Conversation``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncGenerator, Iterator, Mapping
from typing import Any, Final

from parley_sidecar import errors
from parley_sidecar.components import base, catalog, streaming
from parley_sidecar.components.component_settings import MemorySettings
from parley_sidecar.components.store import ComponentStore, Entry
from parley_sidecar.conversation import cache, memory, pii_entities, pii_stream, resiliency, scrubbing
from parley_sidecar.metrics import Metrics

__all__ = ["OVERRIDE_KEYS", "Overrides", "Pipeline", "check_settings"]

log = logging.getLogger("parley.conversation")

OVERRIDE_KEYS = ("model", "key", "cacheTTL")
"""Request metadata the Dapr docs' API reference defines as per-request overrides; never forwarded."""


class Overrides:
    """Per-request settings from ``metadata`` (body or ``?metadata.*``), a Dapr-docs extension.
    A plain class, as ``alpha2.Prepared`` (see there); its repr shows no field, the key included."""

    __slots__ = ("api_key", "cache_ttl", "model", "pii_entities")

    def __init__(self, model: str | None = None, api_key: str | None = None, cache_ttl: float | None = None,
                 pii_entities: frozenset[pii_entities.Entity] | None = None) -> None:
        self.model: Final = model
        self.api_key: Final = api_key
        self.cache_ttl: Final = cache_ttl
        self.pii_entities: Final = pii_entities


_NO_OVERRIDES = Overrides()
_BREAKER_STATES = ("closed", "half-open", "open")


def check_settings(settings: Mapping[str, Any]) -> None:
    """Load-time checks of the pipeline's own Component metadata (the store calls this)."""
    configured = settings.get("piiEntities")
    if configured:
        try:
            pii_entities.parse_entities(",".join(configured))
        except ValueError as exc:
            raise catalog.MetadataError("piiEntities", str(exc)) from None


class Pipeline:
    def __init__(self, store: ComponentStore, metrics: Metrics) -> None:
        self.store = store
        self.metrics = metrics
        self.scrubbing = scrubbing.Scrubbing(metrics)
        self._caches: dict[str, tuple[Entry, cache.ResponseCache]] = {}
        self._closing: set[asyncio.Future[None]] = set()
        self.memory = memory.Memory()
        self._memories: dict[str, tuple[str, memory.RedisMemory]] = {}
        metrics.breaker_state.source = self._breaker_states

    def _breaker_states(self) -> Iterator[tuple[tuple[str, ...], float]]:
        """``parley_circuit_breaker_state``, read from the live entries at scrape time."""
        for entry in self.store.entries():
            if entry.breaker is not None:
                for state in _BREAKER_STATES:
                    yield (entry.spec.name, state), 1.0 if entry.breaker.state == state else 0.0

    # -- lookups -----------------------------------------------------------------------------------
    def entry(self, name: str) -> Entry:
        entry = self.store.get(name)
        if entry is None:
            raise errors.ComponentNotFound(name)
        return entry

    def overrides(self, name: str, metadata: Mapping[str, str]) -> Overrides:
        """Read the Dapr docs' per-request overrides; a bad value is the client's error (400)."""
        if not metadata:
            return _NO_OVERRIDES  # the common request: skip the lowering and a dataclass per call
        lowered = {k.lower(): v for k, v in metadata.items()}
        ttl: float | None = None
        if lowered.get("cachettl"):
            from parley_sidecar import durations

            try:
                ttl = durations.parse_duration(lowered["cachettl"])
            except ValueError:
                raise errors.InvalidParams(name, "metadata cacheTTL must be a duration such as 10m") from None
        entities: frozenset[pii_entities.Entity] | None = None
        if lowered.get("piientities"):
            try:
                entities = pii_entities.parse_entities(lowered["piientities"])
            except ValueError as exc:
                raise errors.InvalidParams(name, f"metadata piiEntities: {exc}") from None
        return Overrides(
            model=lowered.get("model") or None,
            api_key=lowered.get("key") or None,
            cache_ttl=ttl,
            pii_entities=entities,
        )

    # -- cache and memory ----------------------------------------------------------------------------
    def _cache_for(self, name: str, entry: Entry) -> cache.ResponseCache:
        """One cache per live component; a reloaded component starts with a fresh one."""
        current = self._caches.get(name)
        if current is not None and current[0] is entry:
            return current[1]
        if current is not None:
            closing = asyncio.ensure_future(current[1].store.aclose())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        settings = entry.settings.cache
        url = settings.store

        def evicted(reason: str) -> None:
            self.metrics.cache_evictions.inc((name, reason))

        store: cache.Store = (
            cache.RedisStore(url) if url
            else cache.LocalStore(settings.max_entries, settings.max_bytes, evicted)
        )

        def counted(result: str) -> None:
            self.metrics.cache.inc((name, result))

        made = cache.ResponseCache(store, on_result=counted)
        self._caches[name] = (entry, made)
        return made

    def _memory_for(self, name: str, entry: Entry) -> memory.MemoryStore:
        """The local store, or this component's Redis (``memoryStore``) when it names one."""
        url = entry.settings.memory.store
        if not url:
            return self.memory
        current = self._memories.get(name)
        if current is not None and current[0] == url:
            return current[1]
        if current is not None:
            closing = asyncio.ensure_future(current[1].aclose())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        made = memory.RedisMemory(url)
        self._memories[name] = (url, made)
        return made

    # -- the call ----------------------------------------------------------------------------------
    async def call(
        self,
        name: str,
        entry: Entry,
        request: base.ConverseRequest,
        *,
        overrides: Overrides | None = None,
        scrub_output: bool = False,
        scrub_history: bool = False,
        context_id: str = "",
    ) -> base.ConverseResponse:
        """Memory, cache, the component call, output scrubbing; failures become ``InvokeError``.

        ``scrub_history``: the request asked for PII scrubbing (anywhere), so the history memory
        prepends is scrubbed too: it may hold turns of requests that did not ask."""
        overrides = overrides or _NO_OVERRIDES
        settings = entry.settings
        limits = settings.memory if settings.memory.enabled and context_id else None
        store = self._memory_for(name, entry) if limits is not None else None
        sent = request if store is None else await self._with_history(
            name, entry, request, store, limits, context_id, overrides if scrub_history else None)
        ttl = overrides.cache_ttl if overrides.cache_ttl is not None else settings.cache.ttl
        started = time.perf_counter()
        success = False
        try:
            if ttl > 0:
                key = cache.cache_key(name, sent.model or str(settings.metadata.get("model", "")), sent)
                response = await self._cache_for(name, entry).get_or_call(
                    key, ttl, lambda: self._invoke(name, entry, sent))
            else:
                response = await self._invoke(name, entry, sent)
            success = True
        finally:
            self.metrics.conversation(name, success, (time.perf_counter() - started) * 1000.0)
        if scrub_output:
            answered = response
            response = await self.scrubbing.run(name, entry, overrides.pii_entities, "output",
                                                lambda scrub: scrub.response(answered),
                                                scrubbing.size_of_response(answered))
        if store is not None and limits is not None:
            reply = memory.reply_message(response)
            await store.remember(name, context_id, request.messages + ((reply,) if reply else ()), limits)
        return response

    async def _with_history(self, name: str, entry: Entry, request: base.ConverseRequest,
                            store: memory.MemoryStore | None, limits: MemorySettings | None, context_id: str,
                            scrub_for: Overrides | None) -> base.ConverseRequest:
        """The request with the conversation's earlier turns first (scrubbed when ``scrub_for``)."""
        if store is None or limits is None:
            return request
        history = await store.history(name, context_id, limits)
        if not history:
            return request
        if scrub_for is not None:
            history = await self.scrubbing.run(
                name, entry, scrub_for.pii_entities, "input", lambda scrub: scrub.messages(history),
                scrubbing.size_of_messages(history))
        return dataclasses.replace(request, messages=history + request.messages)

    async def _invoke(self, name: str, entry: Entry, request: base.ConverseRequest) -> base.ConverseResponse:
        """One resilient component call; any failure becomes ``InvokeError`` with the bare reason."""
        started = time.perf_counter()
        error_type = ""
        response: base.ConverseResponse | None = None
        try:
            response = await resiliency.invoke(self.store, entry, request, metrics=self.metrics)
            return response
        except Exception as exc:
            error_type, failure = _invoke_error(name, exc, "")
            raise failure from None
        finally:
            elapsed = time.perf_counter() - started
            usage = response.usage if response is not None else None
            labels = self.metrics.genai_labels(name, entry.ctype.name.removeprefix("conversation."),
                                               request.model or "", _configured_model(entry),
                                               response.model if response is not None else "")
            self.metrics.genai(labels, elapsed, error_type, usage.prompt_tokens if usage else 0,
                               usage.completion_tokens if usage else 0)

    # -- the stream --------------------------------------------------------------------------------
    async def stream(
        self,
        name: str,
        entry: Entry,
        request: base.ConverseRequest,
        *,
        overrides: Overrides | None = None,
        scrub_output: bool = False,
        scrub_history: bool = False,
        context_id: str = "",
    ) -> AsyncGenerator[base.Delta, None]:
        """:meth:`call`, piece by piece: the same memory, cache key, resiliency and scrubbing.

        A failure before the first piece raises from the first ``__anext__`` (so the API can still
        answer a plain error status); after it, ``InvokeError`` mid-iteration. Retries and
        fallbacks happen only before the first piece (``resiliency.stream``). The next piece is
        pulled from upstream only when the consumer asks for it: nothing is read ahead. Closing
        the generator (the client left) closes the upstream stream. The cache stores, and memory
        remembers, the assembled answer once the stream has completed: after its last piece, when
        the consumer asks for the next one (``async for`` does)."""
        overrides = overrides or _NO_OVERRIDES
        settings = entry.settings
        limits = settings.memory if settings.memory.enabled and context_id else None
        store = self._memory_for(name, entry) if limits is not None else None
        sent = await self._with_history(name, entry, request, store, limits, context_id,
                                        overrides if scrub_history else None)
        ttl = overrides.cache_ttl if overrides.cache_ttl is not None else settings.cache.ttl
        responses: cache.ResponseCache | None = None
        key = ""
        hit: base.ConverseResponse | None = None
        if ttl > 0:
            key = cache.cache_key(name, sent.model or str(settings.metadata.get("model", "")), sent)
            responses = self._cache_for(name, entry)
            hit = await responses.lookup(key)
        scrub = self.scrubbing.start(name, entry, overrides.pii_entities) if scrub_output else None
        scrubber = pii_stream.StreamScrub(scrub) if scrub is not None else None
        # Assembled only when kept: a long answer's pieces cost memory for as long as it streams.
        raw = streaming.Assembler() if responses is not None and hit is None else None
        """The answer as the component gave it: what the cache keeps."""
        answer = streaming.Assembler() if store is not None else None
        """The answer as the consumer got it (scrubbed): what memory keeps."""
        started = time.perf_counter()
        success = False
        # The resilient stream is read here, not through a generator of its own around it: a layer
        # costs a call per piece, and its frame and the loop's weak reference to it for as long as
        # the stream stays open. A cache hit is replayed, with no upstream and no GenAI metrics.
        upstream = _Upstream(entry, sent, started) if hit is None else None
        source = resiliency.stream(self.store, entry, sent, metrics=self.metrics) if hit is None else _replayed(hit)
        try:
            try:  # aclosing() without its object: it would be held for as long as the stream is open
                while True:
                    try:
                        delta = await anext(source)
                    except StopAsyncIteration:
                        break
                    except Exception as exc:
                        if upstream is None:
                            raise
                        # any failure of the upstream becomes InvokeError with the bare reason
                        upstream.error_type, failure = _invoke_error(name, exc, " while streaming")
                        raise failure from None
                    if upstream is not None:
                        upstream.add(delta)
                        if raw is not None:
                            raw.add(delta)
                    if scrubber is None:
                        out: base.Delta | None = delta
                    elif len(delta.content) > scrubbing.OFFLOAD_CHARS:
                        # a piece this large (an upstream that sends the answer in one go) is
                        # scrubbed off the loop, as a whole answer of that size is
                        out = await asyncio.to_thread(scrubber.feed, delta)
                    else:
                        out = scrubber.feed(delta)
                    if out is not None:
                        if answer is not None:
                            answer.add(out)
                        yield out
                if upstream is not None:
                    upstream.error_type = ""
            finally:
                await source.aclose()
                if upstream is not None:
                    upstream.record(self.metrics, name)
            for out in scrubber.finish() if scrubber is not None else ():
                if answer is not None:
                    answer.add(out)
                yield out
            success = True
        finally:
            self.metrics.conversation(name, success, (time.perf_counter() - started) * 1000.0)
            if scrub is not None:
                self.scrubbing.count(scrub, "output")
        if responses is not None and raw is not None:
            await responses.put(key, raw.response(), ttl)
        if store is not None and limits is not None and answer is not None:
            reply = memory.reply_message(answer.response())
            await store.remember(name, context_id, request.messages + ((reply,) if reply else ()), limits)

    async def aclose(self) -> None:
        for _, made in self._caches.values():
            await made.store.aclose()
        self._caches.clear()
        for _, remembered in self._memories.values():
            await remembered.aclose()
        self._memories.clear()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


class _Upstream:
    """One stream's GenAI metrics as its pieces pass: time to first token, time per output token,
    usage, the response model; recorded once the upstream's stream is over."""

    __slots__ = ("entry", "error_type", "first", "model", "request", "started", "streamed", "texts")

    def __init__(self, entry: Entry, request: base.ConverseRequest, started: float) -> None:
        self.entry = entry
        self.request = request
        self.started = started
        self.first: float | None = None
        self.texts = 0
        self.streamed: base.Usage | None = None
        self.model = ""  # the upstream names its model on some piece (OpenAI: every one; Anthropic: the first)
        self.error_type = "cancelled"  # unless it ends otherwise: the consumer closed it (the client left)

    def add(self, delta: base.Delta) -> None:
        if self.first is None:
            self.first = time.perf_counter()
        if delta.model:
            self.model = delta.model
        if delta.content:
            self.texts += 1
        if delta.usage is not None:
            self.streamed = delta.usage

    def record(self, metrics: Metrics, name: str) -> None:
        ended = time.perf_counter()
        error_type, first = self.error_type, self.first
        usage = self.streamed if not error_type else None
        # Labelled once the stream is over, so time to first token carries the response model
        # that later pieces may be the first to name.
        provider = self.entry.ctype.name.removeprefix("conversation.")
        labels = metrics.genai_labels(name, provider, self.request.model or "", _configured_model(self.entry),
                                      self.model)
        metrics.genai(labels, ended - self.started, error_type,
                      usage.prompt_tokens if usage else 0, usage.completion_tokens if usage else 0)
        if first is not None:
            metrics.first_token(labels, first - self.started)
        if not error_type and first is not None:
            # Without usage from the upstream, the pieces of text stand in for tokens.
            tokens = usage.completion_tokens if usage and usage.completion_tokens else self.texts
            metrics.per_output_token(labels, ended - first, tokens)


def _invoke_error(name: str, exc: Exception, doing: str) -> tuple[str, errors.InvokeError]:
    """A component call's failure as the metrics' ``error_type`` and the client's ``InvokeError``:
    the provider's reason, the request's fault (``ValueError``), or a bug (logged with its
    traceback, never shown). Called while ``exc`` is being handled."""
    if isinstance(exc, errors.ProviderError):
        return type(exc).__name__, errors.InvokeError(name, exc.reason)
    if isinstance(exc, ValueError):
        return "ValueError", errors.InvokeError(name, str(exc))
    log.exception("component %r failed%s", name, doing)
    return "internal", errors.InvokeError(name, "internal error in the component (see the sidecar log)")


def _configured_model(entry: Entry) -> str:
    model = entry.settings.metadata.get("model")
    return model if isinstance(model, str) else ""


async def _replayed(response: base.ConverseResponse) -> AsyncGenerator[base.Delta, None]:
    """A cached answer as a stream."""
    for delta in streaming.replay(response):
        yield delta
