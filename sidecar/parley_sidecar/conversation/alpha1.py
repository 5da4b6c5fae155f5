"""``ConverseAlpha1``: daprd's checks in daprd's order, then the shared pipeline.

Order (daprd ``pkg/api/universal/conversation.go``): component lookup, missing inputs, input
scrubbing, call, output scrubbing. ``parameters`` are copied into every output; ``contextID`` is
echoed when non-empty. ``metadata`` carries the Dapr docs' per-request overrides (daprd drops it).
"""

from __future__ import annotations

from parley_sidecar import errors
from parley_sidecar.components import base
from parley_sidecar.conversation.pipeline import Pipeline
from parley_sidecar.conversation.scrubbing import Scrub
from parley_sidecar.dapr_proto import ai_pb2

__all__ = ["ROLES", "converse"]

ROLES: dict[str, base.Role] = {
    "user": base.Role.USER,
    "human": base.Role.USER,
    "system": base.Role.SYSTEM,
    "assistant": base.Role.ASSISTANT,
    "ai": base.Role.ASSISTANT,
    "tool": base.Role.TOOL,
    "function": base.Role.FUNCTION,
    "generic": base.Role.GENERIC,
}
"""daprd's ``mapRoleToChatMessageType``; any other role, empty included, is a user message."""


async def converse(pipeline: Pipeline, req: ai_pb2.ConversationRequest) -> ai_pb2.ConversationResponse:
    name = req.name
    entry = pipeline.entry(name)
    if not req.inputs:
        raise errors.MissingInputs(name)
    overrides = pipeline.overrides(name, req.metadata)

    def messages(scrub: Scrub | None) -> tuple[base.Message, ...]:
        return tuple(
            base.Message(ROLES.get(item.role, base.Role.USER),
                         (base.TextPart(scrub.text(item.content) if scrub is not None and item.scrubPII
                                        else item.content),))
            for item in req.inputs
        )

    scrub_inputs = any(item.scrubPII for item in req.inputs)
    if scrub_inputs:
        sent = await pipeline.scrubbing.run(name, entry, overrides.pii_entities, "input", messages, req.ByteSize())
    else:  # nothing to scrub: no scrubber, no redaction count
        sent = messages(None)
    request = base.ConverseRequest(
        messages=sent,
        temperature=req.temperature,
        model=overrides.model,
        api_key=overrides.api_key,
    )
    result = await pipeline.call(name, entry, request, overrides=overrides, scrub_output=req.scrubPII,
                                 scrub_history=req.scrubPII or scrub_inputs, context_id=req.contextID)
    response = ai_pb2.ConversationResponse()
    if req.contextID:
        response.contextID = req.contextID
    for output in result.outputs:
        out = response.outputs.add(result=output.choices[0].content if output.choices else "")
        if req.parameters:
            for key, value in req.parameters.items():
                out.parameters[key].CopyFrom(value)
    return response
