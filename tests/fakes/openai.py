"""OpenAI chat completions (``POST …/chat/completions``), as in OpenAI's API reference.

Serves OpenAI's own path (``/v1/chat/completions``), Azure's deployment path
(``/openai/deployments/{model}/chat/completions?api-version=…``) and any base path an
OpenAI-compatible server uses. With ``expected_key`` set, a request bearing another key gets
OpenAI's 401, whose message echoes the key it received, as OpenAI's does.

``"stream": true`` gets Server-Sent Events of ``chat.completion.chunk`` ending with
``data: [DONE]``, as OpenAI's streaming reference shows (tests/fakes/recorded/openai_stream*.txt);
``flavor`` renders the compatible servers' documented variations of it:

- ``openai``: a role chunk, one chunk per word, tool calls as a first chunk (id, name) then
  argument fragments by index, a finish chunk, and with ``stream_options.include_usage`` a last
  chunk with empty ``choices`` and the usage (``usage: null`` on every other chunk).
- ``azure``: the same, after a first chunk of ``prompt_filter_results`` with no choices.
- ``mistral``: refuses ``stream_options`` (422, as it refuses every unknown field); usage rides on
  the finish chunk; a tool call comes whole in one chunk.
- ``gemini``: no role chunk; every tool call whole in one chunk, without ``index``; usage on the
  finish chunk, whose reason is ``stop`` after tool calls too (tests/fakes/recorded/googleai_stream_tools.txt).
  For a ``gemini-3*`` model it validates thought signatures as Gemini 3 does (:func:`unsigned_call`).
- ``ollama``: the role on every chunk; a tool call whole; usage chunk when asked.
- ``deepseek``: ``: keep-alive`` comments before the first chunk (it sends them while queued).
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from tests.fakes.server import FakeServer, Recorded, Reply

__all__ = ["OpenAIFake"]

_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
          404: "invalid_request_error", 429: "rate_limit_error", 500: "server_error", 503: "server_error"}


_WORD = re.compile(r"\s*\S+|\s+$")


def words(text: str) -> list[str]:
    """Text cut as a model's tokens roughly are: each word with the space before it."""
    return _WORD.findall(text)


def fragments(text: str, size: int = 7) -> list[str]:
    """JSON arguments cut in pieces of ``size`` characters, as models stream them."""
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def unsigned_call(body: Any) -> str | None:
    """Gemini 3's check, per https://ai.google.dev/gemini-api/docs/thought-signatures: in the current
    turn (the messages after the last ``user`` message: tool results do not start a turn), the first
    tool call of each assistant message must carry ``extra_content.google.thought_signature``.
    The 400 message for the first that does not, else None."""
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        return None
    users = [i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"]
    start = users[-1] + 1 if users else 0
    for position, message in enumerate(messages[start:], start=start):
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        if not calls:
            continue
        google = (calls[0].get("extra_content") or {}).get("google") or {}
        if not google.get("thought_signature"):
            name = (calls[0].get("function") or {}).get("name")
            return ("Function call is missing a thought_signature in functionCall parts. This is required for tools "
                    "to work correctly, and missing thought_signature may lead to degraded model performance. "
                    f"Additional data, function call `default_api:{name}` , position {position + 1}. Please refer "
                    "to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.")
    return None


class OpenAIFake(FakeServer):
    def __init__(self, expected_key: str | None = None, *, keep: int | None = None, flavor: str = "openai") -> None:
        super().__init__(keep=keep)
        self.expected_key = expected_key
        self.flavor = flavor

    def presented_key(self, recorded: Recorded) -> str:
        auth = recorded.headers.get("authorization", "")
        return auth.removeprefix("Bearer ") if auth else recorded.headers.get("api-key", "")

    def check(self, recorded: Recorded) -> web.Response | None:
        if recorded.method != "POST" or not recorded.path.endswith("/chat/completions"):
            return web.json_response(self.error_body(404, f"Invalid URL ({recorded.method} {recorded.path})"),
                                     status=404)
        if self.expected_key is not None and self.presented_key(recorded) != self.expected_key:
            key = self.presented_key(recorded)
            return web.json_response(self.error_body(
                401, f"Incorrect API key provided: {key}. You can find your API key at "
                     "https://platform.openai.com/account/api-keys."), status=401)
        body = recorded.body if isinstance(recorded.body, dict) else {}
        if self.flavor == "gemini" and str(body.get("model", "")).startswith("gemini-3"):
            missing = unsigned_call(recorded.body)
            if missing is not None:  # Gemini's OpenAI layer wraps its errors in a list
                return web.json_response([{"error": {"code": 400, "message": missing, "status": "INVALID_ARGUMENT"}}],
                                         status=400)
        if self.flavor == "mistral" and isinstance(recorded.body, dict) and "stream_options" in recorded.body:
            return web.json_response({"object": "error", "message": {"detail": [{
                "type": "extra_forbidden", "loc": ["body", "stream_options"], "msg": "Extra inputs are not permitted",
                "input": recorded.body["stream_options"]}]}, "type": "invalid_request_message_error",
                "param": None, "code": None}, status=422)
        return None

    def default_text(self, recorded: Recorded) -> str:
        messages = (recorded.body or {}).get("messages") or []
        users = [m for m in messages if m.get("role") == "user"]
        content = users[-1]["content"] if users else ""
        return f"echo: {content if isinstance(content, str) else json.dumps(content)}"

    def answer(self, recorded: Recorded, reply: Reply) -> Any:
        choices = []
        for index in range(reply.choices):
            message: dict[str, Any] = {"role": "assistant", "refusal": None}
            if reply.structured is not None:
                message["content"] = json.dumps(reply.structured)
            else:
                text = reply.text if index == 0 or reply.text is None else f"{reply.text} #{index}"
                message["content"] = text
            if reply.tool_calls:
                message["tool_calls"] = [
                    {"id": id_, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                    for id_, name, args in reply.tool_calls
                ]
            choices.append({"index": index, "message": message, "logprobs": None,
                            "finish_reason": reply.finish or None})
        return {
            "id": "chatcmpl-fake123",
            "object": "chat.completion",
            "created": 1741569952,
            "model": "fake-upstream-model-2025-01-01",
            "choices": choices,
            "usage": {
                "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": reply.completion_tokens,
                "total_tokens": reply.prompt_tokens + reply.completion_tokens,
                "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": reply.reasoning_tokens, "audio_tokens": 0,
                                              "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
            },
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }

    def stream_frames(self, recorded: Recorded, reply: Reply) -> list[bytes]:
        body = recorded.body or {}
        usage_asked = bool((body.get("stream_options") or {}).get("include_usage"))
        flavor = self.flavor
        whole_calls = flavor in ("mistral", "gemini", "ollama")
        base: dict[str, Any] = {"id": "chatcmpl-fake123", "object": "chat.completion.chunk", "created": 1741569952,
                                "model": "fake-upstream-model-2025-01-01", "system_fingerprint": "fp_fake"}

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
            if flavor == "ollama":
                delta = {"role": "assistant", **delta}
            out = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            if usage_asked and flavor == "openai":
                out["usage"] = None
            return out | extra

        chunks: list[dict[str, Any]] = []
        if flavor == "azure":
            chunks.append({"choices": [], "created": 0, "id": "", "model": "", "object": "",
                           "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {
                               "hate": {"filtered": False, "severity": "safe"}}}]})
        if flavor not in ("gemini", "ollama"):
            chunks.append(chunk({"role": "assistant", "content": "", "refusal": None}))
        text = json.dumps(reply.structured) if reply.structured is not None else (reply.text or "")
        chunks.extend(chunk({"content": word}) for word in words(text))
        if flavor == "gemini" and reply.tool_calls:
            chunks.append(chunk({"role": "assistant", "tool_calls": [
                {"id": id_, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                for id_, name, args in reply.tool_calls]}))
        for index, (id_, name, args) in enumerate(() if flavor == "gemini" else reply.tool_calls):
            arguments = json.dumps(args)
            if whole_calls:
                chunks.append(chunk({"tool_calls": [{"id": id_, "type": "function",
                                                     "function": {"name": name, "arguments": arguments},
                                                     "index": index}]}))
                continue
            chunks.append(chunk({"tool_calls": [{"index": index, "id": id_, "type": "function",
                                                 "function": {"name": name, "arguments": ""}}]}))
            chunks.extend(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
                          for piece in fragments(arguments))
        usage = {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
                 "total_tokens": reply.prompt_tokens + reply.completion_tokens}
        if flavor == "gemini":  # a streamed tool call ends with "stop" (googleai_stream_tools.txt)
            chunks.append(chunk({}, "stop" if reply.tool_calls and reply.finish else reply.finish or None, usage=usage))
        elif flavor == "mistral":
            chunks.append(chunk({}, reply.finish or None, usage=usage))
        else:
            chunks.append(chunk({}, reply.finish or None))
            if usage_asked:
                chunks.append({**base, "choices": [], "usage": {
                    **usage, "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
                    "completion_tokens_details": {"reasoning_tokens": reply.reasoning_tokens, "audio_tokens": 0,
                                                  "accepted_prediction_tokens": 0,
                                                  "rejected_prediction_tokens": 0}}})
        frames = [f"data: {json.dumps(c, separators=(',', ':'))}\n\n".encode() for c in chunks]
        if flavor == "deepseek":
            frames.insert(0, b": keep-alive\n\n")
        frames.append(b"data: [DONE]\n\n")
        return frames

    def error_body(self, status: int, message: str) -> Any:
        return {"error": {"message": message, "type": _TYPES.get(status, "api_error"), "param": None,
                          "code": "rate_limit_exceeded" if status == 429 else None}}
