"""What Anthropic's Messages API and Bedrock's Converse API share, once.

Both take the conversation as alternating user/assistant turns of content blocks with the system
text apart, answer with a list of content blocks (text, and tool use whose ``input`` is a JSON
object), count usage with cache reads and writes apart from the input, and want a tool call's
arguments as a JSON object. Each provider module spells its own wire names (a :class:`Blocks`)
and hands the values here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from parley_sidecar import errors
from parley_sidecar.components import base, checks, structured

__all__ = ["Blocks", "ToolUse", "Turns", "arguments_object", "response", "turns", "usage"]

ToolUse = tuple[str, str, Any]
"""(id, name, input) of one tool-use block."""


def arguments_object(call: base.ToolCall, provider: str) -> dict[str, Any]:
    """A tool call's JSON arguments as the object Anthropic and Bedrock want ('' means none)."""
    if not call.arguments.strip():
        return {}
    try:
        value = json.loads(call.arguments)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ValueError(f"tool call {call.id!r} ({call.name}): arguments must be a JSON object for {provider}")
    return value


class Blocks:
    """How one API spells the content blocks of a turn.

    Plain classes here, not frozen dataclasses: nothing compares or prints them, and a dataclass
    costs ~0.5 ms of the component's load to create (docs/performance.md, round 7)."""

    __slots__ = ("provider", "text", "tool_result", "tool_use")

    def __init__(self, provider: str, text: Callable[[str], dict[str, Any]],
                 tool_use: Callable[[base.ToolCall, dict[str, Any]], dict[str, Any]],
                 tool_result: Callable[[base.ToolResult], dict[str, Any]]) -> None:
        self.provider: Final = provider
        self.text: Final = text
        self.tool_use: Final = tool_use
        """A tool call and its arguments as a JSON object."""
        self.tool_result: Final = tool_result


class Turns:
    __slots__ = ("has_tool_blocks", "system", "turns")

    def __init__(self, system: list[str], turns: list[dict[str, Any]], has_tool_blocks: bool) -> None:
        self.system: Final = system
        """The system and developer texts, in order."""
        self.turns: Final = turns
        """``{"role": "user"|"assistant", "content": [blocks]}``, consecutive same-role turns merged."""
        self.has_tool_blocks: Final = has_tool_blocks


def turns(messages: Iterable[base.Message], blocks: Blocks) -> Turns:
    """The request's messages as these APIs want them: system text apart, empty text blocks left
    out (both reject them), every other role a user turn, and same-role neighbours merged (both
    require user and assistant to alternate)."""
    system: list[str] = []
    out: list[dict[str, Any]] = []
    has_tool_blocks = False
    for message in messages:
        if message.role in (base.Role.SYSTEM, base.Role.DEVELOPER):
            system.extend(p.text for p in message.parts if isinstance(p, base.TextPart) and p.text)
            continue
        role = "assistant" if message.role is base.Role.ASSISTANT else "user"
        content: list[dict[str, Any]] = []
        for part in message.parts:
            if isinstance(part, base.TextPart):
                if part.text:
                    content.append(blocks.text(part.text))
            elif isinstance(part, base.ToolCall):
                has_tool_blocks = True
                content.append(blocks.tool_use(part, arguments_object(part, blocks.provider)))
            else:
                has_tool_blocks = True
                content.append(blocks.tool_result(part))
        if not content:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(content)
        else:
            out.append({"role": role, "content": content})
    return Turns(system, out, has_tool_blocks)


def _count(raw: Mapping[str, Any], key: str) -> int:
    """A token count from an upstream usage object: a positive number, else 0."""
    value = raw.get(key)
    return int(value) if isinstance(value, (int, float)) and value > 0 else 0


def usage(raw: Any, *, input: str, output: str, cache_read: str, cache_write: str,
          total: str | None = None) -> base.Usage | None:
    """Usage in OpenAI's terms: ``prompt_tokens`` includes the cache reads and writes these APIs
    count apart, and the reads are reported as cached. None when the upstream counted nothing."""
    if not isinstance(raw, Mapping):
        return None
    read = _count(raw, cache_read)
    prompt = _count(raw, input) + read + _count(raw, cache_write)
    completion = _count(raw, output)
    all_tokens = (_count(raw, total) if total else 0) or prompt + completion
    if not all_tokens:
        return None
    return base.Usage(completion_tokens=completion, prompt_tokens=prompt, total_tokens=all_tokens,
                      prompt_details=base.PromptDetails(cached_tokens=read) if read else None)


def response(*, texts: Iterable[str], uses: Iterable[ToolUse], defn: structured.Definition | None, finish: str,
             request: base.ConverseRequest, usage: base.Usage | None, model: str,
             provider: str, served_model: str = "") -> base.ConverseResponse:
    """One choice: the text blocks joined (as langchaingo joins them), the tool calls, or with a
    ``responseFormat`` the forced tool's input as the answer. ``served_model``: the model the
    provider named in its answer (``ConverseResponse.served_model``)."""
    calls: list[base.ToolCall] = []
    answer: str | None = None
    for id_, name, input_ in uses:
        arguments = json.dumps(input_ or {}, ensure_ascii=False, separators=(",", ":"))
        if defn is not None and name == defn.name:
            answer = arguments
            continue
        calls.append(base.ToolCall(id=id_, name=name, arguments=arguments))
    if defn is not None and answer is None:
        raise errors.ProviderError(f"{provider} did not return the structured output", status=200)
    outputs = [base.Output((base.Choice(
        finish_reason=finish, index=0, content=answer if answer is not None else "\n".join(texts),
        tool_calls=tuple(calls),
    ),))]
    checks.useful_answer(outputs, request)
    return base.ConverseResponse(outputs=tuple(outputs), usage=usage, model=model, served_model=served_model)
