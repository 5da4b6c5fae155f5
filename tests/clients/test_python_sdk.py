"""The Python SDK's ``DaprClient().get_metadata()`` on daprd and on parley (python_sdk_app.py, a process of
its own so the SDK reads the sidecar's ports from its environment as an app does)."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from tests.clients.conftest import APP_ID, HERE, SERVERS, pick, run_app
from tests.conformance.servers import Pair


@pytest.fixture(scope="module")
def metadata(echo_pair: Pair) -> dict[str, Any]:
    return {server: run_app([sys.executable, str(HERE / "python_sdk_app.py")], pick(echo_pair, server))["get_metadata"]
            for server in SERVERS}


@pytest.mark.parametrize("server", SERVERS)
def test_get_metadata(metadata: dict[str, Any], server: str) -> None:
    got = metadata[server]
    assert got["ok"], f"DaprClient().get_metadata() on {server}: {got['error']}"
    meta = got["result"]
    assert meta["application_id"] == APP_ID
    assert meta["active_actors_count"] == {}
    assert [(c["name"], c["type"], c["version"]) for c in meta["registered_components"]] == [
        ("echo", "conversation.echo", "v1")]
    version = meta["extended_metadata"]["daprRuntimeVersion"]
    major, minor = (int(part) for part in version.split(".")[:2])
    assert (major, minor) >= (1, 16), version  # what dapr-agents checks before every conversation
    # everything else the app sees is what daprd shows it (the version string aside)
    daprd = metadata["daprd"]["result"]
    assert {**meta, "extended_metadata": {**meta["extended_metadata"], "daprRuntimeVersion": "-"}} == {
        **daprd, "extended_metadata": {**daprd["extended_metadata"], "daprRuntimeVersion": "-"}}
