"""Only a sidecar pod's own projected token opens the stream; anything else gets an error and nothing more."""

from __future__ import annotations

import asyncio
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


async def first_line(op: RunningOperator, token: str) -> tuple[int, bytes]:
    """Open the stream, read its status and first line (the snapshot, when it opens), hang up."""
    context = ssl.create_default_context(cadata=op.ca_pem)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session, session.get(
        f"https://{op.stream_address}/v1/stream", headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, await resp.content.readline()


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
    with pytest.raises(AssertionError):  # "has no components" is never mistaken for "got an empty snapshot"
        await sidecar.wait_names(set(), timeout=0.2)
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


async def test_a_sidecar_that_reconnects_costs_the_api_server_one_token_review(
    cluster: Cluster, shop: tuple[RunningOperator, Any]
) -> None:
    op, pod = shop
    token = cluster.tokens.issue(pod)
    for _ in range(10):
        status, line = await first_line(op, token)
        assert status == 200 and line.startswith(b'{"type":"snapshot"')
    assert cluster.tokens.reviews == 1  # was 10: one per connection
    assert op.metric("parley_operator_token_reviews_total") == 1


async def test_a_remembered_token_of_a_deleted_pod_is_still_refused(
    cluster: Cluster, shop: tuple[RunningOperator, Any]
) -> None:
    op, pod = shop
    token = cluster.tokens.issue(pod)
    assert (await first_line(op, token))[0] == 200
    await cluster.delete_pod(pod)
    status = 200
    async with asyncio.timeout(10):
        while status == 200:  # until the operator has seen the deletion
            status, _ = await first_line(op, token)
    assert status == 403 and cluster.tokens.reviews == 1


async def test_a_token_past_its_expiry_is_never_taken_from_memory(
    cluster: Cluster, shop: tuple[RunningOperator, Any]
) -> None:
    op, pod = shop
    token = cluster.tokens.issue(pod, lifetime=-1)  # its exp has passed (this fake API server accepts it)
    for _ in range(3):
        assert (await first_line(op, token))[0] == 200
    assert cluster.tokens.reviews == 3


async def test_a_flood_of_forged_tokens_puts_a_bounded_load_on_the_api_server(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    op = await start_operator(stream__token_reviews=2, stream__token_review_queue=3)
    cluster.tokens.gate.clear()  # the API server is slow: every review waits
    flood = [asyncio.create_task(first_line(op, f"eyJhbGciOiJSUzI1NiJ9.forged-{i}.signature")) for i in range(8)]
    async with asyncio.timeout(10):
        await cluster.tokens.wait_in_flight(2)
        finished: set[asyncio.Task[tuple[int, bytes]]] = set()
        while len(finished) < 3:
            done, _ = await asyncio.wait(set(flood) - finished, return_when=asyncio.FIRST_COMPLETED)
            finished |= done
    assert [t.result()[0] for t in finished] == [429, 429, 429]
    assert cluster.tokens.in_flight == 2  # the other three wait inside the operator, not at the API server
    cluster.tokens.gate.set()
    statuses = sorted(status for status, _ in await asyncio.gather(*flood))
    assert statuses == [401] * 5 + [429] * 3
    assert cluster.tokens.reviews == 5 and cluster.tokens.most_at_once == 2  # was 8 and 8
    assert op.metric("parley_operator_errors_total", kind="throttled") == 3
