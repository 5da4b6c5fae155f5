"""alpha2 ``metadata`` goes upstream as the provider's ``metadata`` (as daprd sends it), but never a
credential: a client that puts its key in the request metadata must not see it land in the
provider's request body (and so in the provider's logs and dashboards)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import StartSidecar, component_yaml
from tests.fakes import OpenAIFake

KEY = "sk-component-key-0123456789"
# (``key`` itself is the Dapr docs' per-request key override: it authenticates, never travels as metadata)
CREDENTIALS = {
    "api_key": "sk-in-metadata-2", "apiKey": "sk-in-metadata-3",
    "x-api-key": "sk-in-metadata-4", "access_token": "tok-5", "secretKey": "sec-6", "password": "pw-7",
    "Authorization": "Bearer sk-in-metadata-8",
}
KEPT = {"user": "user-42", "max_tokens_hint": "100", "session": "s-1", "tokenizer": "cl100k"}


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    started = await OpenAIFake(KEY).start()
    yield started
    await started.close()


async def test_credential_looking_metadata_never_reaches_the_provider(start_sidecar: StartSidecar,
                                                                     fake: OpenAIFake) -> None:
    running = await start_sidecar({"c.yaml": component_yaml("llm", "conversation.openai", {
        "key": KEY, "endpoint": f"{fake.url}/v1", "model": "m"})})
    status, reply = await running.post("/v1.0-alpha2/conversation/llm/converse", {
        "inputs": [{"messages": [{"ofUser": {"content": [{"text": "hi"}]}}]}],
        "metadata": {**CREDENTIALS, **KEPT},
    })
    assert status == 200, reply
    sent = fake.requests[-1]
    assert sent.body["metadata"] == KEPT
    raw = sent.raw.decode()
    for value in CREDENTIALS.values():
        assert value not in raw
    # the component's own key still authenticates the call, and only there
    assert fake.presented_key(sent) == KEY
