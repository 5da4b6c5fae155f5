"""secretKeyRef values come from the pod's own namespace; a missing Secret withholds only its Component."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import Cluster, StartOperator, StartSidecar


def key_from(secret: str, key: str = "api-key") -> list[dict[str, Any]]:
    return [{"name": "key", "secretKeyRef": {"name": secret, "key": key}}, {"name": "model", "value": "m1"}]


async def test_secret_values_are_resolved_for_the_sidecar(
    cluster: Cluster, start_operator: StartOperator, start_sidecar: StartSidecar, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await cluster.put_secret("shop", "openai", {"api-key": "sk-shop-1"})
    await cluster.put_component("shop", "llm", metadata=key_from("openai"))
    pod = await cluster.add_pod("shop", "web-1", "web")
    op = await start_operator()
    sidecar = await start_sidecar(op, pod)
    await sidecar.wait_names({"llm"})
    assert sidecar.metadata("llm") == {"key": "sk-shop-1", "model": "m1"}
    # Never in a log line, an Event or a metric.
    assert "sk-shop-1" not in caplog.text
    assert all("sk-shop-1" not in str(e) for e in cluster.events("shop"))
    metrics = (await (await cluster.api.get(f"http://127.0.0.1:{op.op.metrics_port}/metrics")).text())
    assert "parley_operator_connected_sidecars 1.0" in metrics and "sk-shop-1" not in metrics


async def test_missing_secret_withholds_only_that_component_and_says_why(
    cluster: Cluster, start_operator: StartOperator, start_sidecar: StartSidecar
) -> None:
    await cluster.put_component("shop", "llm", metadata=key_from("openai"))
    await cluster.put_component("shop", "echo")
    pod = await cluster.add_pod("shop", "web-1", "web")
    op = await start_operator(stream__resync=0.3)
    sidecar = await start_sidecar(op, pod)
    await sidecar.wait_names({"echo"})
    event = await cluster.event("shop", "Withheld", about="llm")
    assert event["type"] == "Warning"
    assert event["message"] == "not delivered to sidecars: Secret 'openai' not found in namespace 'shop'"

    # Secrets are not watched: the next resync finds it.
    await cluster.put_secret("shop", "openai", {"api-key": "sk-late"})
    await sidecar.wait_names({"echo", "llm"})
    assert sidecar.metadata("llm")["key"] == "sk-late"


async def test_missing_key_is_named(cluster: Cluster, start_operator: StartOperator,
                                    start_sidecar: StartSidecar) -> None:
    await cluster.put_secret("shop", "openai", {"other": "x"})
    await cluster.put_component("shop", "llm", metadata=key_from("openai"))
    pod = await cluster.add_pod("shop", "web-1", "web")
    op = await start_operator()
    await start_sidecar(op, pod)
    event = await cluster.event("shop", "Withheld", about="llm")
    assert event["message"].endswith("Secret 'openai' has no key 'api-key'")


async def test_rotated_secret_reaches_the_sidecar_at_the_next_resync(
    cluster: Cluster, start_operator: StartOperator, start_sidecar: StartSidecar
) -> None:
    await cluster.put_secret("shop", "openai", {"api-key": "sk-old"})
    await cluster.put_component("shop", "llm", metadata=key_from("openai"))
    pod = await cluster.add_pod("shop", "web-1", "web")
    op = await start_operator(stream__resync=0.3)
    sidecar = await start_sidecar(op, pod)
    await sidecar.wait_names({"llm"})
    await cluster.put_secret("shop", "openai", {"api-key": "sk-new"})
    await sidecar.wait_for(lambda: sidecar.metadata("llm")["key"] == "sk-new")


async def test_deleted_secret_keeps_the_last_good_version_serving(
    cluster: Cluster, start_operator: StartOperator, start_sidecar: StartSidecar
) -> None:
    await cluster.put_secret("shop", "openai", {"api-key": "sk-good"})
    await cluster.put_component("shop", "llm", metadata=key_from("openai"))
    pod = await cluster.add_pod("shop", "web-1", "web")
    op = await start_operator(stream__resync=0.3)
    sidecar = await start_sidecar(op, pod)
    await sidecar.wait_names({"llm"})
    await cluster.delete_secret("shop", "openai")
    await cluster.event("shop", "Withheld", about="llm")
    assert sidecar.names() == {"llm"} and sidecar.metadata("llm")["key"] == "sk-good"
    # Still withheld on a reconnect: the snapshot's "withheld" list keeps it too.
    late = await start_sidecar(op, await cluster.add_pod("shop", "web-2", "web"))
    await late.wait_names(set())
    assert sidecar.names() == {"llm"}
    # Deleting the Component itself removes it: one delete per connected sidecar.
    await cluster.delete_component("shop", "llm")
    await sidecar.wait_names(set())
    assert op.metric("parley_operator_deliveries_total", kind="delete") == 2


async def test_a_namespace_never_sees_another_namespaces_components_or_secrets(
    cluster: Cluster, start_operator: StartOperator, start_sidecar: StartSidecar
) -> None:
    for ns in ("team-a", "team-b"):
        await cluster.put_secret(ns, "openai", {"api-key": f"sk-{ns}"})
        await cluster.put_component(ns, "llm", metadata=key_from("openai"))
    await cluster.put_component("team-b", "b-only")
    a_pod = await cluster.add_pod("team-a", "web-1", "web")
    b_pod = await cluster.add_pod("team-b", "web-1", "web")
    op = await start_operator()
    a, b = await start_sidecar(op, a_pod), await start_sidecar(op, b_pod)
    await a.wait_names({"llm"})
    await b.wait_names({"llm", "b-only"})
    assert a.metadata("llm")["key"] == "sk-team-a" and b.metadata("llm")["key"] == "sk-team-b"
    await cluster.put_component("team-b", "b-two")
    await cluster.put_secret("team-b", "openai", {"api-key": "sk-team-b-2"})
    await cluster.put_component("team-b", "llm", metadata=[*key_from("openai"), {"name": "memory", "value": "true"}])
    await b.wait_names({"llm", "b-only", "b-two"})
    await b.wait_for(lambda: b.metadata("llm")["key"] == "sk-team-b-2")
    assert a.names() == {"llm"} and a.metadata("llm") == {"key": "sk-team-a", "model": "m1"}
    for entry in a.store.entries():
        assert entry.spec.namespace == "team-a"
