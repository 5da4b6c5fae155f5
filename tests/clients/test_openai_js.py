"""The openai npm package (7.55.0) against a parley process: openai_js/openai_js.mjs is the app.

With ``echo``: create, a stream with usage, tools, the model list, OpenAI-shaped errors raised as
the SDK's own error classes. With ``llm`` (``conversation.openai`` on the OpenAI fake): a streamed
answer, the SDK's stream helper assembling streamed tool-call fragments, and a stream the app
abandons after one chunk, which must close the upstream's stream.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.clients.conftest import HERE, INSTALL_HINT, OPENAI_TOKEN, PROVIDER_TYPES, OpenAISidecar, clients_dir, run_app
from tests.fakes.server import Reply

VERSION = "7.55.0"


def modules() -> tuple[Path | None, str]:
    home = clients_dir() / f"openai-js-{VERSION}"
    if shutil.which("node") is None:
        return None, "node is not on PATH (the openai npm package tests need Node.js)"
    package = home / "node_modules" / "openai" / "package.json"
    if not (home / ".installed").is_file() or not package.is_file():
        return None, f"openai (npm) {VERSION} is not installed ({home} is missing): {INSTALL_HINT}"
    if json.loads(package.read_text()).get("version") != VERSION:
        return None, f"{package} is not version {VERSION}: {INSTALL_HINT}"
    return home, ""


MODULES, MISSING = modules()
pytestmark = pytest.mark.skipif(MODULES is None, reason=MISSING)

SCENARIOS = ("create", "stream", "tools", "models", "unknown", "badN", "badKey",
             "streamHelper", "llmStream", "abandon")


@pytest.fixture(scope="module")
def run(openai_sidecar: OpenAISidecar) -> dict[str, Any]:
    """The app run once; the fake's answers for the ``llm`` scenarios queued in their order."""
    assert MODULES is not None
    fake = openai_sidecar.fake.fake
    fake.clear()
    fake.stream(Reply(text=None, tool_calls=(("call_js", "get_weather", {"city": "Oslo, Norway"}),),
                      finish="tool_calls"))
    fake.stream(Reply(text="alpha beta gamma delta"))
    fake.stream(Reply(text="one two three four five six"), stall_after=2)
    before = fake.closed_by_client
    result = run_app(["node", str(HERE / "openai_js" / "openai_js.mjs"), *SCENARIOS], openai_sidecar.server,
                     env={"PARLEY_JS_MODULES": str(MODULES), "OPENAI_API_KEY": OPENAI_TOKEN,
                          "OPENAI_BASE_URL": openai_sidecar.base_url})
    deadline = time.monotonic() + 10  # a bound on another process, not a timing assertion
    while fake.closed_by_client == before and time.monotonic() < deadline:
        time.sleep(0.02)
    result["upstream_closed"] = fake.closed_by_client - before
    fake.clear()
    return result


def ok(run: dict[str, Any], name: str) -> Any:
    got = run[name]
    assert got["ok"], f"openai (npm), {name}: {got['error']}"
    return got["result"]


def failed(run: dict[str, Any], name: str) -> Any:
    got = run[name]
    assert not got["ok"], f"openai (npm), {name}: expected an error, got {got['result']}"
    return got["error"]


def test_create(run: dict[str, Any]) -> None:
    got = ok(run, "create")
    assert got["content"] == "hello from node" and got["finish"] == "stop"
    assert got["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}


def test_stream_with_usage(run: dict[str, Any]) -> None:
    got = ok(run, "stream")
    assert got["pieces"] == ["hello ", "from ", "node"]
    assert got["usage"]["total_tokens"] == 6


def test_tools(run: dict[str, Any]) -> None:
    got = ok(run, "tools")
    assert got["finish"] == "tool_calls"
    assert [c["function"]["name"] for c in got["calls"]] == ["get_weather"]


def test_models(run: dict[str, Any]) -> None:
    assert ok(run, "models") == {"ids": sorted(["echo", "llm", *(f"p-{p.name}" for p in PROVIDER_TYPES)])}


def test_errors_are_the_sdks_error_classes(run: dict[str, Any]) -> None:
    assert failed(run, "unknown")["name"] == "NotFoundError"
    assert failed(run, "unknown")["code"] == "model_not_found"
    bad_n = failed(run, "badN")
    assert (bad_n["name"], bad_n["status"], bad_n["param"]) == ("BadRequestError", 400, "n")
    bad_key = failed(run, "badKey")
    assert (bad_key["name"], bad_key["code"]) == ("AuthenticationError", "invalid_api_key")


def test_llm_stream(run: dict[str, Any]) -> None:
    got = ok(run, "llmStream")
    assert "".join(got["pieces"]) == "alpha beta gamma delta" and len(got["pieces"]) > 1


def test_stream_helper_assembles_streamed_tool_calls(run: dict[str, Any]) -> None:
    got = ok(run, "streamHelper")
    [call] = got["calls"]
    assert (call["id"], call["function"]["name"], json.loads(call["function"]["arguments"])) == (
        "call_js", "get_weather", {"city": "Oslo, Norway"})
    assert got["fragments"] > 1


def test_abandoned_stream_closes_the_upstream(run: dict[str, Any]) -> None:
    assert ok(run, "abandon")["first"]["role"] == "assistant"
    assert run["upstream_closed"] == 1
