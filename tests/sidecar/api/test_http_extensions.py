"""The seed's forms beyond daprd: plain-string alpha1 inputs and per-request metadata overrides."""

from __future__ import annotations

from tests.conftest import Running

A1 = "/v1.0-alpha1/conversation/echo/converse"


async def test_alpha1_inputs_as_plain_strings(sidecar: Running) -> None:
    status, body = await sidecar.post(A1, {"inputs": ["what is Dapr", "Why use Dapr"]})
    assert (status, body) == (200, {"outputs": [{"result": "what is Dapr\nWhy use Dapr"}]})


async def test_query_metadata_is_accepted(sidecar: Running) -> None:
    path = A1 + "?metadata.key=key1&metadata.model=claude-3-5-sonnet-20240620&metadata.cacheTTL=10m"
    status, body = await sidecar.post(path, {"inputs": ["hello"]})
    assert (status, body) == (200, {"outputs": [{"result": "hello"}]})


async def test_query_metadata_is_validated(sidecar: Running) -> None:
    status, body = await sidecar.post(A1 + "?metadata.cacheTTL=never", {"inputs": ["hello"]})
    assert status == 400
    assert body["errorCode"] == "ERR_CONVERSATION_INVALID_PARMS"
    assert "cacheTTL" in body["message"]
