"""Conversation memory: earlier turns of a context id sent again to the model ("a chat room").

Opt-in per component (``memory: "true"``), so daprd's stateless behaviour stays the default.
History is what went to and came back from the client, after scrubbing: a request that asked for
PII scrubbing leaves no PII here. Bounded per conversation (most recent ``memoryMaxTurns``
messages and ``memoryMaxChars`` characters), in total (LRU over ``memoryMaxConversations``) and
in time (forgotten after ``memoryTTL`` idle). Conversations are kept per component name, so two
components never see each other's history, and two context ids never mix.

With ``memoryStore: redis://…`` the history lives in Redis instead (``parley:memory:<component>:
<context id>``, expiring after ``memoryTTL``), so it survives a sidecar restart and every replica of
the app sees the same conversation. If Redis is unreachable the request is answered without
history (and the turn is not stored): memory is a convenience, never a reason to fail.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import time
from typing import Any, Protocol

from parley_sidecar.components import base

__all__ = ["Memory", "MemoryLimits", "MemoryStore", "RedisMemory", "reply_message"]

log = logging.getLogger("parley.memory")


@dataclasses.dataclass(frozen=True, slots=True)
class MemoryLimits:
    max_turns: int = 20
    max_chars: int = 32000
    ttl: float = 3600.0
    max_conversations: int = 10000


def _chars(message: base.Message) -> int:
    total = 0
    for part in message.parts:
        if isinstance(part, base.TextPart):
            total += len(part.text)
        elif isinstance(part, base.ToolCall):
            total += len(part.name) + len(part.arguments)
        else:
            total += len(part.content)
    return total


class MemoryStore(Protocol):
    async def history(self, component: str, context_id: str, limits: MemoryLimits) -> tuple[base.Message, ...]: ...
    async def remember(self, component: str, context_id: str, new: tuple[base.Message, ...],
                       limits: MemoryLimits) -> None: ...
    async def aclose(self) -> None: ...


def _bounded(messages: list[base.Message], limits: MemoryLimits) -> list[base.Message]:
    messages = messages[-limits.max_turns:] if limits.max_turns > 0 else []
    while messages and sum(_chars(m) for m in messages) > limits.max_chars:
        messages.pop(0)
    return messages


class Memory:
    """In-process history, LRU over conversations."""

    def __init__(self) -> None:
        self._conversations: collections.OrderedDict[tuple[str, str], tuple[float, tuple[base.Message, ...]]] = (
            collections.OrderedDict()
        )

    def __len__(self) -> int:
        return len(self._conversations)

    async def history(self, component: str, context_id: str, limits: MemoryLimits) -> tuple[base.Message, ...]:
        key = (component, context_id)
        item = self._conversations.get(key)
        if item is None:
            return ()
        touched, messages = item
        if time.monotonic() - touched > limits.ttl:
            del self._conversations[key]
            return ()
        return messages

    async def remember(
        self,
        component: str,
        context_id: str,
        new: tuple[base.Message, ...],
        limits: MemoryLimits,
    ) -> None:
        key = (component, context_id)
        messages = _bounded(list(await self.history(component, context_id, limits)) + list(new), limits)
        self._conversations[key] = (time.monotonic(), tuple(messages))
        self._conversations.move_to_end(key)
        while len(self._conversations) > limits.max_conversations:
            self._conversations.popitem(last=False)

    async def aclose(self) -> None:
        self._conversations.clear()


def _encode(messages: tuple[base.Message, ...] | list[base.Message]) -> bytes:
    def part(p: base.Part) -> dict[str, Any]:
        if isinstance(p, base.TextPart):
            return {"text": p.text}
        if isinstance(p, base.ToolCall):
            return {"call": [p.id, p.name, p.arguments]}
        return {"result": [p.tool_id, p.name, p.content]}

    return json.dumps([{"role": m.role.value, "name": m.name, "parts": [part(p) for p in m.parts]}
                       for m in messages], ensure_ascii=False).encode()


def _decode(data: bytes) -> tuple[base.Message, ...]:
    def part(raw: dict[str, Any]) -> base.Part:
        if "text" in raw:
            return base.TextPart(raw["text"])
        if "call" in raw:
            return base.ToolCall(*raw["call"])
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

    async def history(self, component: str, context_id: str, limits: MemoryLimits) -> tuple[base.Message, ...]:
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
                       limits: MemoryLimits) -> None:
        key = f"parley:memory:{component}:{context_id}"
        try:
            data = await self._client.get(key)
            earlier = list(_decode(data)) if isinstance(data, bytes) else []
            await self._client.set(key, _encode(_bounded(earlier + list(new), limits)),
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
