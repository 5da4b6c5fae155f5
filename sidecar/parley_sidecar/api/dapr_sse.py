"""``POST /v1.0-alpha2/conversation/{name}/converse/stream``: ``ConverseStreamAlpha2`` over HTTP,
as Server-Sent Events.

The body is alpha2's (decoded as ``/converse`` decodes it, ``?metadata.*`` included); each message
of the stream (``dapr_stream``) is one event whose data is its protojson, as ``wire.encode``
writes daprd's answers: ``{"chunk":{…}}`` events, then one ``{"complete":{…}}``. A failure
before the first event is daprd's JSON error with its status, exactly as ``/converse`` answers
it; after it, one ``event: error`` whose data is that same JSON error, then the stream ends. The
``parley-timeout`` header bounds the whole stream (``caller_timeout``), as it bounds ``/converse``.

A route of its own rather than ``Accept: text/event-stream`` on ``/converse``: one route per gRPC
method, as Dapr's HTTP API maps them; its own metrics label; and daprd answers it with a clear
404 instead of silently ignoring the header and buffering the whole answer.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from parley_sidecar import errors
from parley_sidecar.api import caller_timeout, dapr_stream, public, sse, surface, wire
from parley_sidecar.conversation.pipeline import Pipeline
from parley_sidecar.dapr_proto import ai_pb2

__all__ = ["ROUTE", "handler"]

log = logging.getLogger("parley.http")

ROUTE = "/v1.0-alpha2/conversation/{name}/converse/stream"


def _event(message: Any) -> bytes:
    if message.WhichOneof("response_type") == "chunk":
        text = _text_chunk(message.chunk)
        if text is not None:
            return text
    return sse.event(wire.encode(message))


# What wire.encode writes for a chunk of one text part, around its text and its index.
_TEXT_HEAD = b'data: {"chunk":{"parts":[{"text":{"text":'
_TEXT_INDEX = b'}}],"chunkIndex":'
_TEXT_END = b',"isDelta":true}}\n\n'
_TEXT_JSON = json.JSONEncoder(ensure_ascii=False)


def _text_chunk(chunk: Any) -> bytes | None:
    """The event of a chunk that is one piece of text (nearly every chunk), spliced around its
    encoded text: exactly what ``wire.encode`` writes for it (the protobuf message walked into a
    dict, then encoded), at a fifth of its cost on a path run once per token. None for any other
    chunk (a finish reason, tool calls, several parts, an empty text), which takes that path."""
    parts = chunk.parts
    if len(parts) != 1 or chunk.HasField("finish_reason") or not chunk.HasField("chunk_index") \
            or not chunk.is_delta:
        return None
    part = parts[0]
    text = part.text.text if part.WhichOneof("content_type") == "text" else ""
    if not text:
        return None
    return (_TEXT_HEAD + _TEXT_JSON.encode(text).encode() + _TEXT_INDEX + str(chunk.chunk_index).encode()
            + _TEXT_END)


def _error(exc: errors.ParleyError) -> bytes:
    return sse.event(wire.error_body(exc.wire.code, exc.message), name="error")


def handler(pipeline: Pipeline) -> surface.Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        name = public.param(request, "name")
        try:
            req = wire.decode(await request.read(), ai_pb2.ConversationRequestAlpha2(),
                              query_metadata=wire.query_metadata(request.query), plain_inputs=False)
            req.name = name
            timeout = caller_timeout.dapr_parse(request.headers.get(caller_timeout.HEADER), name)
            stream = dapr_stream.responses(pipeline, req)
            if timeout is not None:  # the whole stream within the caller's budget
                stream = caller_timeout.stream_within(timeout, stream, name)
            first = await anext(stream)
        except errors.ParleyError as exc:
            return surface.error_response(exc)
        except web.HTTPException:  # aiohttp's own answers (413 from read()) are the guard's to translate
            raise
        except Exception:  # a bug: daprd's invoke error, the traceback in the log only
            log.exception("streaming conversation with component %r failed unexpectedly", name)
            return surface.error_response(errors.InvokeError(name, "internal error (see the sidecar log)"))
        return await sse.relay(request, first, stream, _event, _error)

    return handle
