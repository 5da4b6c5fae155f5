"""Only a sidecar pod's own projected token opens the stream; anything else gets an error and nothing more."""

from __future__ import annotations

import dataclasses
import ssl
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

if TYPE_CHECKING:
    from conftest import Cluster, RunningOperator, StartOperator, StartSidecar


async def get_stream(op: RunningOperator, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    context = ssl.create_default_context(cadata=op.ca_pem)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session, session.get(
        f"https://{op.stream_address}/v1/stream", headers=headers) as resp:
        return resp.status, dict(resp.headers), await resp.read()


@pytest.fixture
async def shop(cluster: Cluster, start_operator: StartOperator) -> tuple[RunningOperator, Any]:
    await cluster.put_secret("shop", "openai", {"api-key": "sk-secret"})
    await cluster.put_component("shop", "llm", metadata=[{"name": "key", "secretKeyRef": {"name": "openai",
                                                                                           "key": "api-key"}}])
    pod = await cluster.add_pod("shop", "web-1", "web")
    return await start_operator(), pod


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer "}, {"Authorization": "Basic dXNlcjpwYXNz"},
                                     {"Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.forged.signature"}],
                         ids=["no-header", "empty-bearer", "basic-auth", "forged"])
async def test_missing_or_forged_token_gets_401_and_nothing(
    shop: tuple[RunningOperator, Any], headers: dict[str, str]
) -> None:
    op, _ = shop
    status, response_headers, body = await get_stream(op, headers)
    assert status == 401
    assert response_headers["WWW-Authenticate"] == "Bearer"
    assert body.startswith(b'{"error": "unauthenticated') and b"llm" not in body and b"sk-" not in body
    assert op.metric("parley_operator_errors_total", kind="unauthenticated") >= 1
    assert op.metric("parley_operator_deliveries_total", kind="snapshot") == 0


async def test_token_for_another_audience_gets_401(cluster: Cluster, shop: tuple[RunningOperator, Any]) -> None:
    op, pod = shop
    token = cluster.tokens.issue(pod, audiences=("https://kubernetes.default.svc",))
    status, _, body = await get_stream(op, {"Authorization": f"Bearer {token}"})
    assert status == 401 and b"llm" not in body


async def test_pod_that_is_not_a_sidecar_gets_403(cluster: Cluster, shop: tuple[RunningOperator, Any]) -> None:
    op, _ = shop
    plain = await cluster.add_pod("shop", "job-1", "job", injected=False)
    status, _, body = await get_stream(op, {"Authorization": f"Bearer {cluster.tokens.issue(plain)}"})
    assert status == 403 and b"llm" not in body


async def test_token_of_a_pod_that_no_longer_exists_gets_403(
    cluster: Cluster, shop: tuple[RunningOperator, Any]
) -> None:
    op, pod = shop
    gone = dataclasses.replace(pod, uid="0b7c3c2e-0000-4000-8000-000000000000")  # the pod's earlier incarnation
    status, _, _ = await get_stream(op, {"Authorization": f"Bearer {cluster.tokens.issue(gone)}"})
    assert status == 403


async def test_a_sidecar_with_a_forged_token_never_loads_anything(
    shop: tuple[RunningOperator, Any], start_sidecar: StartSidecar
) -> None:
    op, pod = shop
    sidecar = await start_sidecar(op, pod, token="eyJhbGciOiJSUzI1NiJ9.forged.signature", connected=False)
    # It keeps trying (with the test's short backoff) and keeps getting nothing.
    await sidecar.wait_for(lambda: op.metric("parley_operator_errors_total", kind="unauthenticated") >= 3, 5.0)
    assert sidecar.names() == set()
    assert op.metric("parley_operator_connected_sidecars") == 0


async def test_the_real_token_gets_the_stream(shop: tuple[RunningOperator, Any], start_sidecar: StartSidecar) -> None:
    op, pod = shop
    sidecar = await start_sidecar(op, pod)
    await sidecar.wait_names({"llm"})
    assert sidecar.metadata("llm") == {"key": "sk-secret"}


async def test_stream_is_tls_only_with_the_operators_ca(shop: tuple[RunningOperator, Any]) -> None:
    op, _ = shop
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        async with aiohttp.ClientSession() as session:
            await session.get(f"https://{op.stream_address}/v1/stream")  # system CAs do not trust it
