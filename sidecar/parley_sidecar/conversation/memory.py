"""Conversation memory: earlier turns of a context id sent again to the model ("a chat room").

Opt-in per component (``memory: "true"``), so daprd's stateless behaviour stays the default.
History is what went to and came back from the client, after scrubbing: a request that asked for
PII scrubbing leaves no PII here. Bounded in bytes of memory, not characters (CPython keeps a
string that holds one emoji at four bytes per character, and each message costs objects): per
conversation (the most recent ``memoryMaxTurns`` messages within ``memoryMaxBytes``),
per component in this process (``memoryMaxTotalBytes`` and ``memoryMaxConversations``, the least
recently used conversation goes first) and in time (forgotten after ``memoryTTL`` idle).
Conversations are kept per component name, so two components never see each other's history,
and two context ids never mix.

With ``memoryStore: redis://…`` the history lives in Redis instead (``parley:memory:<component>:
<context id>``, expiring after ``memoryTTL``), so it survives a sidecar restart and every replica of
the app sees the same conversation. If Redis is unreachable the request is answered without
history (and the turn is not stored): memory is a convenience, never a reason to fail.
"""

from __future__ import annotations

import collections
import json
import logging
import sys
import time
from typing import Any, Protocol

from parley_sidecar.components import base
from parley_sidecar.components.component_settings import MemorySettings

__all__ = ["Memory", "MemoryStore", "RedisMemory", "reply_message"]

log = logging.getLogger("parley.memory")


_MESSAGE_COST = 160
"""Bytes a stored message costs beyond its strings: the Message, its parts tuple, its slot in the
conversation's tuple (measured with tracemalloc on CPython 3.11)."""
_PART_COST = 56
"""Bytes one part object costs beyond its strings."""


def _chars(text: str) -> int:
    """Bytes CPython holds for ``text``: 1, 2 or 4 per character (one emoji makes the whole string
    4 per character) plus the object's header; the empty string is shared and costs nothing."""
    return sys.getsizeof(text) if text else 0


def _size(message: base.Message) -> int:
    """Bytes of this process's memory a remembered message holds (what the bounds count), so that
    ``memoryMaxTotalBytes`` is what a sidecar's memory limit pays, whatever the text's script."""
    total = _MESSAGE_COST + _chars(message.name)
    for part in message.parts:
        total += _PART_COST
        if isinstance(part, base.TextPart):
            total += _chars(part.text)
        elif isinstance(part, base.ToolCall):
            total += _chars(part.id) + _chars(part.name) + _chars(part.arguments)
            if part.extra_content:  # a thought signature can be kilobytes
                total += _chars(json.dumps(part.extra_content))
        else:
            total += _chars(part.tool_id) + _chars(part.name) + _chars(part.content)
    return total


class MemoryStore(Protocol):
    async def history(self, component: str, context_id: str, limits: MemorySettings) -> tuple[base.Message, ...]: ...
    async def remember(self, component: str, context_id: str, new: tuple[base.Message, ...],
                       limits: MemorySettings) -> None: ...
    async def aclose(self) -> None: ...


def _bounded(messages: list[base.Message], limits: MemorySettings) -> tuple[tuple[base.Message, ...], int]:
    """The most recent messages within the per-conversation bounds, and their size in bytes."""
    kept = messages[-limits.max_turns:] if limits.max_turns > 0 else []
    sizes = [_size(m) for m in kept]
    total, start = sum(sizes), 0
    while start < len(kept) and total > limits.max_bytes:
        total -= sizes[start]
        start += 1
    return tuple(kept[start:]), total


class Memory:
    """In-process history: per component, an LRU over its conversations bounded in count and bytes."""

    def __init__(self) -> None:
        self._components: dict[str, _Conversations] = {}

    def __len__(self) -> int:
        return sum(len(c.items) for c in self._components.values())

    def size(self, component: str) -> int:
        """Bytes of history kept for ``component`` (what ``memoryMaxTotalBytes`` bounds)."""
        conversations = self._components.get(component)
        return 0 if conversations is None else conversations.bytes

    async def history(self, component: str, context_id: str, limits: MemorySettings) -> tuple[base.Message, ...]:
        conversations = self._components.get(component)
        if conversations is None:
            return ()
        item = conversations.items.get(context_id)
        if item is None:
            return ()
        touched, messages, _ = item
        if time.monotonic() - touched > limits.ttl:
            conversations.drop(context_id)
            return ()
        return messages

    async def remember(
        self,
        component: str,
        context_id: str,
        new: tuple[base.Message, ...],
        limits: MemorySettings,
    ) -> None:
        earlier = await self.history(component, context_id, limits)
        messages, size = _bounded([*earlier, *new], limits)
        conversations = self._components.setdefault(component, _Conversations())
        conversations.drop(context_id)
        if not messages:
            return
        conversations.items[context_id] = (time.monotonic(), messages, size)
        conversations.bytes += size
        while conversations.items and (len(conversations.items) > limits.max_conversations
                                       or conversations.bytes > limits.max_total_bytes):
            conversations.drop(next(iter(conversations.items)))

    async def aclose(self) -> None:
        self._components.clear()


class _Conversations:
    """One component's conversations, least recently stored first, and their total size."""

    def __init__(self) -> None:
        self.items: collections.OrderedDict[str, tuple[float, tuple[base.Message, ...], int]] = (
            collections.OrderedDict()
        )
        self.bytes = 0

    def drop(self, context_id: str) -> None:
        item = self.items.pop(context_id, None)
        if item is not None:
            self.bytes -= item[2]


def _encode(messages: tuple[base.Message, ...]) -> bytes:
    def part(p: base.Part) -> dict[str, Any]:
        if isinstance(p, base.TextPart):
            return {"text": p.text}
        if isinstance(p, base.ToolCall):
            # extra_content beside the call, not in it: a replica of an older version reads the
            # call and skips the key it does not know (a shared Redis during a rollout)
            return {"call": [p.id, p.name, p.arguments], **({"extra": p.extra_content} if p.extra_content else {})}
        return {"result": [p.tool_id, p.name, p.content]}

    return json.dumps([{"role": m.role.value, "name": m.name, "parts": [part(p) for p in m.parts]}
                       for m in messages], ensure_ascii=False).encode()


def _decode(data: bytes) -> tuple[base.Message, ...]:
    def part(raw: dict[str, Any]) -> base.Part:
        if "text" in raw:
            return base.TextPart(raw["text"])
        if "call" in raw:
            call_id, name, arguments = raw["call"]
            return base.ToolCall(call_id, name, arguments, raw.get("extra"))
        return base.ToolResult(*raw["result"])

    return tuple(base.Message(base.Role(m["role"]), tuple(part(p) for p in m["parts"]), m["name"])
                 for m in json.loads(data))


class RedisMemory:
    """History in Redis: shared by replicas, kept across restarts, expiring after ``memoryTTL``."""

    def __init__(self, url: str, *, timeout: float = 0.25) -> None:
        import redis.asyncio as redis

        self._client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self._down = False

    def _failed(self, exc: Exception) -> None:
        if not self._down:
            self._down = True
            log.warning("conversation memory store unreachable (%s); answering without history",
                        type(exc).__name__)

    async def history(self, component: str, context_id: str, limits: MemorySettings) -> tuple[base.Message, ...]:
        try:
            data = await self._client.get(f"parley:memory:{component}:{context_id}")
        except Exception as exc:  # any client or network error: no history this time
            self._failed(exc)
            return ()
        if self._down:
            self._down = False
            log.info("conversation memory store is back")
        return _decode(data) if isinstance(data, bytes) else ()

    async def remember(self, component: str, context_id: str, new: tuple[base.Message, ...],
                       limits: MemorySettings) -> None:
        key = f"parley:memory:{component}:{context_id}"
        try:
            data = await self._client.get(key)
            earlier = list(_decode(data)) if isinstance(data, bytes) else []
            await self._client.set(key, _encode(_bounded(earlier + list(new), limits)[0]),
                                   px=max(1, int(limits.ttl * 1000)))
        except Exception as exc:
            self._failed(exc)

    async def aclose(self) -> None:
        await self._client.aclose()


def reply_message(response: base.ConverseResponse) -> base.Message | None:
    """The assistant's turn to remember: the first choice of the first output."""
    if not response.outputs or not response.outputs[0].choices:
        return None
    choice = response.outputs[0].choices[0]
    parts: list[base.Part] = [base.TextPart(choice.content)] if choice.content else []
    parts.extend(choice.tool_calls)
    return base.Message(base.Role.ASSISTANT, tuple(parts)) if parts else None
