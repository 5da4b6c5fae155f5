"""Provider components inside a real sidecar: a Component file pointing at a fake, a client on the
daprd API, and what the client reads back (answers, and provider errors as ERR_CONVERSATION_INVOKE)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import StartSidecar, component_yaml
from tests.fakes import OpenAIFake

KEY = "sk-through-the-sidecar-123"
A2 = "/v1.0-alpha2/conversation/llm/converse"


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    server = await OpenAIFake(expected_key=KEY).start()
    yield server
    await server.close()


def body(text: str) -> dict[str, object]:
    return {"inputs": [{"messages": [{"ofUser": {"content": [{"text": text}]}}]}], "temperature": 0.2}


async def test_answer_and_provider_errors(start_sidecar: StartSidecar, fake: OpenAIFake,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_MODEL", raising=False)
    running = await start_sidecar({"llm.yaml": component_yaml("llm", "conversation.openai", {
        "key": KEY, "model": "gpt-4o-mini", "endpoint": f"{fake.url}/v1", "retryBackoff": "1ms", "maxRetries": "1"})})
    status, answer = await running.post(A2, body("Hello"))
    assert status == 200
    assert answer == {"outputs": [{
        "choices": [{"finishReason": "stop", "message": {"content": "echo: Hello"}}],
        "model": "gpt-4o-mini",
        "usage": {"completionTokens": "5", "promptTokens": "10", "totalTokens": "15"},
    }]}
    assert fake.last.body == {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}],
                              "temperature": 0.2}

    fake.fail(429, "Rate limit reached", retry_after="0", times=2)
    status, answer = await running.post(A2, body("Hello again"))
    assert status == 500
    assert answer == {"errorCode": "ERR_CONVERSATION_INVOKE", "message": (
        "failed conversing with component llm: openai-compatible server returned 429 Too Many Requests: "
        "Rate limit reached")}

    status, answer = await running.post(A2, {**body("Hi"), "metadata": {"key": "sk-wrong-key-000"}})
    assert status == 500
    assert answer == {"errorCode": "ERR_CONVERSATION_INVOKE",
                      "message": "failed conversing with component llm: the provider rejected the API key (401)"}


async def test_a_broken_component_does_not_stop_the_others(start_sidecar: StartSidecar, fake: OpenAIFake) -> None:
    running = await start_sidecar({
        "ok.yaml": component_yaml("llm", "conversation.openai", {"key": KEY, "endpoint": f"{fake.url}/v1"}),
        "bad.yaml": component_yaml("azure", "conversation.openai", {"key": KEY, "apiType": "azure"}),
    })
    status, _ = await running.post(A2, body("Hello"))
    assert status == 200
    status, answer = await running.post("/v1.0-alpha2/conversation/azure/converse", body("Hello"))
    assert (status, answer["errorCode"]) == (400, "ERR_CONVERSATION_NOT_FOUND")
    assert running.sidecar.store.errors["azure"].endswith(
        "metadata field 'endpoint': is required when apiType is azure")
