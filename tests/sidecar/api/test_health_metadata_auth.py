"""Health, metadata and the API token, as daprd answers them."""

from __future__ import annotations

import pytest

from tests.conftest import ECHO, StartSidecar

A1 = "/v1.0-alpha1/conversation/echo/converse"
SECRET_FILE = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: leaky
spec:
  type: conversation.echo
  version: v1
  metadata:
  - name: key
    value: sk-very-secret-value
"""


async def test_health_endpoints_answer_204_on_api_and_public_ports(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar()
    for base in (running.http, running.public):
        for path in ("/v1.0/healthz", "/v1.0/healthz/outbound"):
            async with running.session.get(base + path) as resp:
                assert resp.status == 204, (base, path)


async def test_metadata_lists_components_without_values(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar({"echo.yaml": ECHO.format(name="echo"), "leaky.yaml": SECRET_FILE})
    async with running.session.get(running.http + "/v1.0/metadata") as resp:
        assert resp.status == 200
        text = await resp.text()
        body = await resp.json()
    assert body["id"] == "test-app"
    assert body["runtimeVersion"].startswith("1.18")
    assert [(c["name"], c["type"], c["version"]) for c in body["components"]] == [
        ("echo", "conversation.echo", "v1"), ("leaky", "conversation.echo", "v1")]
    assert "sk-very-secret-value" not in text
    assert "testkey" not in text


async def test_cli_metadata_puts_are_stored(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar()
    async with running.session.put(running.http + "/v1.0/metadata/cliPID", data=b"4242") as resp:
        assert resp.status == 204
    async with running.session.get(running.public + "/v1.0/metadata") as resp:
        assert (await resp.json())["extended"]["cliPID"] == "4242"


@pytest.mark.parametrize("header", [None, "wrong-token"])
async def test_api_token_is_required_except_for_health(start_sidecar: StartSidecar, header: str | None) -> None:
    running = await start_sidecar(api_token="s3cret")
    headers = {"dapr-api-token": header} if header else {}
    status, body = await running.post(A1, {"inputs": ["x"]}, headers=headers)
    assert (status, body) == (401, "invalid api token\n")  # Go's http.Error, as daprd
    async with running.session.get(running.http + "/v1.0/metadata", headers=headers) as resp:
        assert resp.status == 401
    async with running.session.get(running.http + "/v1.0/healthz/outbound") as resp:
        assert resp.status == 204
    status, body = await running.post(A1, {"inputs": ["x"]}, headers={"dapr-api-token": "s3cret"})
    assert (status, body) == (200, {"outputs": [{"result": "x"}]})
