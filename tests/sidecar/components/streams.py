"""Helpers the provider stream tests share: open a stream, drain it, assemble its pieces."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

from parley_sidecar.components import base, streaming
from tests.sidecar.components.conftest import text_request

__all__ = ["assembled", "collect", "same_answer", "stream"]


def stream(component: base.Conversation, request: base.ConverseRequest | None = None,
           timeout: float = 5.0) -> AsyncIterator[base.Delta]:
    """The component's stream for ``request`` (a plain "Hi" by default)."""
    return streaming.open_stream(component, request or text_request("Hi"), timeout=timeout)


async def collect(stream: AsyncIterator[base.Delta]) -> list[base.Delta]:
    return [delta async for delta in stream]


def assembled(pieces: list[base.Delta]) -> base.ConverseResponse:
    assembler = streaming.Assembler()
    for piece in pieces:
        assembler.add(piece)
    return assembler.response()


def same_answer(streamed: base.ConverseResponse, whole: base.ConverseResponse, *, json_text: bool = False) -> None:
    """The streamed answer is the whole one. Tool arguments (and a structured answer, with
    ``json_text``) are compared as JSON values: a stream relays the model's own JSON text, where
    converse re-encodes the parsed object compactly."""
    got, want = streamed.outputs[0].choices[0], whole.outputs[0].choices[0]
    assert (streamed.usage, streamed.model, got.finish_reason) == (whole.usage, whole.model, want.finish_reason)
    if json_text:
        assert json.loads(got.content) == json.loads(want.content)
    else:
        assert got.content == want.content
    assert [(c.id, c.name, json.loads(c.arguments)) for c in got.tool_calls] == \
        [(c.id, c.name, json.loads(c.arguments)) for c in want.tool_calls]
