"""A Component's pipeline settings, typed and parsed once when it loads.

``catalog.resolve`` turns ``spec.metadata`` into a mapping with every default filled (the
defaults live only in ``catalog.COMMON_FIELDS``); :meth:`ComponentSettings.of` groups that mapping
into frozen dataclasses, one per concern, as Dapr's components decode their metadata into structs.
The store keeps the result on the component's entry, so no request reads a metadata string.
No I/O here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from parley_sidecar import records
from parley_sidecar.records import set_field as _set

__all__ = [
    "CacheSettings",
    "ComponentSettings",
    "MemorySettings",
    "ResiliencySettings",
    "StreamSettings",
    "UpstreamSettings",
]

# Dataclasses (``records``), each with the ``__init__`` one would generate; frozen, hence ``_set``.


@records.frozen
class CacheSettings(records.Record):
    ttl: float
    """Seconds a successful answer is kept (``responseCacheTTL``); 0: no cache."""
    max_entries: int
    max_bytes: int
    store: str | None
    """``redis://…`` to share the cache between replicas; None: in this process."""

    def __init__(self, ttl: float, max_entries: int, max_bytes: int, store: str | None) -> None:
        _set(self, "ttl", ttl)
        _set(self, "max_entries", max_entries)
        _set(self, "max_bytes", max_bytes)
        _set(self, "store", store)


@records.frozen
class ResiliencySettings(records.Record):
    timeout: float | None
    """Seconds per attempt; None: no per-attempt limit (``timeout: 0``)."""
    max_retries: int
    """Retries after the first attempt; -1: no limit but ``deadline`` (a Resiliency's ``maxRetries: -1``)."""
    backoff: float
    """Seconds before the first retry (see ``backoff_policy``)."""
    breaker_failures: int
    """Consecutive failures that open the circuit; 0 disables the breaker."""
    breaker_timeout: float
    fallback: tuple[str, ...]
    deadline: float | None
    """Seconds for the whole call: every attempt, backoff and fallback (``callTimeout``);
    None: no overall limit (``callTimeout: 0``)."""
    backoff_policy: str = "jitter"
    """``jitter`` (parley's metadata: a uniform draw in ``[0, backoff·2ⁿ]``), or a Resiliency
    retry policy's ``constant`` / ``exponential``."""
    max_interval: float = 20.0
    """Seconds: the ceiling of one backoff wait (a Resiliency's ``maxInterval``)."""
    breaker_max_requests: int = 1
    """Trial calls let through while the circuit is half-open (a Resiliency's ``maxRequests``)."""

    def __init__(self, timeout: float | None, max_retries: int, backoff: float, breaker_failures: int,
                 breaker_timeout: float, fallback: tuple[str, ...], deadline: float | None,
                 backoff_policy: str = "jitter", max_interval: float = 20.0, breaker_max_requests: int = 1) -> None:
        _set(self, "timeout", timeout)
        _set(self, "max_retries", max_retries)
        _set(self, "backoff", backoff)
        _set(self, "breaker_failures", breaker_failures)
        _set(self, "breaker_timeout", breaker_timeout)
        _set(self, "fallback", fallback)
        _set(self, "deadline", deadline)
        _set(self, "backoff_policy", backoff_policy)
        _set(self, "max_interval", max_interval)
        _set(self, "breaker_max_requests", breaker_max_requests)


@records.frozen
class MemorySettings(records.Record):
    enabled: bool
    max_turns: int
    max_bytes: int
    """Bytes of memory the history of one conversation holds (``memoryMaxBytes``)."""
    max_total_bytes: int
    """Bytes of memory the component's history holds in this process, all conversations together
    (``memoryMaxTotalBytes``); the least recently used conversations go first."""
    ttl: float
    max_conversations: int
    store: str | None
    """``redis://…`` to keep history across restarts and replicas; None: in this process."""

    def __init__(self, enabled: bool, max_turns: int, max_bytes: int, max_total_bytes: int, ttl: float,
                 max_conversations: int, store: str | None) -> None:
        _set(self, "enabled", enabled)
        _set(self, "max_turns", max_turns)
        _set(self, "max_bytes", max_bytes)
        _set(self, "max_total_bytes", max_total_bytes)
        _set(self, "ttl", ttl)
        _set(self, "max_conversations", max_conversations)
        _set(self, "store", store)


@records.frozen
class StreamSettings(records.Record):
    idle_timeout: float | None
    """Seconds a streamed answer may go without a piece once it has begun (``streamIdleTimeout``);
    None: no limit. Until the first piece, the attempt's ``timeout`` and ``callTimeout`` apply."""

    def __init__(self, idle_timeout: float | None) -> None:
        _set(self, "idle_timeout", idle_timeout)


@records.frozen
class UpstreamSettings(records.Record):
    max_connections: int
    """Connections this component keeps open to its provider (its own pool)."""
    max_response_bytes: int
    """Largest provider answer read; a larger one fails the attempt."""

    def __init__(self, max_connections: int, max_response_bytes: int) -> None:
        _set(self, "max_connections", max_connections)
        _set(self, "max_response_bytes", max_response_bytes)


@records.frozen
class ComponentSettings(records.Record):
    cache: CacheSettings
    resiliency: ResiliencySettings
    memory: MemorySettings
    upstream: UpstreamSettings
    stream: StreamSettings
    pii_entities: tuple[str, ...]
    """Entity types scrubbed when a request asks for scrubbing; empty: daprd's default set."""
    metadata: Mapping[str, Any] = dataclasses.field(repr=False)
    """The whole resolved metadata, provider fields included (may hold secrets): what the
    provider's ``init`` reads."""

    def __init__(self, cache: CacheSettings, resiliency: ResiliencySettings, memory: MemorySettings,
                 upstream: UpstreamSettings, stream: StreamSettings, pii_entities: tuple[str, ...],
                 metadata: Mapping[str, Any]) -> None:
        _set(self, "cache", cache)
        _set(self, "resiliency", resiliency)
        _set(self, "memory", memory)
        _set(self, "upstream", upstream)
        _set(self, "stream", stream)
        _set(self, "pii_entities", pii_entities)
        _set(self, "metadata", metadata)

    @classmethod
    def of(cls, resolved: Mapping[str, Any]) -> ComponentSettings:
        """Group ``catalog.resolve``'s output; fields with a catalog default are always present."""

        def optional(key: str) -> Any:
            return resolved.get(key) or None

        return cls(
            cache=CacheSettings(
                ttl=float(resolved.get("responseCacheTTL") or 0.0),
                max_entries=resolved["cacheMaxEntries"],
                max_bytes=resolved["cacheMaxBytes"],
                store=optional("cacheStore"),
            ),
            resiliency=ResiliencySettings(
                timeout=resolved["timeout"] or None,
                max_retries=resolved["maxRetries"],
                backoff=resolved["retryBackoff"],
                breaker_failures=resolved["circuitBreakerFailures"],
                breaker_timeout=resolved["circuitBreakerTimeout"],
                fallback=tuple(resolved.get("fallback") or ()),
                deadline=resolved["callTimeout"] or None,
            ),
            memory=MemorySettings(
                enabled=resolved["memory"],
                max_turns=resolved["memoryMaxTurns"],
                max_bytes=resolved["memoryMaxBytes"],
                max_total_bytes=resolved["memoryMaxTotalBytes"],
                ttl=resolved["memoryTTL"],
                max_conversations=resolved["memoryMaxConversations"],
                store=optional("memoryStore"),
            ),
            upstream=UpstreamSettings(
                max_connections=resolved["maxConnections"],
                max_response_bytes=resolved["maxResponseBytes"],
            ),
            stream=StreamSettings(idle_timeout=resolved["streamIdleTimeout"] or None),
            pii_entities=tuple(resolved.get("piiEntities") or ()),
            metadata=resolved,
        )
