"""``conversation.echo``: answers with what it was sent, byte for byte as daprd's echo.

Deterministic, needs no key and no network: it is the default component and the one every
conformance test runs (components-contrib ``conversation/echo/echo.go`` is the reference).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from parley_sidecar.components import base

__all__ = ["Echo", "count_words", "create"]

# Go's unicode.IsSpace, which strings.Fields splits on; str.split() also splits on \x1c-\x1f.
_WORD = re.compile(r"[^\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")


def count_words(text: str) -> int:
    """Echo's token estimate: whitespace-separated words, as Go's ``strings.Fields`` counts them."""
    return len(_WORD.findall(text))


def _go_type_name(value: Any) -> str:
    """The name Go's ``%T`` prints for a value decoded from a protobuf Struct."""
    match value:
        case None:
            return "<nil>"
        case bool():
            return "bool"
        case str():
            return "string"
        case int() | float():
            return "float64"
        case list():
            return "[]interface {}"
    return type(value).__name__


class Echo:
    async def init(self, metadata: Mapping[str, Any]) -> None:
        """Echo has no metadata (daprd's tests pass ``key: testkey``, which is ignored)."""

    async def aclose(self) -> None:
        pass

    async def converse(self, request: base.ConverseRequest, *, timeout: float | None) -> base.ConverseResponse:
        tool_calls = [_tool_call(index, tool) for index, tool in enumerate(request.tools)]
        lines: list[str] = []
        for message in request.messages:
            for part in message.parts:
                if isinstance(part, base.TextPart):
                    lines.append(part.text)
                elif isinstance(part, base.ToolCall):
                    tool_calls.append(part)
                else:
                    lines.append(
                        f"Tool Response for tool ID '{part.tool_id}' with name '{part.name}': {part.content}"
                    )
        content = "\n".join(lines)
        finish = "tool_calls" if tool_calls else "stop"
        words = count_words(content)
        return base.ConverseResponse(
            outputs=(base.Output((base.Choice(finish, 0, content, tuple(tool_calls)),)),),
            usage=base.Usage(words, words, 2 * words),
        )


def _tool_call(index: int, tool: base.Tool) -> base.ToolCall:
    """One call per declared tool; arguments are its parameter names, sorted, comma-joined."""
    names: list[str] = []
    if "properties" in tool.parameters:
        properties = tool.parameters["properties"]
        if not isinstance(properties, dict):
            raise ValueError(
                f"tool function properties must be a map[string]any, got {_go_type_name(properties)}"
            )
        names = sorted(properties)
    return base.ToolCall(id=str(index), name=tool.name, arguments=",".join(names))


def create(context: base.ComponentContext) -> base.Conversation:
    return Echo()
