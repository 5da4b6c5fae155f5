"""One Dapr ``Configuration`` file (``--config``) given to daprd and to parley: what a user sees.

``spec.metric.enabled: false``: daprd keeps its metrics server answering but counts no request;
``spec.logging.apiLogging`` with ``omitHealthChecks``: one "HTTP API Called" line per API call
with the method and path, and none for the health endpoint.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conformance.conftest import APP_ID, COMPONENTS, DAPRD, write_components
from tests.conformance.servers import Pair, Server, start_pair

CONFIG = """\
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: parley
spec:
  metric:
    enabled: false
  logging:
    apiLogging:
      enabled: true
      omitHealthChecks: true
"""
CONVERSE = "/v1.0-alpha2/conversation/echo/converse"
BODY = {"inputs": [{"messages": [{"ofUser": {"content": [{"text": "configuration-body"}]}}]}]}


@pytest.fixture(scope="module")
def config_pair(conformance_dir: Path) -> Iterator[Pair]:
    assert DAPRD is not None
    resources = write_components(conformance_dir / "components-config", COMPONENTS)
    config = conformance_dir / "configuration.yaml"
    config.write_text(CONFIG)
    pair = start_pair(DAPRD, "configuration", APP_ID, resources, conformance_dir / "logs",
                      extra_args=["--config", str(config)])
    yield pair
    pair.stop()


def request_families(server: Server) -> set[str]:
    answer = server.request("GET", "/", port=server.ports["metrics"])
    assert answer.status == 200, server.name
    text = answer.body if isinstance(answer.body, str) else ""
    return {f.name for f in text_string_to_metric_families(text) if f.name.startswith("dapr_")}


def test_metric_enabled_false_counts_no_request_and_the_port_answers(config_pair: Pair) -> None:
    for server in config_pair.both():
        assert server.request("POST", CONVERSE, json.dumps(BODY).encode()).status == 200
    assert request_families(config_pair.daprd) == request_families(config_pair.parley) == set()


def test_api_logging_logs_the_call_and_omits_health_checks(config_pair: Pair) -> None:
    for server in config_pair.both():
        assert server.request("GET", "/v1.0/healthz").status == 204
        assert server.request("POST", CONVERSE, json.dumps(BODY).encode()).status == 200
        server.stop()  # flushes the log
        lines = [line for line in server.log_path.read_text().splitlines() if "HTTP API Called" in line]
        assert any(f"POST {CONVERSE}" in line for line in lines), (server.name, lines)
        assert not any("healthz" in line or "configuration-body" in line for line in lines), (server.name, lines)
