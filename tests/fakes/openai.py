"""OpenAI chat completions (``POST …/chat/completions``), as in OpenAI's API reference.

Serves OpenAI's own path (``/v1/chat/completions``), Azure's deployment path
(``/openai/deployments/{model}/chat/completions?api-version=…``) and any base path an
OpenAI-compatible server uses. With ``expected_key`` set, a request bearing another key gets
OpenAI's 401, whose message echoes the key it received, as OpenAI's does.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.fakes.server import FakeServer, Recorded, Reply

__all__ = ["OpenAIFake"]

_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
          404: "invalid_request_error", 429: "rate_limit_error", 500: "server_error", 503: "server_error"}


class OpenAIFake(FakeServer):
    def __init__(self, expected_key: str | None = None, *, keep: int | None = None) -> None:
        super().__init__(keep=keep)
        self.expected_key = expected_key

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

    def error_body(self, status: int, message: str) -> Any:
        return {"error": {"message": message, "type": _TYPES.get(status, "api_error"), "param": None,
                          "code": "rate_limit_exceeded" if status == 429 else None}}
