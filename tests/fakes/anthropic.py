"""Anthropic Messages (``POST /v1/messages``), as in Anthropic's API reference.

Checks what the real API checks first: ``x-api-key`` (against ``expected_key`` when set),
``anthropic-version``, and ``max_tokens``. A structured-output request (a forced tool) is answered
with a ``tool_use`` block for that tool.

``"stream": true`` gets Anthropic's SSE events as its streaming documentation shows them
(tests/fakes/recorded/anthropic_stream*.txt): ``message_start`` with the input usage, a ``ping``,
each block as ``content_block_start`` / deltas (``text_delta`` a word at a time,
``input_json_delta`` fragments, the first one empty as Anthropic sends it) / ``content_block_stop``,
``message_delta`` with the stop reason and output usage, then ``message_stop``.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tests.fakes.openai import fragments, words
from tests.fakes.server import FakeServer, Recorded, Reply

__all__ = ["AnthropicFake"]

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
          529: "overloaded_error"}
_STOP = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens"}


class AnthropicFake(FakeServer):
    def __init__(self, expected_key: str | None = None, *, keep: int | None = None) -> None:
        super().__init__(keep=keep)
        self.expected_key = expected_key

    def check(self, recorded: Recorded) -> web.Response | None:
        if recorded.method != "POST" or not recorded.path.endswith("/messages"):
            return web.json_response(self.error_body(404, "Not found"), status=404)
        if self.expected_key is not None and recorded.headers.get("x-api-key") != self.expected_key:
            return web.json_response(self.error_body(401, "invalid x-api-key"), status=401)
        if not recorded.headers.get("anthropic-version"):
            return web.json_response(self.error_body(400, "anthropic-version: header is required"), status=400)
        if not isinstance(recorded.body, dict) or not recorded.body.get("max_tokens"):
            return web.json_response(self.error_body(400, "max_tokens: Field required"), status=400)
        return None

    def default_text(self, recorded: Recorded) -> str:
        turns = [m for m in recorded.body.get("messages", []) if m.get("role") == "user"]
        texts = [b.get("text", "") for b in (turns[-1]["content"] if turns else []) if b.get("type") == "text"]
        return "echo: " + " ".join(texts)

    def answer(self, recorded: Recorded, reply: Reply) -> Any:
        content: list[dict[str, Any]] = []
        forced = (recorded.body or {}).get("tool_choice") or {}
        if reply.structured is not None and forced.get("type") == "tool":
            content.append({"type": "tool_use", "id": "toolu_structured", "name": forced["name"],
                            "input": reply.structured})
        else:
            if reply.text:
                content.append({"type": "text", "text": reply.text})
            content.extend({"type": "tool_use", "id": id_, "name": name, "input": args}
                           for id_, name, args in reply.tool_calls)
        stop = "tool_use" if reply.structured is not None else _STOP.get(reply.finish, reply.finish)
        return {
            "id": "msg_fake01",
            "type": "message",
            "role": "assistant",
            "model": "claude-fake-upstream",
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": reply.prompt_tokens - reply.cached_tokens,
                      "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": reply.cached_tokens,
                      "output_tokens": reply.completion_tokens},
        }

    def stream_frames(self, recorded: Recorded, reply: Reply) -> list[bytes]:
        whole = self.answer(recorded, reply)
        usage = whole["usage"]
        events: list[dict[str, Any]] = [
            {"type": "message_start", "message": {**whole, "content": [], "stop_reason": None,
                                                  "usage": {**usage, "output_tokens": 1}}},
            {"type": "ping"},
        ]
        for index, block in enumerate(whole["content"]):
            if block["type"] == "text":
                events.append({"type": "content_block_start", "index": index,
                               "content_block": {"type": "text", "text": ""}})
                events.extend({"type": "content_block_delta", "index": index,
                               "delta": {"type": "text_delta", "text": word}} for word in words(block["text"]))
            else:
                events.append({"type": "content_block_start", "index": index,
                               "content_block": {**block, "input": {}}})
                pieces = ["", *fragments(json.dumps(block["input"]))] if block["input"] else [""]
                events.extend({"type": "content_block_delta", "index": index,
                               "delta": {"type": "input_json_delta", "partial_json": piece}} for piece in pieces)
            events.append({"type": "content_block_stop", "index": index})
        events.append({"type": "message_delta", "delta": {"stop_reason": whole["stop_reason"], "stop_sequence": None},
                       "usage": {"output_tokens": usage["output_tokens"]}})
        events.append({"type": "message_stop"})
        return [f"event: {e['type']}\ndata: {json.dumps(e, separators=(',', ':'))}\n\n".encode() for e in events]

    def malformed_frame(self) -> bytes:
        return b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":\n\n'

    def error_body(self, status: int, message: str) -> Any:
        return {"type": "error", "error": {"type": _TYPES.get(status, "api_error"), "message": message}}
