"""``ConverseAlpha2``: daprd's validation in daprd's order, then the shared pipeline.

Order (daprd ``pkg/api/universal/conversation.go``): component lookup, missing inputs, each
message (type set, assistant tool calls typed, input scrubbing), tool choice, call, output
scrubbing. ``metadata`` is forwarded to the provider, minus the Dapr docs' override keys (``model``,
``key``, ``cacheTTL``), which would otherwise leak a key upstream. Beyond daprd, scrubbing covers
everything sent upstream (tool calls, metadata, tools, history; see :mod:`.scrubbing`).

:func:`prepare` (everything before the call) and :func:`response` (the answer's message) are
shared with parley's streaming form of alpha2 (``api/dapr_stream``), so both forms validate and
answer alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from google.protobuf import json_format

from parley_sidecar import errors
from parley_sidecar.components import base
from parley_sidecar.components.store import Entry
from parley_sidecar.conversation.pipeline import OVERRIDE_KEYS, Overrides, Pipeline
from parley_sidecar.conversation.scrubbing import Scrub
from parley_sidecar.dapr_proto import ai_pb2

__all__ = ["Prepared", "converse", "fill_usage", "prepare", "response"]

_CHOICE_REASON = "tool choice must be 'auto', 'none', 'required', or a specific tool name matching the tools available to be used"  # noqa: E501
_CHOICE_MISSING = "tool choice selected was not found. Must be 'auto', 'none', 'required', or a specific tool name matching the tools available to be used"  # noqa: E501
_ROLE_OF = {
    "of_developer": base.Role.DEVELOPER,
    "of_system": base.Role.SYSTEM,
    "of_user": base.Role.USER,
    "of_assistant": base.Role.ASSISTANT,
}
_DROP = frozenset(k.lower() for k in OVERRIDE_KEYS) | {"piientities"}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_CREDENTIAL = re.compile(
    r"(?:^|[_.-])(?:api[_.-]?)?(?:key|token|secret|password|passwd|pwd|credentials?|auth|authorization|bearer)$")


def _forwarded(metadata: Mapping[str, str]) -> dict[str, str]:
    """The request metadata sent upstream: never the per-request overrides, and never a key that
    looks like a credential (``key``, ``api_key``, ``apiKey``, ``x-api-key``, ``access_token``,
    ``secretKey``, ``password``, …), which daprd would forward into the provider's request body."""
    return {k: v for k, v in metadata.items()
            if k.lower() not in _DROP and not _CREDENTIAL.search(_CAMEL.sub("_", k).lower())}


def _message(name: str, msg: ai_pb2.ConversationMessage, scrub: Scrub | None) -> base.Message:
    """One message, validated as daprd validates it, then scrubbed (every string of it) if its
    input asked."""
    kind = msg.WhichOneof("message_types")
    if kind is None:
        raise errors.InvalidParams(name, "message type cannot be nil")
    body: Any = getattr(msg, kind)
    message: base.Message
    if kind == "of_user":  # the common message: text only
        message = base.Message(base.Role.USER, tuple([base.TextPart(c.text) for c in body.content]), body.name)
    elif kind == "of_tool":
        parts: tuple[base.Part, ...] = tuple(
            base.ToolResult(tool_id=body.tool_id, name=body.name, content=c.text) for c in body.content
        )
        message = base.Message(base.Role.TOOL, parts, body.name)
    else:
        texts: list[base.Part] = [base.TextPart(c.text) for c in body.content]
        if kind == "of_assistant":
            for call in body.tool_calls:
                if call.WhichOneof("tool_types") is None:
                    raise errors.InvalidParams(name, "tool types cannot be nil")
                texts.append(base.ToolCall(id=call.id, name=call.function.name, arguments=call.function.arguments))
        message = base.Message(_ROLE_OF[kind], tuple(texts), body.name)
    return scrub.message(message) if scrub is not None else message


_MAX_DURATION = 315_576_000_000
"""Seconds: the range of a valid ``google.protobuf.Duration`` (10,000 years either way)."""


def _retention(name: str, req: ai_pb2.ConversationRequestAlpha2) -> float:
    """``promptCacheRetention`` in seconds; a Duration outside protobuf's range (gRPC decodes it
    without checking, and timedelta cannot hold it) is the caller's error."""
    duration = req.prompt_cache_retention
    if abs(duration.seconds) > _MAX_DURATION or abs(duration.nanos) >= 1_000_000_000:
        raise errors.InvalidParams(name, "promptCacheRetention is not a valid duration")
    return duration.seconds + duration.nanos / 1e9


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


def fill_usage(usage: base.Usage, out: ai_pb2.ConversationResultAlpha2CompletionUsage) -> None:
    """Write ``usage`` into alpha2's usage message (marked present even when all zero, as daprd)."""
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


class Prepared:
    """A validated alpha2 request, ready for the pipeline (``call`` or ``stream``).

    A plain class, not a frozen dataclass: nothing compares, hashes or prints one, and a dataclass
    costs ~0.5 ms of every start to create (its methods are compiled) and more per request to fill
    (docs/performance.md, round 7). ``Final`` keeps it read-only for mypy."""

    __slots__ = ("context_id", "entry", "name", "overrides", "request", "scrub_history", "scrub_output")

    def __init__(self, name: str, entry: Entry, request: base.ConverseRequest, overrides: Overrides,
                 scrub_output: bool, scrub_history: bool, context_id: str) -> None:
        self.name: Final = name
        self.entry: Final = entry
        self.request: Final = request
        self.overrides: Final = overrides
        self.scrub_output: Final = scrub_output
        self.scrub_history: Final = scrub_history
        self.context_id: Final = context_id


async def prepare(pipeline: Pipeline, req: ai_pb2.ConversationRequestAlpha2) -> Prepared:
    """daprd's checks in daprd's order and the input scrubbing: everything before the call, shared
    by ``ConverseAlpha2`` and its streaming form."""
    name = req.name
    entry = pipeline.entry(name)
    inputs = req.inputs
    if not inputs:
        raise errors.MissingInputs(name)
    metadata = req.metadata
    overrides = pipeline.overrides(name, metadata)
    scrub_inputs = any([item.scrub_pii for item in inputs])
    scrub_any = scrub_inputs or req.scrub_pii

    size = req.ByteSize() if scrub_any else 0
    if scrub_inputs:
        def build(scrub: Scrub | None) -> tuple[base.Message, ...]:
            return tuple([
                _message(name, msg, scrub if item.scrub_pii else None) for item in inputs for msg in item.messages
            ])

        messages = await pipeline.scrubbing.run(name, entry, overrides.pii_entities, "input", build, size)
    else:  # nothing to scrub: no scrubber, no redaction count (and list comprehensions: no generator per call)
        messages = tuple([_message(name, msg, None) for item in inputs for msg in item.messages])
    declared = req.tools
    tools = () if not declared else tuple(
        base.Tool(
            name=t.function.name,
            description=t.function.description,
            parameters=json_format.MessageToDict(t.function.parameters) if t.function.HasField("parameters") else {},
        )
        for t in declared
        if t.WhichOneof("tool_types") == "function"
    )
    choice = _tool_choice(name, req.tool_choice, tools, len(declared))
    request = base.ConverseRequest(
        messages=messages,
        tools=tools,
        tool_choice=choice,
        temperature=req.temperature,
        metadata=_forwarded(metadata) if metadata else {},
        response_format=json_format.MessageToDict(req.response_format) if req.HasField("response_format") else None,
        prompt_cache_retention=_retention(name, req) if req.HasField("prompt_cache_retention") else None,
        model=overrides.model,
        api_key=overrides.api_key,
    )
    if scrub_any:
        # what the request sends beyond its messages (metadata, tools): the request asked
        unscrubbed = request
        request = await pipeline.scrubbing.run(name, entry, overrides.pii_entities, "input",
                                               lambda scrub: scrub.request(unscrubbed), size)
    return Prepared(name, entry, request, overrides, req.scrub_pii, scrub_any, req.context_id)


def response(req: ai_pb2.ConversationRequestAlpha2, result: base.ConverseResponse) -> ai_pb2.ConversationResponseAlpha2:
    """The answer as daprd writes it: one output per component output, usage and model on each."""
    answer = ai_pb2.ConversationResponseAlpha2()
    if req.context_id:
        answer.context_id = req.context_id
    for output in result.outputs:
        out = answer.outputs.add()
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
            fill_usage(result.usage, out.usage)
        if result.model:
            out.model = result.model
    return answer


async def converse(
    pipeline: Pipeline, req: ai_pb2.ConversationRequestAlpha2
) -> ai_pb2.ConversationResponseAlpha2:
    p = await prepare(pipeline, req)
    result = await pipeline.call(p.name, p.entry, p.request, overrides=p.overrides, scrub_output=p.scrub_output,
                                 scrub_history=p.scrub_history, context_id=p.context_id)
    return response(req, result)
