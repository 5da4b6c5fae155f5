"""GenAI metrics by model: the request and response model as labels, with bounded cardinality.

A real sidecar in front of the OpenAI fake, scraped over HTTP and parsed with prometheus_client's
parser.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.conftest import Running, StartSidecar
from tests.fakes.openai import OpenAIFake
from tests.manifests import component_yaml

from parley_sidecar import metrics

CONVERSE = "/v1.0-alpha2/conversation/llm/converse"


def ask(text: str, **metadata: str) -> dict[str, object]:
    return {"inputs": [{"messages": [{"ofUser": {"content": [{"text": text}]}}]}], "metadata": metadata}


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    server = await OpenAIFake().start()
    yield server
    await server.close()


@pytest.fixture
async def running(start_sidecar: StartSidecar, fake: OpenAIFake) -> Running:
    return await start_sidecar({"llm.yaml": component_yaml("llm", "conversation.openai", {
        "key": "sk-test", "endpoint": f"{fake.url}/v1", "model": "gpt-test", "maxRetries": "0",
        "circuitBreakerFailures": "0"})})


async def series(running: Running, sample: str) -> dict[tuple[str, str, str], float]:
    """``sample`` by (request model, response model, token type or error type)."""
    async with running.session.get(running.metrics + "/") as resp:
        text = await resp.text()
    found: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample:
                kind = s.labels.get("gen_ai_token_type", s.labels.get("error_type", ""))
                found[s.labels["gen_ai_request_model"], s.labels["gen_ai_response_model"], kind] = s.value
    return found


async def test_tokens_and_duration_carry_the_request_and_the_response_model(running: Running) -> None:
    for _ in range(2):
        status, _ = await running.post(CONVERSE, ask("hi"))
        assert status == 200
    tokens = await series(running, "gen_ai_client_token_usage_sum")
    # the OpenAI component names, as daprd does, the model it called: its ``model`` metadata here
    assert tokens == {("gpt-test", "gpt-test", "input"): 20.0, ("gpt-test", "gpt-test", "output"): 10.0}
    durations = await series(running, "gen_ai_client_operation_duration_seconds_count")
    assert durations == {("gpt-test", "gpt-test", ""): 2.0}


async def test_a_model_a_client_names_is_other_until_the_component_has_answered_as_it(running: Running,
                                                                                     fake: OpenAIFake) -> None:
    await running.post(CONVERSE, ask("hi", model="gpt-test-mini"))
    await running.post(CONVERSE, ask("hi", model="gpt-test-mini"))
    assert fake.last.body["model"] == "gpt-test-mini"
    durations = await series(running, "gen_ai_client_operation_duration_seconds_count")
    assert durations == {
        ("other", "gpt-test-mini", ""): 1.0,  # asked for before the component had answered as it
        ("gpt-test-mini", "gpt-test-mini", ""): 1.0,
    }


async def test_models_past_the_limit_are_other(running: Running) -> None:
    limit = metrics.ModelLabels().limit  # per component; its configured model is the first
    await running.post(CONVERSE, ask("hi"))
    for n in range(limit + 2):
        status, _ = await running.post(CONVERSE, ask("hi", model=f"client-choice-{n}"))
        assert status == 200
    durations = await series(running, "gen_ai_client_operation_duration_seconds_count")
    responded = {response for _, response, _ in durations}
    assert responded == {"gpt-test", "other"} | {f"client-choice-{n}" for n in range(limit - 1)}
    assert {request for request, _, _ in durations} == {"gpt-test", "other"}
    assert durations["other", "other", ""] == 3.0


async def test_a_failed_call_has_its_request_model_and_no_response_model(running: Running,
                                                                         fake: OpenAIFake) -> None:
    fake.fail(500, "upstream broke")
    status, _ = await running.post(CONVERSE, ask("hi"))
    assert status == 500
    durations = await series(running, "gen_ai_client_operation_duration_seconds_count")
    assert durations == {("gpt-test", "", "ProviderError"): 1.0}


async def test_streams_are_labelled_by_the_model_the_chunks_name(running: Running) -> None:
    async with running.session.post(running.http + "/v1/chat/completions", json={
            "model": "llm", "stream": True, "messages": [{"role": "user", "content": "one two three"}]}) as resp:
        assert resp.status == 200
        await resp.read()
    first = await series(running, "gen_ai_server_time_to_first_token_seconds_count")
    assert first == {("gpt-test", "gpt-test", ""): 1.0}
    per_token = await series(running, "gen_ai_server_time_per_output_token_seconds_count")
    assert per_token == {("gpt-test", "gpt-test", ""): 1.0}

