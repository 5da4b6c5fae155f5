"""The operator going away loses nothing: sidecars keep their set, and catch up on reconnect."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import Cluster, StartOperator, StartSidecar


async def test_restart_loses_no_update(
    cluster: Cluster, start_operator: StartOperator, start_sidecar: StartSidecar
) -> None:
    await cluster.put_component("shop", "a", metadata={"memory": "false"})
    await cluster.put_component("shop", "b")
    pod = await cluster.add_pod("shop", "web-1", "web")
    first = await start_operator()
    sidecar = await start_sidecar(first, pod)
    await sidecar.wait_names({"a", "b"})

    await first.stop()
    # While the operator is away, everything keeps serving and changes pile up in the cluster.
    await cluster.put_component("shop", "a", metadata={"memory": "true"})
    await cluster.delete_component("shop", "b")
    await cluster.put_component("shop", "c")
    await asyncio.sleep(0.3)
    assert sidecar.names() == {"a", "b"} and sidecar.metadata("a") == {"memory": "false"}

    # Same Service address, same CA (from the certificate Secret): the sidecar just reconnects.
    second = await start_operator(stream__port=first.op.stream.port)
    assert second.ca_pem == first.ca_pem
    await sidecar.wait_names({"a", "c"}, timeout=3)
    assert sidecar.metadata("a") == {"memory": "true"}


async def test_sidecars_that_connect_during_startup_wait_for_the_full_listing(
    cluster: Cluster, start_operator: StartOperator, start_sidecar: StartSidecar
) -> None:
    for i in range(30):
        await cluster.put_component("shop", f"c{i}")
    pod = await cluster.add_pod("shop", "web-1", "web")
    listed = asyncio.Event()

    async def slow_list() -> None:  # a large cluster: the first LIST of Components takes a while
        await asyncio.sleep(0.5)
        listed.set()  # returning nothing lets kmock's emulator answer the LIST itself

    cluster.api["list dapr.io/v1alpha1/components"] << slow_list
    op = await start_operator()
    assert not listed.is_set()
    sidecar = await start_sidecar(op, pod, connected=False)
    # The first snapshot already holds everything: no partial set that would remove components.
    await sidecar.wait_names({f"c{i}" for i in range(30)}, timeout=3)
    assert listed.is_set()
    assert op.metric("parley_operator_deliveries_total", kind="upsert") == 0
