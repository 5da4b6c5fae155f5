"""Components created, changed and deleted reach exactly the sidecars that may see them, within 1 s."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Cluster, StartOperator, StartSidecar


async def test_created_changed_deleted_reach_the_sidecar(
    cluster: Cluster, start_operator: StartOperator, start_sidecar: StartSidecar
) -> None:
    pod = await cluster.add_pod("shop", "web-1", "web")
    op = await start_operator()
    sidecar = await start_sidecar(op, pod)
    await sidecar.wait_names(set())  # the empty snapshot is in: what follows can only arrive as upserts

    await cluster.put_component("shop", "llm", metadata={"responseCacheTTL": "5m"})
    await sidecar.wait_names({"llm"})
    await cluster.put_component("shop", "llm", metadata={"responseCacheTTL": "10m"})
    await sidecar.wait_for(lambda: sidecar.metadata("llm") == {"responseCacheTTL": "10m"})
    await cluster.delete_component("shop", "llm")
    await sidecar.wait_names(set())
    assert op.metric("parley_operator_deliveries_total", kind="upsert") == 2
    assert op.metric("parley_operator_deliveries_total", kind="delete") == 1


async def test_snapshot_on_connect_holds_what_already_exists(
    cluster: Cluster, start_operator: StartOperator, start_sidecar: StartSidecar
) -> None:
    await cluster.put_component("shop", "a")
    await cluster.put_component("shop", "b", metadata={"memory": "true"})
    pod = await cluster.add_pod("shop", "web-1", "web")
    op = await start_operator()
    sidecar = await start_sidecar(op, pod)
    await sidecar.wait_names({"a", "b"})
    assert sidecar.metadata("b") == {"memory": "true"}
    assert op.metric("parley_operator_connected_sidecars") == 1


async def test_scopes_decide_who_sees_what(
    cluster: Cluster, start_operator: StartOperator, start_sidecar: StartSidecar
) -> None:
    web = await cluster.add_pod("shop", "web-1", "web")
    batch = await cluster.add_pod("shop", "batch-1", "batch")
    await cluster.put_component("shop", "shared")
    await cluster.put_component("shop", "web-only", scopes=["web"])
    op = await start_operator()
    web_car, batch_car = await start_sidecar(op, web), await start_sidecar(op, batch)
    await web_car.wait_names({"shared", "web-only"})
    await batch_car.wait_names({"shared"})

    # A scope change is an upsert for the app that gains it and a delete for the one that loses it.
    await cluster.put_component("shop", "web-only", scopes=["batch"])
    await batch_car.wait_names({"shared", "web-only"})
    await web_car.wait_names({"shared"})
    await cluster.put_component("shop", "web-only", scopes=None)
    await web_car.wait_names({"shared", "web-only"})
    await batch_car.wait_names({"shared", "web-only"})


async def test_a_component_that_stops_being_conversation_is_removed(
    cluster: Cluster, start_operator: StartOperator, start_sidecar: StartSidecar
) -> None:
    pod = await cluster.add_pod("shop", "web-1", "web")
    await cluster.put_component("shop", "llm")
    op = await start_operator()
    sidecar = await start_sidecar(op, pod)
    await sidecar.wait_names({"llm"})
    await cluster.put_component("shop", "llm", type="state.redis")
    await sidecar.wait_names(set())


async def test_many_sidecars_get_one_change_within_a_second(
    cluster: Cluster, start_operator: StartOperator, start_sidecar: StartSidecar
) -> None:
    pods = [await cluster.add_pod("shop", f"web-{i}", "web") for i in range(20)]
    op = await start_operator()
    sidecars = [await start_sidecar(op, pod) for pod in pods]
    for sidecar in sidecars:
        await sidecar.wait_names(set(), timeout=3)
    await cluster.put_component("shop", "llm")
    for sidecar in sidecars:
        await sidecar.wait_names({"llm"})
    assert op.metric("parley_operator_connected_sidecars") == 20
    event = await cluster.event("shop", "Delivered", about="llm")
    assert (event["type"], event["message"]) == ("Normal", "delivered to 20 sidecar(s)")
    assert event["involvedObject"]["kind"] == "Component"


async def test_a_pod_that_changes_its_app_id_gets_the_new_apps_set(
    cluster: Cluster, start_operator: StartOperator, start_sidecar: StartSidecar
) -> None:
    pod = await cluster.add_pod("shop", "web-1", "web")
    await cluster.put_component("shop", "for-web", scopes=["web"])
    await cluster.put_component("shop", "for-batch", scopes=["batch"])
    op = await start_operator()
    sidecar = await start_sidecar(op, pod)
    await sidecar.wait_names({"for-web"})
    await cluster.relabel_pod(pod, app_id="batch")
    await sidecar.wait_names({"for-batch"})


async def test_a_deleted_pods_stream_is_closed(
    cluster: Cluster, start_operator: StartOperator, start_sidecar: StartSidecar
) -> None:
    pod = await cluster.add_pod("shop", "web-1", "web")
    await cluster.put_component("shop", "llm")
    op = await start_operator()
    sidecar = await start_sidecar(op, pod)
    await sidecar.wait_names({"llm"})
    await cluster.delete_pod(pod)
    await sidecar.wait_for(lambda: op.metric("parley_operator_connected_sidecars") == 0)
    assert sidecar.names() == {"llm"}  # what it had keeps serving until the container stops
