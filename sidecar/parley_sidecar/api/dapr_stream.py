"""``ConverseStreamAlpha2``: an alpha2 request answered as a stream of ``ConversationStreamResponse``
messages, the same for gRPC and for the HTTP SSE form.

alpha2's own validation and request building (``conversation.alpha2.prepare``), then
``Pipeline.stream``: each piece becomes a chunk as it arrives, and after the last one a
``complete`` carries the whole answer in ``ConverseAlpha2``'s output shape (assembled from the
chunks, so it holds exactly what was streamed, scrubbed when the request asked) with its usage.

The stream is an async generator with the pipeline's contract: a failure before the first message
(unknown component, bad request, upstream refused) raises from the first ``__anext__``, so a
surface can still answer a plain error status; a failure after it raises ``errors.InvokeError``
mid-iteration; closing it closes the pipeline's stream (and with it the upstream call). No I/O
of its own, no wire format here.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from parley_sidecar.api import stream_pb
from parley_sidecar.components import base, streaming
from parley_sidecar.conversation import alpha2
from parley_sidecar.conversation.pipeline import Pipeline
from parley_sidecar.dapr_proto import ai_pb2

__all__ = ["responses"]


def _chunk(delta: base.Delta, index: int) -> Any | None:
    """The chunk message for ``delta``; None for a piece with nothing a chunk carries (usage or
    model alone: those arrive in ``complete``)."""
    if not (delta.content or delta.tool_calls or delta.finish_reason):
        return None
    message = stream_pb.ConversationStreamResponse()
    chunk = message.chunk
    chunk.chunk_index = index
    chunk.is_delta = True
    if delta.content:
        chunk.parts.add().text.text = delta.content
    for piece in delta.tool_calls:
        call = chunk.parts.add().tool_call
        call.index = piece.index
        if piece.id:
            call.id = piece.id
        if piece.name:  # a call's first piece: it names the function
            call.name = piece.name
            call.type = "function"
        if piece.arguments:
            call.arguments = piece.arguments
    if delta.finish_reason:
        chunk.finish_reason = delta.finish_reason
    return message


def _complete(req: ai_pb2.ConversationRequestAlpha2, answer: base.ConverseResponse) -> Any:
    whole = alpha2.response(req, answer)
    message = stream_pb.ConversationStreamResponse()
    complete = message.complete
    if req.context_id:
        complete.context_id = req.context_id
    if answer.usage is not None:
        alpha2.fill_usage(answer.usage, complete.usage)
    complete.outputs.extend(whole.outputs)
    return message


async def responses(pipeline: Pipeline, req: ai_pb2.ConversationRequestAlpha2) -> AsyncGenerator[Any, None]:
    """The stream of ``ConversationStreamResponse`` messages answering ``req``."""
    prepared = await alpha2.prepare(pipeline, req)
    pieces = pipeline.stream(prepared.name, prepared.entry, prepared.request, overrides=prepared.overrides,
                             scrub_output=prepared.scrub_output, scrub_history=prepared.scrub_history,
                             context_id=prepared.context_id)
    answer = streaming.Assembler()
    index = 0
    try:
        async for delta in pieces:
            answer.add(delta)
            chunk = _chunk(delta, index)
            if chunk is not None:
                index += 1
                yield chunk
    finally:
        # Also when the consumer closes this generator mid-stream: the upstream call ends with it.
        await pieces.aclose()
    yield _complete(req, answer.response())
