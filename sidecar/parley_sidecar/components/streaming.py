"""Streams of :class:`base.Delta`: open one for any component, replay an answer, assemble one.

A component that streams (``base.Streaming``) is relayed piece by piece; one that does not is
called once and its answer replayed as a stream, so every API surface can stream from every
component. :class:`Assembler` rebuilds the whole answer from the pieces, for what needs it
(the cache, memory, usage metrics).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

from parley_sidecar import records
from parley_sidecar.components import base
from parley_sidecar.records import FACTORY

__all__ = ["Assembler", "open_stream", "replay"]

_PIECE = re.compile(r"\s*\S+\s*|\s+")
"""A word and the space after it: how a replayed answer is cut (as a model's tokens roughly are)."""


def replay(response: base.ConverseResponse) -> Iterator[base.Delta]:
    """The answer's first choice as pieces: its text a word at a time, then its tool calls
    whole, then one piece with the finish reason, usage and model."""
    choice = response.outputs[0].choices[0] if response.outputs and response.outputs[0].choices else None
    if choice is not None and choice.content:
        for word in _PIECE.findall(choice.content):  # never empty: each alternative takes a character
            yield base.Delta(content=word, model=response.model)
    if choice is not None and choice.tool_calls:
        yield base.Delta(
            tool_calls=tuple(
                base.ToolCallDelta(index, call.id, call.name, call.arguments, call.extra_content)
                for index, call in enumerate(choice.tool_calls)
            ),
            model=response.model,
        )
    yield base.Delta(finish_reason=choice.finish_reason if choice is not None else "stop",
                     usage=response.usage, model=response.model)


async def _replayed(component: base.Conversation, request: base.ConverseRequest,
                    timeout: float | None) -> AsyncIterator[base.Delta]:
    response = await component.converse(request, timeout=timeout)
    for delta in replay(response):
        yield delta


def open_stream(component: base.Conversation, request: base.ConverseRequest, *,
                timeout: float | None) -> AsyncIterator[base.Delta]:
    """The component's own stream when it has one, else its answer replayed."""
    stream = getattr(component, "stream", None)
    if stream is not None:
        opened: AsyncIterator[base.Delta] = stream(request, timeout=timeout)
        return opened
    return _replayed(component, request, timeout)


@records.mutable
class _Call(records.Record):
    id: str = ""
    name: str = ""
    arguments: list[str] = dataclasses.field(default_factory=list)
    extra_content: Mapping[str, Any] | None = None

    def __init__(self, id: str = "", name: str = "", arguments: list[str] = FACTORY,
                 extra_content: Mapping[str, Any] | None = None) -> None:
        self.id = id
        self.name = name
        self.arguments = [] if arguments is FACTORY else arguments
        self.extra_content = extra_content


class Assembler:
    """Rebuilds the answer from its pieces, as they pass."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: dict[int, _Call] = {}
        self.finish_reason = ""
        self.usage: base.Usage | None = None
        self.model = ""

    def add(self, delta: base.Delta) -> None:
        if delta.content:
            self._text.append(delta.content)
        for piece in delta.tool_calls:
            call = self._calls.setdefault(piece.index, _Call())
            call.id = call.id or piece.id
            call.name = call.name or piece.name
            call.extra_content = call.extra_content or piece.extra_content
            if piece.arguments:
                call.arguments.append(piece.arguments)
        if delta.finish_reason:
            self.finish_reason = delta.finish_reason
        if delta.usage is not None:
            self.usage = delta.usage
        if delta.model:
            self.model = delta.model

    @property
    def text(self) -> str:
        return "".join(self._text)

    def response(self) -> base.ConverseResponse:
        calls = tuple(
            base.ToolCall(call.id, call.name, "".join(call.arguments), call.extra_content)
            for _, call in sorted(self._calls.items())
        )
        finish = self.finish_reason or ("tool_calls" if calls else "stop")
        choice = base.Choice(finish, 0, self.text, calls)
        return base.ConverseResponse(outputs=(base.Output((choice,)),), usage=self.usage, model=self.model)
