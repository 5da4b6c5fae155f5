"""Shutdown and the extended-metadata bound, against daprd: each test gets a pair of its own.

Shutdown ends the servers and the bound fills the store, so neither can run on the session's
shared pairs. Shutdown: the same request to both (HTTP ``POST /v1.0/shutdown``, gRPC ``Shutdown``,
with and without daprd's ``dapr-force-shutdown``), the same answer, the same exit code, and a
conversation in flight (a slow upstream) finishes first with the same answer.
"""

from __future__ import annotations

import concurrent.futures
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from dapr.proto.runtime.v1 import dapr_pb2, metadata_pb2

from tests.conformance.compare import check_http
from tests.conformance.conftest import APP_ID, COMPONENTS, DAPRD, write_components
from tests.conformance.differences import Answer, Case, assert_same
from tests.conformance.servers import Pair, Server, start_pair
from tests.conformance.test_grpc import call, check_grpc
from tests.manifests import component_yaml

SLOW_S = 1.0


class _SlowOpenAI(http.server.BaseHTTPRequestHandler):
    """OpenAI's chat completions, answered after SLOW_S seconds."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        time.sleep(SLOW_S)
        body = json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-test",
                           "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": "slow answer"}}],
                           "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def slow_upstream() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def fresh_pair(tmp_path: Path, slow_upstream: int) -> Iterator[Pair]:
    assert DAPRD is not None
    files = {**COMPONENTS, "slow.yaml": component_yaml("slow", "conversation.openai", {
        "key": "sk-test", "model": "gpt-test", "endpoint": f"http://127.0.0.1:{slow_upstream}/v1"})}
    running = start_pair(DAPRD, "fresh", APP_ID, write_components(tmp_path / "components", files),
                         tmp_path / "logs")
    yield running
    running.stop()


def _exit(server: Server) -> int:
    try:
        return server.proc.wait(15)
    except Exception:
        raise AssertionError(f"{server.name} did not exit after shutdown; log:\n{server.log_tail()}") from None


def _compare_exit(pair: Pair, case_id: str, expected: int) -> None:
    d, p = _exit(pair.daprd), _exit(pair.parley)
    assert d == expected, f"{case_id}: daprd exited {d}; log:\n{pair.daprd.log_tail()}"
    assert_same(Case(f"{case_id}/exit"), Answer(d, "", None), Answer(p, "", None))


SLOW_CONVERSATION = {"inputs": [{"messages": [{"ofUser": {"content": [{"text": "take your time"}]}}]}]}


def _shutdown_with_one_in_flight(pair: Pair, case_id: str, shutdown: Any) -> None:
    """A slow conversation starts on each server; while it waits on the upstream, ``shutdown(server)``
    is asked (its answer compared); the conversation must still get its full answer (compared too),
    then the process exits 0."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        pending = {server.name: pool.submit(server.request, "POST", "/v1.0-alpha2/conversation/slow/converse",
                                            json.dumps(SLOW_CONVERSATION).encode()) for server in pair.both()}
        time.sleep(SLOW_S / 3)
        assert all(not f.done() for f in pending.values()), "the conversation finished before the shutdown"
        shutdown_started = time.monotonic()
        d, p = shutdown(pair.daprd), shutdown(pair.parley)
        assert time.monotonic() - shutdown_started < SLOW_S, "the shutdown answer waited for the conversation"
        assert_same(Case(case_id), d, p)
        answers = {name: future.result(timeout=15) for name, future in pending.items()}
    d_conv, p_conv = answers[pair.daprd.name], answers[pair.parley.name]
    assert d_conv.status == 200, d_conv
    assert_same(Case(f"{case_id}-in-flight"), d_conv, p_conv)
    _compare_exit(pair, case_id, 0)


def test_http_shutdown_answers_then_drains_and_exits_0(fresh_pair: Pair) -> None:
    def shutdown(server: Server) -> Answer:
        return server.request("POST", "/v1.0/shutdown")

    _shutdown_with_one_in_flight(fresh_pair, "http/shutdown", shutdown)


def test_grpc_shutdown_answers_then_drains_and_exits_0(fresh_pair: Pair) -> None:
    def shutdown(server: Server) -> Answer:
        return call(server, "Shutdown", dapr_pb2.ShutdownRequest())

    _shutdown_with_one_in_flight(fresh_pair, "grpc/shutdown", shutdown)


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_forced_shutdown_exits_1(fresh_pair: Pair, transport: str) -> None:
    """daprd's ``dapr-force-shutdown: true``: the answer, then exit 1 without draining."""
    if transport == "http":
        check_http(fresh_pair, "shutdown-forced", "/v1.0/shutdown", method="POST",
                   headers={"dapr-force-shutdown": "true"}, status=204)
    else:
        check_grpc(fresh_pair, "shutdown-forced", "Shutdown", dapr_pb2.ShutdownRequest(),
                   metadata=(("dapr-force-shutdown", "True"),), status="OK")
    _compare_exit(fresh_pair, f"{transport}/shutdown-forced", 1)


def test_extended_metadata_bound(fresh_pair: Pair) -> None:
    """daprd stores every key; parley refuses the 101st and a write beyond 64 KiB (intended difference)."""
    for server in fresh_pair.both():
        for i in range(100):
            assert server.request("PUT", f"/v1.0/metadata/k{i}", b"v").status == 204, server.name
    check_http(fresh_pair, "metadata-limit-keys", "/v1.0/metadata/one-too-many", {"key": "one-too-many"},
               raw=b"v", method="PUT", status=204)
    check_grpc(fresh_pair, "metadata-limit-keys", "SetMetadata",
               metadata_pb2.SetMetadataRequest(key="grpc-too-many", value="v"), status="OK")
    # An existing key may still change, within the bytes: the same answer from both.
    check_http(fresh_pair, "metadata-replace-within-bound", "/v1.0/metadata/k7", raw=b"replaced", method="PUT",
               status=204)
    check_grpc(fresh_pair, "metadata-replace-within-bound", "SetMetadata",
               metadata_pb2.SetMetadataRequest(key="k8", value="replaced"), status="OK")
    check_http(fresh_pair, "metadata-limit-bytes", "/v1.0/metadata/k9", {"key": "k9"}, raw=b"x" * 65536,
               method="PUT", status=204)
    check_grpc(fresh_pair, "metadata-limit-bytes", "SetMetadata",
               metadata_pb2.SetMetadataRequest(key="k9", value="x" * 65536), status="OK")
    stored = fresh_pair.parley.request("GET", "/v1.0/metadata").body["extended"]
    assert len(stored) == 101 and stored["k7"] == stored["k8"] == "replaced" and stored["k9"] == "v"
    assert "one-too-many" not in stored and "grpc-too-many" not in stored


def test_grpc_set_metadata_refusal_is_resource_exhausted(fresh_pair: Pair) -> None:
    """Pins the status parley chose for a full store (daprd never refuses)."""
    for i in range(100):
        assert call(fresh_pair.parley, "SetMetadata", metadata_pb2.SetMetadataRequest(key=f"g{i}")).status == "OK"
    refused = call(fresh_pair.parley, "SetMetadata", metadata_pb2.SetMetadataRequest(key="one-more"))
    assert refused.status == grpc.StatusCode.RESOURCE_EXHAUSTED.name
    assert refused.body["details"] == ("failed setting extended metadata 'one-more': extended metadata already "
                                       "holds 100 keys, the most kept")
