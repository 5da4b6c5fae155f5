"""The JavaScript Dapr SDK (@dapr/dapr 3.18.0) on daprd and on parley, over HTTP and over gRPC.

js/dapr_js.mjs is the app: ``client.start()`` (over gRPC the SDK polls ``GetMetadata`` until the sidecar
answers, over HTTP ``GET /v1.0/metadata``), then alpha1 and alpha2 conversations with the ``echo``
component and one with a component that does not exist.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.clients.conftest import HERE, SERVERS, js_modules, pick, run_app
from tests.conformance.servers import Pair

MODULES, MISSING = js_modules()
pytestmark = pytest.mark.skipif(MODULES is None, reason=MISSING)

PROTOCOLS = ("http", "grpc")
SCENARIOS = ("start", "alpha1", "alpha2", "unknown")


@pytest.fixture(scope="module")
def runs(echo_pair: Pair) -> dict[tuple[str, str], dict[str, Any]]:
    """The app run once per server and protocol."""
    assert MODULES is not None
    return {(server, protocol): run_app(["node", str(HERE / "js" / "dapr_js.mjs"), protocol, *SCENARIOS],
                                        pick(echo_pair, server), env={"PARLEY_JS_MODULES": str(MODULES)})
            for server in SERVERS for protocol in PROTOCOLS}


def scenario(runs: dict[tuple[str, str], dict[str, Any]], server: str, protocol: str, name: str) -> Any:
    got = runs[server, protocol][name]
    assert got["ok"], f"@dapr/dapr over {protocol} on {server}, {name}: {got['error']}"
    return got["result"]


parametrize = pytest.mark.parametrize(("server", "protocol"), [(s, p) for s in SERVERS for p in PROTOCOLS])


@parametrize
def test_client_start_finds_the_sidecar(runs: Any, server: str, protocol: str) -> None:
    assert scenario(runs, server, protocol, "start") == {"started": True, "initialized": True}


@parametrize
def test_alpha1_conversation(runs: Any, server: str, protocol: str) -> None:
    assert scenario(runs, server, protocol, "alpha1") == {"outputs": [{"result": f"hello from js over {protocol}"}]}


@parametrize
def test_alpha2_conversation(runs: Any, server: str, protocol: str) -> None:
    got = scenario(runs, server, protocol, "alpha2")
    [output] = got["outputs"]
    assert output["choices"] == [{"finishReason": "stop", "message": {"content": f"hello alpha2 over {protocol}"}}]
    # the same answer daprd gives this client, usage included (daprd's echo reports it over HTTP only)
    assert got == scenario(runs, "daprd", protocol, "alpha2")


@parametrize
def test_unknown_component_error(runs: Any, server: str, protocol: str) -> None:
    got = scenario(runs, server, protocol, "unknown")
    message = "failed finding conversation component no-such-llm"
    if protocol == "http":
        assert got == {"status": 400, "body": {"errorCode": "ERR_CONVERSATION_NOT_FOUND", "message": message}}
    else:
        assert got == {"code": "InvalidArgument", "message": message}
