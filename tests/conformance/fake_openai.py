"""A local stand-in for OpenAI's chat-completions API, speaking its wire format.

Both daprd's ``conversation.openai`` and parley's are pointed at it (``endpoint:
http://127.0.0.1:PORT/v1``). It records every request it receives (path, auth header, JSON body)
and answers deterministically from the request: the reply text is ``reply to: <last message text>``
unless the request's text carries a directive ``#scenario`` (see :data:`SCENARIOS`): tool calls,
several choices, usage details, upstream errors, …

In-process: ``FakeOpenAI().start()`` serves from a background thread. As a process (for the
benchmarks): ``python -m tests.conformance.fake_openai PORT``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import sys
import threading
from typing import Any

from aiohttp import web

__all__ = ["SCENARIOS", "FakeOpenAI", "Seen", "answer_for"]

UPSTREAM_MODEL = "gpt-4o-mini-2024-07-18"
SCENARIOS = ("tools", "two-choices", "usage-details", "no-usage", "length", "content-parts", "empty-content",
             "status-429", "status-500", "status-401", "status-400", "not-json", "no-choices", "null-content")
_DIRECTIVE = re.compile(r"#(" + "|".join(re.escape(s) for s in SCENARIOS) + r")\b")


@dataclasses.dataclass(frozen=True)
class Seen:
    method: str
    path: str
    authorization: str
    content_type: str
    body: Any


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def answer_for(body: Any) -> tuple[int, Any]:
    """The status and JSON the fake answers to one request body."""
    messages = body.get("messages", []) if isinstance(body, dict) else []
    text = " ".join(_text_of(m) for m in messages if isinstance(m, dict))
    last = _text_of(messages[-1]) if messages and isinstance(messages[-1], dict) else ""
    found = _DIRECTIVE.search(text)
    scenario = found.group(1) if found else ""
    if scenario.startswith("status-"):
        status = int(scenario.removeprefix("status-"))
        return status, {"error": {"message": f"fake upstream error {status}", "type": "fake_error",
                                  "param": None, "code": "fake"}}
    if scenario == "not-json":
        return 200, "this is not json"
    message: dict[str, Any] = {"role": "assistant", "content": f"reply to: {last}"}
    finish = "stop"
    if scenario == "tools":
        message = {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_abc", "type": "function", "function": {"name": "get_weather",
                                                                "arguments": "{\"location\":\"Paris\"}"}},
            {"id": "call_def", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]}
        finish = "tool_calls"
    elif scenario == "length":
        finish = "length"
    elif scenario == "content-parts":
        message["content"] = [{"type": "text", "text": "part one "}, {"type": "text", "text": "part two"}]
    elif scenario == "empty-content":
        message["content"] = ""
    elif scenario == "null-content":
        message["content"] = None
    choices = [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}]
    if scenario == "two-choices":
        choices.append({"index": 1, "message": {"role": "assistant", "content": "second choice"},
                        "finish_reason": "length", "logprobs": None})
    if scenario == "no-choices":
        choices = []
    reply: dict[str, Any] = {"id": "chatcmpl-fake", "object": "chat.completion", "created": 1700000000,
                             "model": UPSTREAM_MODEL, "choices": choices, "system_fingerprint": "fp_fake"}
    if scenario != "no-usage":
        usage: dict[str, Any] = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18,
                                 "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                                 "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                               "accepted_prediction_tokens": 0,
                                                               "rejected_prediction_tokens": 0}}
        if scenario == "usage-details":
            usage["prompt_tokens_details"] = {"cached_tokens": 4, "audio_tokens": 1}
            usage["completion_tokens_details"] = {"reasoning_tokens": 3, "audio_tokens": 0,
                                                  "accepted_prediction_tokens": 2, "rejected_prediction_tokens": 1}
        reply["usage"] = usage
    return 200, reply


class FakeOpenAI:
    def __init__(self, *, record: bool = True) -> None:
        self.record = record
        """Keep every request (tests); off under benchmark load."""
        self.seen: list[Seen] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def take(self) -> list[Seen]:
        with self._lock:
            seen, self.seen = self.seen, []
        return seen

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        if self.record:
            with self._lock:
                self.seen.append(Seen(request.method, request.path_qs, request.headers.get("Authorization", ""),
                                      request.headers.get("Content-Type", ""), body))
        status, reply = answer_for(body)
        if isinstance(reply, str):
            return web.Response(status=status, text=reply)
        return web.json_response(reply, status=status)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    def start(self) -> FakeOpenAI:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            runner = web.AppRunner(self.app(), access_log=None)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self._runner = runner
            server = site._server
            assert isinstance(server, asyncio.Server)
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-openai", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake OpenAI server did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)


def main() -> None:
    port = int(sys.argv[1])
    web.run_app(FakeOpenAI(record=False).app(), host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main()
