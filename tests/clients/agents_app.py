"""An app on dapr-agents 1.0.9, run by tests/clients/test_dapr_agents.py in dapr-agents' own venv.

It uses the library as its users do (``DaprChatClient``, ``@tool``, ``generate``), talking to whatever
sidecar ``DAPR_GRPC_PORT``/``DAPR_HTTP_PORT`` point at, and prints one line ``RESULT {json}``: for
each scenario named on the command line, what the app got (or the error it raised).

    python agents_app.py named discovered structured tool_loop
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from typing import Any

from dapr_agents import DaprChatClient, tool
from dapr_agents.types.message import AssistantMessage, ToolMessage, UserMessage
from pydantic import BaseModel

COMPONENT = "llm"


class Weather(BaseModel):
    city: str
    temperature_c: int
    sunny: bool


@tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"sunny and 21 C in {city}"


def _message(response: Any) -> dict[str, Any]:
    message = response.get_message()
    return {"content": message.content, "finish_reason": response.results[0].finish_reason,
            "tool_calls": [c.model_dump() for c in message.get_tool_calls() or []],
            "usage": response.metadata.get("usage"), "model": response.metadata.get("model")}


def named() -> Any:
    llm = DaprChatClient(component_name=COMPONENT)
    return _message(llm.generate("Hello from dapr-agents"))


def discovered() -> Any:
    llm = DaprChatClient()  # no name: the one conversation component in the sidecar's metadata
    return _message(llm.generate("Which component answers?"))


def structured() -> Any:
    llm = DaprChatClient(component_name=COMPONENT)
    weather = llm.generate("What is the weather in Paris? Answer as JSON.", response_format=Weather)
    return {"type": type(weather).__name__, "value": weather.model_dump()}


def tool_loop() -> Any:
    """The plain loop an agent runs: ask with tools, run each tool asked for, answer with its result."""
    llm = DaprChatClient(component_name=COMPONENT)
    messages: list[Any] = [UserMessage(content="What is the weather in Paris?")]
    rounds: list[dict[str, Any]] = []
    for _ in range(4):
        response = llm.generate(messages, tools=[get_weather])
        message: AssistantMessage = response.get_message()
        rounds.append(_message(response))
        calls = message.get_tool_calls() or []
        if not calls:
            break
        messages.append(message)
        for call in calls:
            result = get_weather.run(**call.function.arguments_dict)
            messages.append(ToolMessage(tool_call_id=call.id, name=call.function.name, content=str(result)))
    return {"rounds": rounds, "final": rounds[-1]["content"]}


SCENARIOS: dict[str, Callable[[], Any]] = {
    "named": named, "discovered": discovered, "structured": structured, "tool_loop": tool_loop}


def main() -> None:
    results: dict[str, Any] = {}
    for name in sys.argv[1:] or list(SCENARIOS):
        try:
            results[name] = {"ok": True, "result": SCENARIOS[name]()}
        except Exception as exc:
            traceback.print_exc()
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    print("RESULT " + json.dumps(results, default=str), flush=True)


if __name__ == "__main__":
    main()
