"""dapr-agents 1.0.9's ``DaprChatClient`` on daprd and on parley: the app (agents_app.py) runs unchanged.

dapr-agents asks the sidecar for its metadata (gRPC ``GetMetadata``) before every conversation: to
check ``daprRuntimeVersion`` and, with no component named, to find the one conversation component.
Then it calls ``ConverseAlpha2`` with tools, a response format and a temperature. The sidecars' one
component, ``llm``, is ``conversation.openai`` on a local fake of OpenAI that answers a tool call, then
text quoting the tool's result, and JSON filling a requested schema (tests/fakes/agent_openai.py).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.clients.conftest import HERE, SERVERS, agents_python, pick, run_app
from tests.conformance.servers import Pair
from tests.fakes.agent_openai import TOOL_CALL_ID, ThreadedFake
from tests.fakes.server import Recorded

PYTHON, MISSING = agents_python()
pytestmark = pytest.mark.skipif(PYTHON is None, reason=MISSING)

SCENARIOS = ("named", "discovered", "structured", "tool_loop")


@pytest.fixture(scope="module")
def runs(llm_pair: Pair, agent_fake: ThreadedFake) -> dict[str, tuple[dict[str, Any], list[Recorded]]]:
    """The app run once against each server: its results, and what that server sent to the fake."""
    assert PYTHON is not None
    out: dict[str, tuple[dict[str, Any], list[Recorded]]] = {}
    for name in SERVERS:
        agent_fake.take()
        result = run_app([str(PYTHON), str(HERE / "agents_app.py"), *SCENARIOS], pick(llm_pair, name))
        out[name] = (result, agent_fake.take())
    return out


def scenario(runs: dict[str, tuple[dict[str, Any], list[Recorded]]], server: str, name: str) -> Any:
    got = runs[server][0][name]
    assert got["ok"], f"dapr-agents on {server}, {name}: {got['error']}"
    return got["result"]


def upstream(runs: dict[str, tuple[dict[str, Any], list[Recorded]]], server: str) -> list[Any]:
    return [r.body for r in runs[server][1] if r.path.endswith("/chat/completions")]


@pytest.mark.parametrize("server", SERVERS)
def test_chat_client_with_a_component_name(runs: Any, server: str) -> None:
    got = scenario(runs, server, "named")
    assert got["content"] == "echo: Hello from dapr-agents"
    assert got["finish_reason"] == "stop"
    assert got["tool_calls"] == []
    assert got["usage"]["total_tokens"] == 15  # the fake's 10 prompt + 5 completion tokens
    asked = [b for b in upstream(runs, server) if "Hello from dapr-agents" in json.dumps(b)]
    assert len(asked) == 1 and asked[0]["messages"][-1] == {"role": "user", "content": "Hello from dapr-agents"}


@pytest.mark.parametrize("server", SERVERS)
def test_chat_client_finds_the_component_in_the_sidecar_metadata(runs: Any, server: str) -> None:
    got = scenario(runs, server, "discovered")
    assert got["content"] == "echo: Which component answers?"


@pytest.mark.parametrize("server", SERVERS)
def test_structured_output_into_a_pydantic_model(runs: Any, server: str) -> None:
    got = scenario(runs, server, "structured")
    assert got == {"type": "Weather", "value": {"city": "city-value", "temperature_c": 7, "sunny": True}}
    asked = [b for b in upstream(runs, server) if "response_format" in b]
    assert len(asked) == 1
    schema = asked[0]["response_format"]["json_schema"]["schema"]
    assert set(schema["properties"]) == {"city", "temperature_c", "sunny"}


@pytest.mark.parametrize("server", SERVERS)
def test_tool_calling_loop(runs: Any, server: str) -> None:
    got = scenario(runs, server, "tool_loop")
    first, second = got["rounds"]
    assert first["finish_reason"] == "tool_calls"
    assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in first["tool_calls"]] == [
        (TOOL_CALL_ID, "get_weather", {"city": "Paris"})]
    assert got["final"] == "tool said: sunny and 21 C in Paris"
    assert second["tool_calls"] == []
    # what the provider saw: the tool offered, then the call and its result sent back in the history
    with_tools = [b for b in upstream(runs, server) if b.get("tools")]
    assert len(with_tools) == 2
    assert with_tools[0]["tools"][0]["function"]["name"] == "get_weather"
    history = with_tools[1]["messages"]
    assert history[-2]["tool_calls"][0]["id"] == TOOL_CALL_ID
    assert history[-1] == {"role": "tool", "content": "sunny and 21 C in Paris", "tool_call_id": TOOL_CALL_ID}
