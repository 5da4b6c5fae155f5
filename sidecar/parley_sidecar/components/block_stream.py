"""Streamed content blocks, as Anthropic's Messages stream and Bedrock's ConverseStream send them.

Both stream an answer as numbered content blocks (text, tool use, and kinds the conversation API
has no use for, such as thinking) that start, grow by deltas and stop, then a stop reason and
usage. :class:`Blocks` turns those into :class:`base.Delta` pieces the way ``tool_blocks.response``
turns a whole answer into a choice, so a stream assembles into what ``converse`` answers: text
blocks joined by a newline, tool calls numbered in order, and with a ``responseFormat`` the forced
tool's input relayed as the answer's text. Each provider module reads its own wire names and
calls these methods. No I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from parley_sidecar import errors, records
from parley_sidecar.components import base, checks, structured

__all__ = ["Blocks"]


@records.mutable
class _Block(records.Record):
    kind: Literal["text", "tool", "answer", "other"]
    call: int = 0
    """For a tool block: the index of its call in the answer."""
    sent: bool = False
    """Something of this block has been relayed."""

    def __init__(self, kind: Literal["text", "tool", "answer", "other"], call: int = 0, sent: bool = False) -> None:
        self.kind = kind
        self.call = call
        self.sent = sent


class Blocks:
    def __init__(self, *, model: str, provider: str, defn: structured.Definition | None) -> None:
        self.model = model
        self.provider = provider
        self.defn = defn
        self.finish_reason = ""
        self.usage: dict[str, Any] = {}
        """The upstream's usage fields, merged as they come (later counts replace earlier ones)."""
        self._blocks: dict[int, _Block] = {}
        self._calls = 0
        self._texts = 0
        self._answered = False
        self.useful = False
        self.done = False
        """The upstream said the answer is complete (Anthropic's message_stop, Bedrock's messageStop)."""

    def _piece(self, content: str = "", call: base.ToolCallDelta | None = None) -> base.Delta:
        self.useful = True
        return base.Delta(content=content, tool_calls=(call,) if call is not None else (), model=self.model)

    def start_text(self, index: int, text: str = "") -> base.Delta | None:
        self._blocks[index] = _Block("text")
        self._texts += 1
        return self.text(index, text) if text else None

    def text(self, index: int, text: str) -> base.Delta | None:
        block = self._blocks.get(index)
        if block is None:  # Bedrock starts a text block with its first delta
            self.start_text(index)
            block = self._blocks[index]
        if block.kind != "text" or not text:
            return None
        if not block.sent and self._texts > 1:
            text = "\n" + text  # converse joins text blocks with a newline
        block.sent = True
        return self._piece(text)

    def start_tool(self, index: int, call_id: str, name: str) -> base.Delta | None:
        if self.defn is not None and name == self.defn.name:
            # The forced tool of a responseFormat: its input is the answer's text.
            self._blocks[index] = _Block("answer")
            self._answered = True
            return None
        self._blocks[index] = _Block("tool", call=self._calls)
        self._calls += 1
        return self._piece(call=base.ToolCallDelta(self._calls - 1, call_id, name))

    def start_other(self, index: int) -> None:
        """A block of a kind the conversation API does not carry (thinking, server tools)."""
        self._blocks[index] = _Block("other")

    def tool_input(self, index: int, fragment: str) -> base.Delta | None:
        block = self._blocks.get(index)
        if block is None or not fragment:
            return None
        if block.kind == "answer":
            block.sent = True
            return self._piece(fragment)
        if block.kind != "tool":
            return None
        block.sent = True
        return self._piece(call=base.ToolCallDelta(block.call, arguments=fragment))

    def stop(self, index: int) -> base.Delta | None:
        """A tool block that streamed no input had none: ``{}``, as converse says."""
        block = self._blocks.get(index)
        if block is None or block.sent or block.kind not in ("tool", "answer"):
            return None
        block.sent = True
        if block.kind == "answer":
            return self._piece("{}")
        return self._piece(call=base.ToolCallDelta(block.call, arguments="{}"))

    def add_usage(self, raw: Any) -> None:
        if isinstance(raw, Mapping):
            self.usage.update((k, v) for k, v in raw.items() if v is not None)

    def last(self, request: base.ConverseRequest, usage: base.Usage | None) -> base.Delta:
        """The closing piece, after the same checks converse makes on a whole answer."""
        if self.defn is not None and not self._answered:
            raise errors.ProviderError(f"{self.provider} did not return the structured output", status=200)
        if not self.useful:
            checks.useful_answer((), request)
        return base.Delta(finish_reason=self.finish_reason or "unknown", usage=usage, model=self.model)
