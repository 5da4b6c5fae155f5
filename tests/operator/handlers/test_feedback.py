"""What users see in ``kubectl describe`` and on :9090, and what the operator never writes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp

if TYPE_CHECKING:
    from conftest import Cluster, StartOperator, StartSidecar


async def test_valid_component_is_accepted(cluster: Cluster, start_operator: StartOperator) -> None:
    await start_operator()
    await cluster.put_component("shop", "llm", metadata={"responseCacheTTL": "5m"})
    event = await cluster.event("shop", "Accepted", about="llm")
    assert (event["type"], event["message"]) == ("Normal", "valid conversation.echo component")
    assert event["involvedObject"]["apiVersion"] == "dapr.io/v1alpha1"
    assert event["source"]["component"] == "parley-operator"


async def test_invalid_component_gets_a_warning_and_is_withheld(
    cluster: Cluster, start_operator: StartOperator, start_sidecar: StartSidecar
) -> None:
    pod = await cluster.add_pod("shop", "web-1", "web")
    op = await start_operator()
    sidecar = await start_sidecar(op, pod)
    await cluster.put_component("shop", "llm", metadata={"responseCacheTTL": "5m"})
    await sidecar.wait_names({"llm"})
    # Applied while the webhook was not there to stop it:
    await cluster.put_component("shop", "llm", metadata={"responseCacheTTL": "five minutes"})
    event = await cluster.event("shop", "Invalid", about="llm")
    assert event["type"] == "Warning"
    assert "spec.metadata[0].value: field 'responseCacheTTL'" in event["message"]
    await sidecar.wait_for(lambda: op.metric("parley_operator_deliveries_total", kind="withheld") == 1)
    assert sidecar.metadata("llm") == {"responseCacheTTL": "5m"}  # the last good version keeps serving
    await cluster.put_component("shop", "broken", type="conversation.nope")
    await cluster.event("shop", "Invalid", about="broken")
    assert sidecar.names() == {"llm"}


async def test_pod_that_missed_injection_gets_a_warning(cluster: Cluster, start_operator: StartOperator) -> None:
    await cluster.add_pod("shop", "early-1", "early", injected=False)  # created before the webhook existed
    await cluster.add_pod("shop", "fine-1", "fine")
    op = await start_operator()
    event = await cluster.event("shop", "SidecarNotInjected", about="early-1")
    assert event["type"] == "Warning" and event["involvedObject"]["kind"] == "Pod"
    assert "kubectl rollout restart" in event["message"]
    assert [e["involvedObject"]["name"] for e in cluster.events("shop", "SidecarNotInjected")] == ["early-1"]
    assert op.metric("dapr_injector_sidecar_injection_failed_total", app_id="early", reason="missed") == 1


async def test_nothing_is_written_to_watched_objects(
    cluster: Cluster, start_operator: StartOperator, start_sidecar: StartSidecar
) -> None:
    pod = await cluster.add_pod("shop", "web-1", "web")
    await cluster.add_pod("shop", "early-1", "early", injected=False)
    await cluster.put_component("shop", "llm")
    op = await start_operator()
    await (await start_sidecar(op, pod)).wait_names({"llm"})
    await cluster.put_component("shop", "llm", metadata={"memory": "true"})
    await cluster.delete_component("shop", "llm")
    await cluster.event("shop", "Accepted", about="llm")
    await op.stop()
    by_operator = [r for r in cluster.api if not r.headers.get("User-Agent", "").startswith("kmock")]
    writes = {f"{r.method} {r.url.path}" for r in by_operator if r.method != "GET"}
    assert writes, "the operator wrote nothing at all?"
    assert not [w for w in writes if "/components" in w or "/pods" in w], writes  # no finalizers, no annotations


async def test_metrics_are_served_on_their_port(cluster: Cluster, start_operator: StartOperator,
                                                start_sidecar: StartSidecar) -> None:
    pod = await cluster.add_pod("shop", "web-1", "web")
    op = await start_operator()
    await start_sidecar(op, pod)
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{op.op.metrics_port}/") as resp:
        text = await resp.text()
    for name in ("parley_operator_connected_sidecars 1.0", "parley_operator_deliveries_total{kind=\"snapshot\"} 1.0",
                 "dapr_injector_sidecar_injection_requests_total", "parley_operator_webhook_duration_seconds",
                 "parley_operator_errors_total"):
        assert name in text
