"""OpenAI's Chat Completions API on the sidecar's HTTP port: ``/v1/chat/completions``, ``/v1/models``.

So ``base_url="http://localhost:3500/v1"`` works for OpenAI's SDKs, LangChain and the rest. Handlers
decode the JSON body, hand it to :mod:`conversation.openai_chat` (checks, then the one pipeline) and
encode the answer as OpenAI does: a ``chat.completion`` object, or with ``stream: true`` Server-Sent
Events of ``chat.completion.chunk`` ending with ``data: [DONE]`` (:mod:`api.sse` relays them).
Errors are OpenAI's ``{"error": {"message", "type", "param", "code"}}`` with OpenAI's statuses, never
a trace. The token check, metrics and API logging are ``http._guard``'s, as for every route (for
``POST /v1/chat/completions`` as clients send it, ``http._front``'s, which does the same duties).

Extension headers (``docs/openai.md``): ``parley-scrub-pii: true`` scrubs PII as an alpha2 request
with ``scrubPii`` does; ``parley-context-id`` keys conversation memory (else the body's ``user``);
``parley-timeout`` bounds the call, or the whole stream, as on the Dapr API (``caller_timeout``).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from aiohttp import web

from parley_sidecar import errors
from parley_sidecar.api import caller_timeout, sse
from parley_sidecar.components import base
from parley_sidecar.conversation import openai_chat
from parley_sidecar.conversation.pipeline import Pipeline

__all__ = ["CHAT_PATH", "CONTEXT_HEADER", "PREFIX", "SCRUB_HEADER", "add_routes", "answer_chat", "error_response",
           "unauthorized"]

log = logging.getLogger("parley.http")

PREFIX = "/v1/"
"""Every route here starts with it; the guard answers refusals under it in OpenAI's shape."""
SCRUB_HEADER = "parley-scrub-pii"
CONTEXT_HEADER = "parley-context-id"

_JSON = "application/json"
_DONE = b"data: [DONE]\n\n"
_FINISH = {
    "stop": "stop", "length": "length", "tool_calls": "tool_calls", "content_filter": "content_filter",
    "function_call": "function_call",
    # other providers' words for the same ends (Anthropic, Bedrock, Google)
    "end_turn": "stop", "stop_sequence": "stop", "STOP": "stop", "max_tokens": "length",
    "MAX_TOKENS": "length", "tool_use": "tool_calls", "SAFETY": "content_filter",
    "guardrail_intervened": "content_filter",
}


# Made once: json.dumps with options builds a new encoder on every call, once per streamed chunk.
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_COMPACT_ASCII = json.JSONEncoder(separators=(",", ":"))


def _dumps(value: Any) -> bytes:
    text = _COMPACT.encode(value)
    try:
        return text.encode()
    except UnicodeEncodeError:  # a lone surrogate (JSON may carry "\ud800"): escaped, so still valid JSON
        return _COMPACT_ASCII.encode(value).encode()


# -- errors ----------------------------------------------------------------------------------------

def _body(message: str, kind: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _shape(exc: errors.ParleyError) -> tuple[int, dict[str, Any]]:
    """OpenAI's status and body for any error the pipeline or the checks raise."""
    match exc:
        case openai_chat.ChatError():
            return exc.status, _body(exc.message, exc.kind, exc.param, exc.code)
        case errors.BodyTooLarge():
            return 413, _body(exc.message, "invalid_request_error")
        case errors.InvokeError():
            # the component, its upstream or the pipeline around it failed: a server error, as
            # OpenAI's own answers are 5xx for failures on its side
            return 500, _body(exc.message, "server_error")
        case errors.Internal():
            return 500, _body(exc.message, "server_error")
    return exc.wire.http_status, _body(exc.message, "invalid_request_error" if exc.wire.http_status < 500
                                       else "server_error")


def error_response(exc: errors.ParleyError) -> web.Response:
    status, body = _shape(exc)
    return web.Response(status=status, body=_dumps(body), content_type=_JSON)


def unauthorized() -> web.Response:
    """The guard's refusal on ``/v1/*`` (OpenAI's 401 for a wrong key; the key is never echoed)."""
    return web.Response(status=401, content_type=_JSON, body=_dumps(_body(
        "Incorrect API key provided: send the sidecar's DAPR_API_TOKEN as 'Authorization: Bearer <token>' "
        "or in the dapr-api-token header.", "invalid_request_error", None, "invalid_api_key")))


def not_found(request: web.Request) -> web.Response:
    """OpenAI's answer for a path or method it does not serve."""
    return web.Response(status=404, content_type=_JSON, body=_dumps(_body(
        f"Invalid URL ({request.method} {request.path})", "invalid_request_error")))


# -- answers ---------------------------------------------------------------------------------------

def _finish(reason: str, has_calls: bool) -> str:
    return _FINISH.get(reason) or ("tool_calls" if has_calls else "stop")


def _usage(usage: base.Usage | None) -> dict[str, Any]:
    if usage is None:
        return {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    out: dict[str, Any] = {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                           "total_tokens": usage.total_tokens}
    if usage.prompt_details is not None:
        out["prompt_tokens_details"] = {"cached_tokens": usage.prompt_details.cached_tokens,
                                        "audio_tokens": usage.prompt_details.audio_tokens}
    if usage.completion_details is not None:
        d = usage.completion_details
        out["completion_tokens_details"] = {
            "reasoning_tokens": d.reasoning_tokens, "audio_tokens": d.audio_tokens,
            "accepted_prediction_tokens": d.accepted_prediction_tokens,
            "rejected_prediction_tokens": d.rejected_prediction_tokens}
    return out


def _completion(call: openai_chat.ChatCall, response: base.ConverseResponse) -> dict[str, Any]:
    choice = response.outputs[0].choices[0] if response.outputs and response.outputs[0].choices else None
    message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
    finish = "stop"
    if choice is not None:
        message["content"] = choice.content or (None if choice.tool_calls else "")
        if choice.tool_calls:
            message["tool_calls"] = [{"id": c.id, "type": "function",
                                      "function": {"name": c.name, "arguments": c.arguments},
                                      **({"extra_content": c.extra_content} if c.extra_content else {})}
                                     for c in choice.tool_calls]
        finish = _finish(choice.finish_reason, bool(choice.tool_calls))
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": response.model or call.model, "system_fingerprint": None,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": _usage(response.usage)}


class _Chunks:
    """``chat.completion.chunk`` events for one stream: the role in the first, a separate last
    chunk for the finish reason (as OpenAI sends it), then the usage chunk when asked, then [DONE].

    A piece of text only (nearly every piece) is spliced into bytes encoded once per stream (id,
    created, model before it; logprobs, finish_reason, usage after it): only its text is encoded
    per piece. The bytes are exactly what encoding the whole chunk gives (``_chunk``), which every
    other piece still takes. Slotted: one lives as long as its stream stays open."""

    __slots__ = ("_call", "_calls", "_finished", "_first", "_fresh", "_head", "_prefix", "_tail", "_usage")

    def __init__(self, call: openai_chat.ChatCall) -> None:
        self._call = call
        self._head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk",
                      "created": int(time.time()), "model": call.model, "system_fingerprint": None}
        self._first = True
        self._calls = False
        self._usage: base.Usage | None = None
        self._finished = False
        self._tail = (b',"logprobs":null,"finish_reason":null}],"usage":null}\n\n' if call.include_usage
                      else b',"logprobs":null,"finish_reason":null}]}\n\n')
        self._prefix: bytes | None = None
        self._fresh = False
        """Whether ``_prefix`` is for the current model: encoded when the first text piece needs it,
        not here (the upstream usually names its own model on that piece, so it would be twice)."""

    def _encode_prefix(self) -> bytes | None:
        """``data: `` and the chunk up to its delta, for the current model (None: a model that
        cannot be encoded as UTF-8 as it is, so every chunk takes the whole-chunk path)."""
        try:
            head = _COMPACT.encode(self._head)[:-1].encode()
        except UnicodeEncodeError:
            return None
        return b"data: " + head + b',"choices":[{"index":0,"delta":'

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk: dict[str, Any] = {**self._head,
                                 "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if self._call.include_usage:
            chunk["usage"] = None
        return sse.event(_dumps(chunk))

    def _text(self, delta: bytes, content: str) -> bytes | None:
        """A chunk whose delta is ``delta`` (its opening) then ``content``, or None when the text
        needs the whole-chunk path (a lone surrogate: the whole chunk is then escaped)."""
        if not self._fresh:
            self._prefix, self._fresh = self._encode_prefix(), True
        if self._prefix is None:
            return None
        try:
            text = _COMPACT.encode(content).encode()
        except UnicodeEncodeError:
            return None
        return self._prefix + delta + text + b"}" + self._tail

    def piece(self, piece: base.Delta) -> bytes:
        if piece.model and piece.model != self._head["model"]:
            self._head["model"] = piece.model
            self._fresh = False
        if piece.usage is not None:
            self._usage = piece.usage
        out: bytes | None = None
        if piece.content and not piece.tool_calls:
            out = self._text(b'{"role":"assistant","content":' if self._first else b'{"content":', piece.content)
        if out is not None:
            self._first = False
        else:
            delta: dict[str, Any] = {}
            if self._first:
                delta = {"role": "assistant", "content": ""}
                self._first = False
            if piece.content:
                delta["content"] = piece.content
            if piece.tool_calls:
                self._calls = True
                delta["tool_calls"] = [self._tool_call(t) for t in piece.tool_calls]
            out = self._chunk(delta) if delta else b""
        if piece.finish_reason and not self._finished:
            self._finished = True
            out += self._chunk({}, _finish(piece.finish_reason, self._calls))
        return out

    @staticmethod
    def _tool_call(piece: base.ToolCallDelta) -> dict[str, Any]:
        if piece.id or piece.name:  # the call's first piece names it
            out: dict[str, Any] = {"index": piece.index, "id": piece.id, "type": "function",
                                   "function": {"name": piece.name, "arguments": piece.arguments}}
        else:
            out = {"index": piece.index, "function": {"arguments": piece.arguments}}
        if piece.extra_content:  # Gemini's thought signature, where its layer puts it
            out["extra_content"] = piece.extra_content
        return out

    def tail(self) -> bytes:
        out = b"" if self._finished else self._chunk({}, "tool_calls" if self._calls else "stop")
        if self._call.include_usage:
            out += sse.event(_dumps({**self._head, "choices": [], "usage": _usage(self._usage)}))
        return out + _DONE


def _error_event(exc: errors.ParleyError) -> bytes:
    return sse.event(_dumps(_shape(exc)[1]), name="error")


# -- handlers --------------------------------------------------------------------------------------

PIPELINE: web.AppKey[Pipeline] = web.AppKey("openai_pipeline", Pipeline)


def _options(request: web.Request, call: openai_chat.ChatCall) -> tuple[bool, str]:
    scrub = request.headers.get(SCRUB_HEADER, "").strip().lower()
    if scrub not in ("", "true", "false"):
        raise openai_chat.ChatError(f"The {SCRUB_HEADER} header must be 'true' or 'false'.", param=SCRUB_HEADER,
                                    code="invalid_value")
    return scrub == "true", request.headers.get(CONTEXT_HEADER, "") or call.request.user


def _caller_timeout(request: web.Request) -> float | None:
    """The Dapr API's ``parley-timeout`` header, read the same way; a bad value is OpenAI's 400."""
    try:
        return caller_timeout.parse(request.headers.get(caller_timeout.HEADER))
    except ValueError as exc:
        message = str(exc)
        raise openai_chat.ChatError(message[0].upper() + message[1:] + ".", param=caller_timeout.HEADER,
                                    code="invalid_value") from None


async def _first(pieces: AsyncGenerator[base.Delta, None]) -> base.Delta:
    """The first piece, pulled before any header is sent (so an early failure is a plain status)."""
    try:
        return await anext(pieces)
    except StopAsyncIteration:
        return base.Delta()
    except BaseException:
        await pieces.aclose()
        raise


CHAT_PATH = "/v1/chat/completions"


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """The routed handler (paths that need cleaning, queries): :func:`answer_chat` with the app's pipeline."""
    return await answer_chat(request, request.app[PIPELINE])


async def answer_chat(request: web.Request, pipeline: Pipeline) -> web.StreamResponse:
    """``POST /v1/chat/completions``; also called by the API port's front handler, before the router
    (``http._front``), which is why the pipeline is a parameter: an unrouted request has no app."""
    try:
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError as exc:  # not JSON, or not UTF-8
            raise openai_chat.ChatError(f"We could not parse the JSON body of your request: {exc}. The API expects "
                                        "a JSON object.", code="invalid_json") from None
        except RecursionError:  # nested deeper than the parser goes: no request needs that
            raise openai_chat.ChatError("We could not parse the JSON body of your request: it is nested too deeply.",
                                        code="invalid_json") from None
        call = openai_chat.parse(body)
        del body  # parsed: the decoded JSON is not kept for as long as a stream stays open
        scrub, context_id = _options(request, call)
        timeout = _caller_timeout(request)
        if call.stream:
            pieces = await openai_chat.stream(pipeline, call, scrub=scrub, context_id=context_id)
            if timeout is not None:  # the whole stream within the caller's budget
                pieces = caller_timeout.stream_within(timeout, pieces, call.component)
            first = await _first(pieces)
            chunks = _Chunks(call)
            # relay closes ``pieces`` however it ends (the client left: the upstream call is cancelled)
            return await sse.relay(request, first, pieces, chunks.piece, _error_event, end=chunks.tail)
        answer = openai_chat.complete(pipeline, call, scrub=scrub, context_id=context_id)
        response = await (answer if timeout is None else caller_timeout.within(timeout, answer, call.component))
        return web.Response(body=_dumps(_completion(call, response)), content_type=_JSON)
    except errors.ParleyError as exc:
        return error_response(exc)
    except web.HTTPException:  # 413 from read(): the guard answers it
        raise
    except Exception:
        log.exception("chat completion failed unexpectedly")
        return error_response(errors.Internal())


def _model(entry_name: str, entry_type: str) -> dict[str, Any]:
    return {"id": entry_name, "object": "model", "created": 0, "owned_by": entry_type}


async def list_models(request: web.Request) -> web.Response:
    """Every loaded conversation component, by name: the names ``model`` accepts."""
    entries = sorted(request.app[PIPELINE].store.entries(), key=lambda e: e.spec.name)
    data = [_model(e.spec.name, e.spec.type) for e in entries]
    return web.Response(body=_dumps({"object": "list", "data": data}), content_type=_JSON)


async def get_model(request: web.Request) -> web.Response:
    model = request.match_info["model"]
    component = model.partition("/")[0]
    entry = request.app[PIPELINE].store.get(component)
    if entry is None:
        return error_response(openai_chat.model_not_found(component))
    return web.Response(body=_dumps(_model(model, entry.spec.type)), content_type=_JSON)


def add_routes(app: web.Application, pipeline: Pipeline) -> None:
    app[PIPELINE] = pipeline
    app.router.add_post(CHAT_PATH, chat_completions)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model:.+}", get_model)
