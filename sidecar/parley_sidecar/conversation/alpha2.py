"""``ConverseAlpha2``: daprd's validation in daprd's order, then the shared pipeline.

Order (daprd ``pkg/api/universal/conversation.go``): component lookup, missing inputs, each
message (type set, assistant tool calls typed, input scrubbing), tool choice, call, output
scrubbing of ``content`` (not of tool-call arguments, as daprd). ``metadata`` is forwarded to
the provider, minus the seed's override keys (``model``, ``key``, ``cacheTTL``), which would
otherwise leak a key upstream.
"""

from __future__ import annotations

from typing import Any

from dapr.proto.runtime.v1 import ai_pb2
from google.protobuf import json_format

from parley_sidecar import errors
from parley_sidecar.components import base
from parley_sidecar.components.store import Entry
from parley_sidecar.conversation.pipeline import OVERRIDE_KEYS, Overrides, Pipeline

__all__ = ["converse"]

_CHOICE_REASON = "tool choice must be 'auto', 'none', 'required', or a specific tool name matching the tools available to be used"  # noqa: E501
_CHOICE_MISSING = "tool choice selected was not found. Must be 'auto', 'none', 'required', or a specific tool name matching the tools available to be used"  # noqa: E501
_ROLE_OF = {
    "of_developer": base.Role.DEVELOPER,
    "of_system": base.Role.SYSTEM,
    "of_user": base.Role.USER,
    "of_assistant": base.Role.ASSISTANT,
}
_DROP = frozenset(k.lower() for k in OVERRIDE_KEYS) | {"piientities"}


def _message(
    pipeline: Pipeline, name: str, entry: Entry, msg: ai_pb2.ConversationMessage, scrub: bool,
    overrides: Overrides,
) -> base.Message:
    kind = msg.WhichOneof("message_types")
    if kind is None:
        raise errors.InvalidParams(name, "message type cannot be nil")
    body: Any = getattr(msg, kind)

    def text_of(content: ai_pb2.ConversationMessageContent) -> str:
        return pipeline.scrub(name, entry, content.text, "input", overrides) if scrub else content.text

    if kind == "of_tool":
        parts: tuple[base.Part, ...] = tuple(
            base.ToolResult(tool_id=body.tool_id, name=body.name, content=text_of(c)) for c in body.content
        )
        return base.Message(base.Role.TOOL, parts, body.name)
    texts: list[base.Part] = [base.TextPart(text_of(c)) for c in body.content]
    if kind == "of_assistant":
        for call in body.tool_calls:
            if call.WhichOneof("tool_types") is None:
                raise errors.InvalidParams(name, "tool types cannot be nil")
            arguments = call.function.arguments
            if scrub:
                arguments = pipeline.scrub_arguments(name, entry, arguments, "input", overrides)
            texts.append(base.ToolCall(id=call.id, name=call.function.name, arguments=arguments))
    return base.Message(_ROLE_OF[kind], tuple(texts), body.name)


def _tool_choice(name: str, choice: str, tools: tuple[base.Tool, ...], declared: int) -> str | None:
    """daprd's rules; ``declared`` counts every tools[] entry, typed or not, as daprd does."""
    if not choice and declared:
        choice = "auto"
    if choice in ("auto", "none", ""):
        return choice or None
    if choice == "required":
        if not declared:
            raise errors.InvalidParams(name, _CHOICE_REASON)
        return choice
    if declared and not any(t.name == choice for t in tools):
        raise errors.InvalidParams(name, _CHOICE_MISSING)
    return choice


def _usage(usage: base.Usage, out: ai_pb2.ConversationResultAlpha2CompletionUsage) -> None:
    out.SetInParent()
    out.completion_tokens = usage.completion_tokens
    out.prompt_tokens = usage.prompt_tokens
    out.total_tokens = usage.total_tokens
    if usage.completion_details is not None:
        d = usage.completion_details
        cd = out.completion_tokens_details
        cd.SetInParent()
        cd.accepted_prediction_tokens = d.accepted_prediction_tokens
        cd.audio_tokens = d.audio_tokens
        cd.reasoning_tokens = d.reasoning_tokens
        cd.rejected_prediction_tokens = d.rejected_prediction_tokens
    if usage.prompt_details is not None:
        p = usage.prompt_details
        pd = out.prompt_tokens_details
        pd.SetInParent()
        pd.audio_tokens = p.audio_tokens
        pd.cached_tokens = p.cached_tokens


async def converse(
    pipeline: Pipeline, req: ai_pb2.ConversationRequestAlpha2
) -> ai_pb2.ConversationResponseAlpha2:
    name = req.name
    entry = pipeline.entry(name)
    if not req.inputs:
        raise errors.MissingInputs(name)
    overrides = pipeline.overrides(name, req.metadata)
    messages = tuple(
        _message(pipeline, name, entry, msg, item.scrub_pii, overrides)
        for item in req.inputs
        for msg in item.messages
    )
    tools = tuple(
        base.Tool(
            name=t.function.name,
            description=t.function.description,
            parameters=json_format.MessageToDict(t.function.parameters) if t.function.HasField("parameters") else {},
        )
        for t in req.tools
        if t.WhichOneof("tool_types") == "function"
    )
    choice = _tool_choice(name, req.tool_choice, tools, len(req.tools))
    request = base.ConverseRequest(
        messages=messages,
        tools=tools,
        tool_choice=choice,
        temperature=req.temperature,
        metadata={k: v for k, v in req.metadata.items() if k.lower() not in _DROP},
        response_format=json_format.MessageToDict(req.response_format) if req.HasField("response_format") else None,
        prompt_cache_retention=(
            req.prompt_cache_retention.ToTimedelta().total_seconds() if req.HasField("prompt_cache_retention") else None
        ),
        model=overrides.model,
        api_key=overrides.api_key,
    )
    result = await pipeline.call(name, entry, request, overrides=overrides, scrub_output=req.scrub_pii,
                                 context_id=req.context_id)
    response = ai_pb2.ConversationResponseAlpha2()
    if req.context_id:
        response.context_id = req.context_id
    for output in result.outputs:
        out = response.outputs.add()
        for choice_ in output.choices:
            ch = out.choices.add(finish_reason=choice_.finish_reason, index=choice_.index)
            ch.message.SetInParent()
            if choice_.content:
                ch.message.content = choice_.content
            for call in choice_.tool_calls:
                tc = ch.message.tool_calls.add()
                if call.id:
                    tc.id = call.id
                tc.function.name = call.name
                tc.function.arguments = call.arguments
        if result.usage is not None:
            _usage(result.usage, out.usage)
        if result.model:
            out.model = result.model
    return response
