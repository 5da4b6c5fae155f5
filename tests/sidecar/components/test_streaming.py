"""Streams of pieces: every component can stream, and the pieces rebuild the same answer."""

from __future__ import annotations

import pytest

from parley_sidecar.components import base, echo, streaming


def _request(text: str, tools: tuple[base.Tool, ...] = ()) -> base.ConverseRequest:
    return base.ConverseRequest(messages=(base.Message(base.Role.USER, (base.TextPart(text),)),), tools=tools)


class _Plain:
    """A component with no ``stream`` of its own."""

    async def init(self, metadata: object) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def converse(self, request: base.ConverseRequest, *, timeout: float | None) -> base.ConverseResponse:
        return base.ConverseResponse(
            outputs=(base.Output((base.Choice("length", 0, " leading space, then words\n"),)),),
            usage=base.Usage(3, 4, 7), model="m-1")


@pytest.mark.parametrize("text", ["hello there  big world", "  spaced\tout\n\nlines ", "one", ""])
async def test_echo_streams_in_pieces_that_rebuild_its_answer(text: str) -> None:
    component = echo.Echo()
    request = _request(text, (base.Tool("lookup", parameters={"properties": {"city": {}, "day": {}}}),))
    pieces = [delta async for delta in streaming.open_stream(component, request, timeout=None)]
    assembler = streaming.Assembler()
    for delta in pieces:
        assembler.add(delta)
    assert assembler.response() == await component.converse(request, timeout=None)
    assert pieces[-1].finish_reason == "tool_calls" and pieces[-1].usage is not None
    if len(text.split()) > 1:
        assert sum(1 for delta in pieces if delta.content) == len(text.split())


async def test_a_component_without_stream_is_replayed() -> None:
    pieces = [delta async for delta in streaming.open_stream(_Plain(), _request("x"), timeout=None)]
    assert [delta.content for delta in pieces if delta.content] == [" leading ", "space, ", "then ", "words\n"]
    assembler = streaming.Assembler()
    for delta in pieces:
        assembler.add(delta)
    assert assembler.response() == await _Plain().converse(_request("x"), timeout=None)


def test_tool_call_fragments_are_joined_by_index() -> None:
    assembler = streaming.Assembler()
    for delta in [
        base.Delta(tool_calls=(base.ToolCallDelta(1, "b", "second", '{"x"'),)),
        base.Delta(tool_calls=(base.ToolCallDelta(0, "a", "first", "{}"),)),
        base.Delta(tool_calls=(base.ToolCallDelta(1, arguments=": 1}"),)),
        base.Delta(finish_reason="tool_calls"),
    ]:
        assembler.add(delta)
    choice = assembler.response().outputs[0].choices[0]
    assert choice.tool_calls == (base.ToolCall("a", "first", "{}"), base.ToolCall("b", "second", '{"x": 1}'))
