"""Response cache: successful provider answers kept for ``responseCacheTTL``, shared or local.

The key is daprd's (the messages after input scrubbing plus every call option) plus the model,
the component name and, when a request brings its own API key, a hash of it, so one tenant's
answers are never served to another key. Only successful responses are stored, whole, so a hit
returns the original usage. The local store is an LRU bounded by entries and by bytes;
``cacheStore: redis://…`` shares entries between replicas, and when Redis is unreachable the
sidecar answers uncached (and says so in the log once, not per request).

Concurrent identical requests make one provider call (single flight): the call runs as a task of
its own that every caller of the key, the first included, awaits through ``asyncio.shield``. A
caller that leaves (a gRPC deadline, a client that disconnects) takes only itself away; the call
is cancelled when its last caller has left, so upstream work is neither wasted nor leaked.

A streamed answer is keyed the same way: a hit is replayed as a stream, a miss streams from the
upstream and stores the answer, assembled, only if the stream completed (``Pipeline.stream``).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from parley_sidecar.components import base

__all__ = ["LocalStore", "RedisStore", "ResponseCache", "cache_key", "decode", "encode"]

log = logging.getLogger("parley.cache")


def _default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"_": type(value).__name__, **{f.name: getattr(value, f.name) for f in dataclasses.fields(value)}}
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "items"):
        return dict(value.items())
    raise TypeError(type(value).__name__)


def cache_key(component: str, model: str, request: base.ConverseRequest) -> str:
    """A stable digest of everything that can change the answer (never the key itself)."""
    options = dataclasses.replace(request, api_key=None, model=None)
    material = json.dumps([component, model, options], default=_default, sort_keys=True, ensure_ascii=False)
    if request.api_key:
        material += "\x00" + hashlib.sha256(request.api_key.encode()).hexdigest()
    return hashlib.sha256(material.encode()).hexdigest()


def encode(response: base.ConverseResponse) -> bytes:
    return json.dumps(response, default=_default, separators=(",", ":"), ensure_ascii=False).encode()


def decode(data: bytes) -> base.ConverseResponse:
    raw = json.loads(data)
    usage = raw["usage"]
    return base.ConverseResponse(
        outputs=tuple(
            base.Output(tuple(
                base.Choice(c["finish_reason"], c["index"], c["content"],
                            tuple(base.ToolCall(t["id"], t["name"], t["arguments"], t.get("extra_content"))
                                  for t in c["tool_calls"]))
                for c in o["choices"]))
            for o in raw["outputs"]
        ),
        usage=None if usage is None else base.Usage(
            usage["completion_tokens"], usage["prompt_tokens"], usage["total_tokens"],
            None if usage["completion_details"] is None else base.CompletionDetails(
                **{k: v for k, v in usage["completion_details"].items() if k != "_"}),
            None if usage["prompt_details"] is None else base.PromptDetails(
                **{k: v for k, v in usage["prompt_details"].items() if k != "_"}),
        ),
        model=raw["model"],
    )


class Store(Protocol):
    async def get(self, key: str) -> bytes | None: ...
    async def put(self, key: str, value: bytes, ttl: float) -> None: ...
    async def aclose(self) -> None: ...


class LocalStore:
    """In-process LRU, bounded by entry count and total bytes; expiry fixed at insertion."""

    def __init__(self, max_entries: int, max_bytes: int, on_evict: Callable[[str], None]) -> None:
        self._items: collections.OrderedDict[str, tuple[float, bytes]] = collections.OrderedDict()
        self._bytes = 0
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._on_evict = on_evict

    def __len__(self) -> int:
        return len(self._items)

    async def get(self, key: str) -> bytes | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, value = item
        if expires <= time.monotonic():
            self._drop(key, "expired")
            return None
        self._items.move_to_end(key)
        return value

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        if len(value) > self.max_bytes or self.max_entries <= 0:
            return
        if key in self._items:
            self._drop(key, None)
        self._items[key] = (time.monotonic() + ttl, value)
        self._bytes += len(value)
        while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
            self._drop(next(iter(self._items)), "capacity")

    def _drop(self, key: str, reason: str | None) -> None:
        _, value = self._items.pop(key)
        self._bytes -= len(value)
        if reason is not None:
            self._on_evict(reason)

    async def aclose(self) -> None:
        self._items.clear()
        self._bytes = 0


class RedisStore:
    """Entries shared by every replica, under ``parley:cache:<digest>``, with Redis's own expiry.

    Errors never fail a request: a failed read is a miss, a failed write is skipped. Short
    socket timeouts keep a dead Redis from adding more than a few milliseconds.
    """

    def __init__(self, url: str, *, timeout: float = 0.25) -> None:
        import redis.asyncio as redis

        self._client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._down_since: float | None = None

    def _failed(self, exc: Exception) -> None:
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("response cache store unreachable (%s); answering uncached until it is back",
                        type(exc).__name__)

    def _ok(self) -> None:
        if self._down_since is not None:
            log.info("response cache store is back after %.1fs", time.monotonic() - self._down_since)
            self._down_since = None

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self._client.get(f"parley:cache:{key}")
        except Exception as exc:  # any client or network error is a miss
            self._failed(exc)
            return None
        self._ok()
        return value if isinstance(value, bytes) else None

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        try:
            await self._client.set(f"parley:cache:{key}", value, px=max(1, int(ttl * 1000)))
        except Exception as exc:
            self._failed(exc)
            return
        self._ok()

    async def aclose(self) -> None:
        await self._client.aclose()


class _Flight:
    """One shared provider call and how many callers still wait for it."""

    __slots__ = ("task", "waiters")
    task: asyncio.Task[base.ConverseResponse]

    def __init__(self) -> None:
        self.waiters = 0


class ResponseCache:
    def __init__(self, store: Store, *, on_result: Callable[[str], None]) -> None:
        self.store = store
        self._on_result = on_result
        self._pending: dict[str, _Flight] = {}

    async def get_or_call(
        self, key: str, ttl: float, call: Callable[[], Awaitable[base.ConverseResponse]]
    ) -> base.ConverseResponse:
        data = await self.store.get(key)
        if data is not None:
            self._on_result("hit")
            return decode(data)
        flight = self._pending.get(key)
        if flight is not None:
            self._on_result("hit")
        else:
            self._on_result("miss")
            flight = self._pending[key] = _Flight()
            flight.task = asyncio.create_task(self._shared(key, ttl, call, flight))
        flight.waiters += 1
        try:
            # shield: one caller's cancellation must not cancel the call the others wait for.
            return await asyncio.shield(flight.task)
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                # The last caller left: nobody will read the answer, so stop the upstream call
                # (closing its connection) instead of paying for it or leaving it running.
                flight.task.cancel()
                if self._pending.get(key) is flight:
                    del self._pending[key]

    async def lookup(self, key: str) -> base.ConverseResponse | None:
        """A stream's lookup: the stored answer (a hit), or None (a miss, counted as one).

        Streams do not join or start a single flight: a stream's pieces go to one caller as they
        come, so a second identical stream would have to wait for the whole answer, which defeats
        streaming; it streams from the upstream too, and the first to complete stores the answer."""
        data = await self.store.get(key)
        if data is None:
            self._on_result("miss")
            return None
        self._on_result("hit")
        return decode(data)

    async def put(self, key: str, response: base.ConverseResponse, ttl: float) -> None:
        """Store a stream's answer, assembled, once it completed."""
        await self.store.put(key, encode(response), ttl)

    async def _shared(
        self, key: str, ttl: float, call: Callable[[], Awaitable[base.ConverseResponse]], flight: _Flight,
    ) -> base.ConverseResponse:
        """The provider call shared by every caller of ``key``; stores a success for ``ttl``."""
        try:
            response = await call()
            await self.store.put(key, encode(response), ttl)
            return response
        except asyncio.CancelledError:
            log.info("shared provider call cancelled: every request waiting for it has gone")
            raise
        except Exception as exc:
            if flight.waiters > 1:
                # Each caller gets the error; say once that one shared call failed them all.
                log.warning("shared provider call failed for %d waiting requests: %s", flight.waiters,
                            getattr(exc, "reason", None) or type(exc).__name__)
            raise
        finally:
            if self._pending.get(key) is flight:
                del self._pending[key]
