"""An OpenAI fake for agent clients: it answers a tool-calling loop and structured output from the request.

Stateless (each answer follows from the request alone, so daprd and parley get the same answers in
any order), on top of :class:`~tests.fakes.openai.OpenAIFake`:

- tools offered and no tool result in the conversation yet → one tool call: the first tool offered,
  with an argument for each required parameter (``{"city": "Paris"}`` for a string ``city``);
- a tool result in the conversation → text that quotes it: ``tool said: <the tool's content>``;
- a ``json_schema`` response format → JSON content that fills the schema (strings
  ``"<property>-value"``, integers 7, numbers 2.5, booleans true, arrays of one item);
- otherwise the base fake's ``echo: <last user message>``.

:class:`ThreadedFake` runs any fake of :mod:`tests.fakes` on a loop of its own in a background thread,
for tests that are not async (the servers and the clients run as processes).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from tests.fakes.openai import OpenAIFake
from tests.fakes.server import FakeServer, Recorded, Reply

__all__ = ["TOOL_CALL_ID", "AgentOpenAIFake", "ThreadedFake", "fill_schema"]

TOOL_CALL_ID = "call_fake_1"


def fill_schema(schema: Any, name: str = "value") -> Any:
    """A JSON value that satisfies a (simple) JSON schema, the same every time."""
    if not isinstance(schema, dict):
        return f"{name}-value"
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {key: fill_schema(sub, key) for key, sub in props.items()}
    if kind == "array":
        return [fill_schema(schema.get("items"), name)]
    if kind == "integer":
        return 7
    if kind == "number":
        return 2.5
    if kind == "boolean":
        return True
    if schema.get("enum"):
        return schema["enum"][0]
    return f"{name}-value"


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


class AgentOpenAIFake(OpenAIFake):
    def decide(self, body: Any) -> Reply | None:
        """The answer this request calls for, or None for the base fake's echo."""
        if not isinstance(body, dict):
            return None
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        results = [m for m in messages if m.get("role") == "tool"]
        if results:
            return Reply(text=f"tool said: {_text(results[-1].get('content'))}")
        tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
        if tools and body.get("tool_choice") != "none":
            function = tools[0].get("function") or {}
            params = function.get("parameters") or {}
            props = params.get("properties") or {}
            required = params.get("required") or list(props)
            args = {key: ("Paris" if key == "city" else fill_schema(props.get(key), key)) for key in required}
            return Reply(text=None, tool_calls=((TOOL_CALL_ID, str(function.get("name", "")), args),),
                         finish="tool_calls")
        response_format = body.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema")
            return Reply(structured=fill_schema(schema))
        return None

    def answer(self, recorded: Recorded, reply: Reply) -> Any:
        decided = self.decide(recorded.body)
        return super().answer(recorded, decided or reply)


class ThreadedFake:
    """Serve a fake on 127.0.0.1 from a thread of its own; ``requests`` are read with :meth:`take`."""

    def __init__(self, fake: FakeServer) -> None:
        self.fake = fake
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-provider", daemon=True)

    @property
    def endpoint(self) -> str:
        """The base URL an OpenAI-compatible component takes (``…/v1``)."""
        return f"{self.fake.url}/v1"

    def start(self) -> ThreadedFake:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.fake.start(), self._loop).result(10)
        return self

    def take(self) -> list[Recorded]:
        """The requests received since the last call, oldest first."""
        async def drain() -> list[Recorded]:
            taken, self.fake.requests[:] = list(self.fake.requests), []
            return taken
        return asyncio.run_coroutine_threadsafe(drain(), self._loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
