"""Fuzz ``POST /v1/chat/completions`` with bodies of OpenAI's shape and wrong types everywhere:
every answer is 200 (a completion or an event stream) or an OpenAI-shaped 4xx that names a field,
never a 5xx or a trace (echo cannot fail), and the sidecar keeps answering."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parley_sidecar.runtime import Sidecar
from parley_sidecar.settings import Ports, SidecarSettings
from tests.fuzz import strategies as fs
from tests.fuzz.conftest import Host, HttpClient
from tests.manifests import component_yaml

WRONG = st.one_of(fs.SCALARS, fs.json_values(6))
TEXT = fs.HOSTILE_TEXT


def sometimes_wrong(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, strategy, strategy, WRONG)


PART = sometimes_wrong(st.fixed_dictionaries({"type": sometimes_wrong(st.sampled_from(["text", "refusal", "image_url"])),
                                              "text": sometimes_wrong(TEXT)}))
CONTENT = sometimes_wrong(st.one_of(TEXT, st.lists(PART, max_size=3), st.none()))
CALL = sometimes_wrong(st.fixed_dictionaries({
    "id": sometimes_wrong(st.sampled_from(["c1", "c2"])), "type": sometimes_wrong(st.just("function")),
    "function": sometimes_wrong(st.fixed_dictionaries({"name": sometimes_wrong(TEXT),
                                                       "arguments": sometimes_wrong(TEXT)}))}))
MESSAGE = sometimes_wrong(st.fixed_dictionaries(
    {"role": sometimes_wrong(st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"]))},
    optional={"content": CONTENT, "name": sometimes_wrong(TEXT), "tool_calls": sometimes_wrong(st.lists(CALL, max_size=2)),
              "tool_call_id": sometimes_wrong(st.sampled_from(["c1", "c2"]))}))
TOOL = sometimes_wrong(st.fixed_dictionaries({
    "type": sometimes_wrong(st.just("function")),
    "function": sometimes_wrong(st.fixed_dictionaries({"name": sometimes_wrong(TEXT)}, optional={
        "description": sometimes_wrong(TEXT),
        "parameters": sometimes_wrong(st.fixed_dictionaries({"type": st.just("object")}, optional={
            "properties": sometimes_wrong(st.dictionaries(TEXT, st.just({"type": "string"}), max_size=2))}))}))}))
BODY = st.fixed_dictionaries(
    {"model": sometimes_wrong(st.sampled_from(["echo", "echo/m", "nope", "", "/x"])),
     "messages": sometimes_wrong(st.lists(MESSAGE, max_size=4))},
    optional={
        "stream": sometimes_wrong(st.booleans()),
        "stream_options": sometimes_wrong(st.fixed_dictionaries({"include_usage": sometimes_wrong(st.booleans())})),
        "tools": sometimes_wrong(st.lists(TOOL, max_size=2)),
        "tool_choice": sometimes_wrong(st.one_of(st.sampled_from(["auto", "none", "required"]), st.fixed_dictionaries(
            {"type": st.just("function"), "function": st.fixed_dictionaries({"name": TEXT})}))),
        "response_format": sometimes_wrong(st.one_of(
            st.fixed_dictionaries({"type": st.sampled_from(["text", "json_object"])}),
            st.fixed_dictionaries({"type": st.just("json_schema"), "json_schema": sometimes_wrong(st.fixed_dictionaries(
                {"name": sometimes_wrong(TEXT)}, optional={"schema": WRONG, "strict": WRONG}))}))),
        "temperature": sometimes_wrong(st.floats(0, 2)), "top_p": sometimes_wrong(st.floats(0, 1)),
        "max_tokens": sometimes_wrong(st.integers(1, 10)), "max_completion_tokens": sometimes_wrong(st.integers(1, 10)),
        "stop": sometimes_wrong(st.one_of(TEXT, st.lists(TEXT, max_size=5))), "seed": sometimes_wrong(st.integers()),
        "user": sometimes_wrong(TEXT), "n": sometimes_wrong(st.integers(0, 3)), "x-unknown": WRONG,
    })


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpClient]:
    resources: Path = tmp_path_factory.mktemp("openai-fuzz")
    (resources / "echo.yaml").write_text(component_yaml("echo"))
    sidecar = Sidecar(SidecarSettings(app_id="openai-fuzz", resources_paths=[resources],
                                      ports=Ports(http=0, grpc=0, metrics=0, public=0), listen_addresses=["127.0.0.1"],
                                      public_listen_address="127.0.0.1", metrics_listen_address="127.0.0.1"))
    host = Host("openai-fuzz")
    host.run(sidecar.start())
    made = HttpClient("127.0.0.1", int(sidecar.bound["http"]))
    try:
        yield made
    finally:
        made.close()
        host.run(sidecar.stop())
        host.close()


@settings(max_examples=300, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(body=BODY, ascii_only=st.booleans())
def test_any_body_gets_an_answer_or_an_openai_error(client: HttpClient, body: dict[str, Any], ascii_only: bool) -> None:
    raw = fs.encode(body, ascii_only)
    status, ctype, answer = client.request("POST", "/v1/chat/completions", raw, {"Content-Type": "application/json"})
    why = f"\n  body: {raw[:800]!r}\n  answer: {status} {ctype} {answer[:800]!r}"
    if status == 200:
        if ctype == "text/event-stream":
            assert answer.endswith(b"data: [DONE]\n\n"), "a stream that did not end" + why
        else:
            assert json.loads(answer)["object"] == "chat.completion", why
        return
    assert status in (400, 404), "not a 200 and not a client error" + why
    error = json.loads(answer)["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"], why
    assert "Traceback" not in error["message"], why
    assert error["param"] is not None or error["code"] == "invalid_type", "an error that names no field" + why


VALID_BODY = st.fixed_dictionaries(
    {"model": st.just("echo"), "messages": st.lists(st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "developer", "user"]),
         "content": st.one_of(TEXT, st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": TEXT}),
                                             min_size=1, max_size=2))}), min_size=1, max_size=3)},
    optional={"stream": st.booleans(), "user": TEXT, "stop": TEXT,
              "tools": st.lists(st.fixed_dictionaries({"type": st.just("function"), "function": st.fixed_dictionaries(
                  {"name": TEXT.filter(bool), "parameters": st.just({"type": "object", "properties": {"q": {}}})})}),
                  max_size=2)})


@settings(max_examples=150, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(body=VALID_BODY, ascii_only=st.booleans())
def test_any_text_in_a_valid_body_comes_back(client: HttpClient, body: dict[str, Any], ascii_only: bool) -> None:
    """Hostile text (lone surrogates, NUL, bidi marks) in a valid request: a 200 whose JSON parses."""
    raw = fs.encode(body, ascii_only)
    status, ctype, answer = client.request("POST", "/v1/chat/completions", raw, {"Content-Type": "application/json"})
    why = f"\n  body: {raw[:800]!r}\n  answer: {status} {ctype} {answer[:800]!r}"
    assert status == 200, why
    if ctype == "text/event-stream":
        events = [e.removeprefix(b"data: ") for e in answer.split(b"\n\n") if e]
        assert events[-1] == b"[DONE]", why
        assert all(json.loads(e)["object"] == "chat.completion.chunk" for e in events[:-1]), why
    else:
        assert json.loads(answer)["object"] == "chat.completion", why
