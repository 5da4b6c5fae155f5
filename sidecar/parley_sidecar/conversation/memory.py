"""Conversation memory: earlier turns of a context id sent again to the model ("a chat room").

Opt-in per component (``memory: "true"``), so daprd's stateless behaviour stays the default.
History is what went to and came back from the client, after scrubbing: a request that asked for
PII scrubbing leaves no PII here. Bounded per conversation (most recent ``memoryMaxTurns``
messages and ``memoryMaxChars`` characters), in total (LRU over ``memoryMaxConversations``) and
in time (forgotten after ``memoryTTL`` idle). Conversations are kept per component name, so two
components never see each other's history, and two context ids never mix.
"""

from __future__ import annotations

import collections
import dataclasses
import time

from parley_sidecar.components import base

__all__ = ["Memory", "MemoryLimits"]


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


class Memory:
    def __init__(self) -> None:
        self._conversations: collections.OrderedDict[tuple[str, str], tuple[float, tuple[base.Message, ...]]] = (
            collections.OrderedDict()
        )

    def __len__(self) -> int:
        return len(self._conversations)

    def history(self, component: str, context_id: str, limits: MemoryLimits) -> tuple[base.Message, ...]:
        key = (component, context_id)
        item = self._conversations.get(key)
        if item is None:
            return ()
        touched, messages = item
        if time.monotonic() - touched > limits.ttl:
            del self._conversations[key]
            return ()
        return messages

    def remember(
        self,
        component: str,
        context_id: str,
        new: tuple[base.Message, ...],
        limits: MemoryLimits,
    ) -> None:
        key = (component, context_id)
        messages = list(self.history(component, context_id, limits)) + list(new)
        messages = messages[-limits.max_turns:] if limits.max_turns > 0 else []
        while messages and sum(_chars(m) for m in messages) > limits.max_chars:
            messages.pop(0)
        self._conversations[key] = (time.monotonic(), tuple(messages))
        self._conversations.move_to_end(key)
        while len(self._conversations) > limits.max_conversations:
            self._conversations.popitem(last=False)

    def forget(self, component: str) -> None:
        for key in [k for k in self._conversations if k[0] == component]:
            del self._conversations[key]


def reply_message(response: base.ConverseResponse) -> base.Message | None:
    """The assistant's turn to remember: the first choice of the first output."""
    if not response.outputs or not response.outputs[0].choices:
        return None
    choice = response.outputs[0].choices[0]
    parts: list[base.Part] = [base.TextPart(choice.content)] if choice.content else []
    parts.extend(choice.tool_calls)
    return base.Message(base.Role.ASSISTANT, tuple(parts)) if parts else None
