"""``--workers 2``: one sidecar served by two processes on the same ports (docs/sidecar.md, Worker processes).

Real processes on loopback: which worker served a connection is read from ``/proc`` (the worker
that holds the server side of that TCP connection), as an operator would find it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from dapr.proto.runtime.v1 import ai_pb2, dapr_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from parley_sidecar import cli
from parley_sidecar.metrics import Metrics
from tests.conformance.servers import free_port
from tests.manifests import component_yaml

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

ALPHA1 = "/v1.0-alpha1/conversation/echo/converse"
BODY = json.dumps({"inputs": [{"content": "hello"}]}).encode()


class Sidecar:
    def __init__(self, tmp_path: Path, *flags: str, resources: dict[str, str] | None = None) -> None:
        self.http, self.grpc, self.metrics, self.public = free_port(), free_port(), free_port(), free_port()
        self.log = tmp_path / "sidecar.log"
        args = [sys.executable, "-m", "parley_sidecar", "--workers", "2", "--dapr-http-port", str(self.http),
                "--dapr-grpc-port", str(self.grpc), "--metrics-port", str(self.metrics),
                "--dapr-public-port", str(self.public), "--dapr-listen-addresses", "127.0.0.1",
                "--metrics-listen-address", "127.0.0.1", "--dapr-public-listen-address", "127.0.0.1",
                "--log-as-json", *flags]
        if resources is not None:
            folder = tmp_path / "resources"
            folder.mkdir()
            for name, text in resources.items():
                (folder / f"{name}.yaml").write_text(text)
            args += ["--resources-path", str(folder)]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)

    def messages(self) -> list[str]:
        lines = self.log.read_text().splitlines()
        return [json.loads(line)["msg"] for line in lines if line.startswith("{")]

    def wait_ready(self, workers: int = 2) -> None:
        deadline = time.monotonic() + 30
        while sum("ready in" in m for m in self.messages()) < workers:
            assert self.proc.poll() is None, self.messages()
            assert time.monotonic() < deadline, self.messages()
            time.sleep(0.05)

    def workers(self) -> list[int]:
        """Worker 1 (the process started) and the workers it forked."""
        text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return [self.proc.pid, *(int(pid) for pid in text.split())]

    def post(self, path: str = ALPHA1, body: bytes = BODY) -> tuple[int, bytes]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.http}{path}", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def get(self, port: int, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            data: bytes = resp.read()
            return data

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[Sidecar]:
    running = Sidecar(tmp_path)
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def _tcp_table() -> list[list[str]]:
    """Every TCP socket of this network namespace (IPv4, and IPv6, where gRPC's dual-stack sockets are)."""
    return [line.split() for table in ("/proc/net/tcp", "/proc/net/tcp6")
            for line in Path(table).read_text().splitlines()[1:]]


def _inode(local_port: int, server_port: int) -> str:
    """The inode of the server side of the loopback connection from ``local_port``."""
    for fields in _tcp_table():
        local, remote = fields[1].split(":")[1], fields[2].split(":")[1]
        if int(local, 16) == server_port and int(remote, 16) == local_port:
            return fields[9]
    raise AssertionError(f"no server socket for the connection from port {local_port}")


def _owner(inode: str, pids: list[int]) -> int:
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
    raise AssertionError(f"no worker holds socket {inode}")


def _http_on_one_connection(port: int) -> tuple[socket.socket, bytes]:
    conn = socket.create_connection(("127.0.0.1", port))
    conn.sendall(b"POST " + ALPHA1.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
    answer = conn.recv(65536)
    return conn, answer


def _local_ports(pid: int, server_port: int) -> set[int]:
    """The client ports of ``pid``'s established connections to ``server_port`` (gRPC's own sockets)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for fields in _tcp_table():
        if fields[9] in inodes and int(fields[2].split(":")[1], 16) == server_port:
            ports.add(int(fields[1].split(":")[1], 16))
    return ports


def test_http_connections_are_served_by_both_workers(sidecar: Sidecar) -> None:
    pids = sidecar.workers()
    assert len(pids) == 2
    served: set[int] = set()
    connections = []
    for _ in range(64):  # the kernel gives each connection to whichever worker accepts it first
        conn, answer = _http_on_one_connection(sidecar.http)
        connections.append(conn)
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b'{"outputs":[{"result":"hello"}]}')
        served.add(_owner(_inode(conn.getsockname()[1], sidecar.http), pids))
        if len(served) == 2:
            break
    for conn in connections:
        conn.close()
    assert served == set(pids)


def test_grpc_connections_are_served_by_both_workers(sidecar: Sidecar) -> None:
    pids = sidecar.workers()
    served: set[int] = set()
    for _ in range(64):  # one inherited listener, as HTTP's: whichever worker accepts first serves it
        with grpc.insecure_channel(f"127.0.0.1:{sidecar.grpc}") as channel:
            answer = dapr_pb2_grpc.DaprStub(channel).ConverseAlpha2(ai_pb2.ConversationRequestAlpha2(
                name="echo", inputs=[ai_pb2.ConversationInputAlpha2(messages=[ai_pb2.ConversationMessage(
                    of_user=ai_pb2.ConversationMessageOfUser(
                        content=[ai_pb2.ConversationMessageContent(text="hi")]))])]))
            assert answer.outputs[0].choices[0].message.content == "hi"
            for port in _local_ports(os.getpid(), sidecar.grpc):
                served.add(_owner(_inode(port, sidecar.grpc), pids))
        if len(served) == 2:
            break
    assert served == set(pids)


def _samples(text: bytes, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """``name``'s samples by label set (the parser calls a counter's samples ``<name>_total``)."""
    return {tuple(sorted(s.labels.items())): s.value for family in text_string_to_metric_families(text.decode())
            for s in family.samples if s.name in (name, f"{name}_total")}


def test_metrics_are_the_sum_over_workers(sidecar: Sidecar) -> None:
    pids = sidecar.workers()
    served: list[int] = []
    while len(served) < 30 or len(set(served)) < 2:  # a new connection each, until both workers answered some
        assert len(served) < 200, "one worker accepted every connection"
        conn, answer = _http_on_one_connection(sidecar.http)
        assert answer.startswith(b"HTTP/1.1 200 ")
        served.append(_owner(_inode(conn.getsockname()[1], sidecar.http), pids))
        conn.close()
    calls = 0
    for _ in range(10):
        with grpc.insecure_channel(f"127.0.0.1:{sidecar.grpc}") as channel:
            dapr_pb2_grpc.DaprStub(channel).ConverseAlpha1(ai_pb2.ConversationRequest(
                name="echo", inputs=[ai_pb2.ConversationInput(content="hi")]))
            calls += 1
    text = sidecar.get(sidecar.metrics, "/")
    http = _samples(text, "dapr_http_server_request_count")
    key = (("app_id", "parley"), ("method", "POST"), ("path", ALPHA1), ("status", "200"))
    assert http[key] == len(served)
    latency = _samples(text, "dapr_http_server_latency_count")
    assert latency[key] == len(served)
    rpc = _samples(text, "dapr_grpc_io_server_completed_rpcs")
    assert rpc[(("app_id", "parley"), ("grpc_server_method", "/dapr.proto.runtime.v1.Dapr/ConverseAlpha1"),
                ("grpc_server_status", "OK"))] == calls
    component = _samples(text, "dapr_component_conversation_count")
    assert sum(component.values()) == len(served) + calls
    breaker = _samples(text, "parley_circuit_breaker_state")
    assert breaker[(("component", "echo"), ("state", "closed"))] == 1
    # Worker 1 counts the scrapes of its metrics port, as one sidecar does.
    again = _samples(sidecar.get(sidecar.metrics, "/metrics"), "dapr_http_server_request_count")
    assert again[(("app_id", "parley"), ("method", "GET"), ("path", "/"), ("status", "200"))] == 1


def test_health_answers_from_every_worker(sidecar: Sidecar) -> None:
    pids = sidecar.workers()
    served: set[int] = set()
    for _ in range(64):
        for port, path in ((sidecar.public, "/v1.0/healthz"), (sidecar.http, "/v1.0/healthz/outbound")):
            conn = socket.create_connection(("127.0.0.1", port))
            conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert conn.recv(4096).startswith(b"HTTP/1.1 204 ")
            served.add(_owner(_inode(conn.getsockname()[1], port), pids))
            conn.close()
        if len(served) == 2:
            break
    assert served == set(pids)


def test_extended_metadata_written_on_one_worker_is_seen_on_every_one(sidecar: Sidecar) -> None:
    request = urllib.request.Request(f"http://127.0.0.1:{sidecar.http}/v1.0/metadata/team", data=b"blue",
                                     method="PUT")
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 204
    pids = sidecar.workers()
    deadline = time.monotonic() + 10
    seen: set[int] = set()
    while seen != set(pids):  # new connections, until each worker has answered with the write
        conn = socket.create_connection(("127.0.0.1", sidecar.http))
        conn.sendall(b"GET /v1.0/metadata HTTP/1.1\r\nHost: x\r\n\r\n")
        with conn.makefile("rb") as reply:
            headers = reply.readline() + b"".join(iter(reply.readline, b"\r\n"))
            length = int(headers.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
            extended = json.loads(reply.read(length))["extended"]
        worker = _owner(_inode(conn.getsockname()[1], sidecar.http), pids)  # kept alive: still open
        conn.close()
        if extended.get("team") == "blue":
            seen.add(worker)
        else:
            assert time.monotonic() < deadline, (worker, extended)
            time.sleep(0.05)


def test_sigterm_drains_every_worker_and_leaves_no_process(sidecar: Sidecar) -> None:
    pids = sidecar.workers()
    assert sidecar.stop() == 0
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()
    messages = sidecar.messages()
    assert messages.count("parley sidecar stopped") == 2
    assert "parley sidecar stopped (2 workers)" in messages


def test_the_shutdown_api_on_one_worker_stops_them_all(sidecar: Sidecar) -> None:
    pids = sidecar.workers()
    assert sidecar.post("/v1.0/shutdown", b"")[0] == 204
    assert sidecar.proc.wait(timeout=30) == 0
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()


def test_a_forced_shutdown_on_any_worker_ends_every_worker_with_status_1(sidecar: Sidecar) -> None:
    pids = sidecar.workers()
    request = urllib.request.Request(f"http://127.0.0.1:{sidecar.http}/v1.0/shutdown", data=b"", method="POST",
                                     headers={"dapr-force-shutdown": "true"})
    with urllib.request.urlopen(request, timeout=10) as resp:  # on whichever worker takes the connection
        assert resp.status == 204
    assert sidecar.proc.wait(timeout=30) == 1
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
              for pid in pids[1:]):
        assert time.monotonic() < deadline, "a worker outlived the forced shutdown"
        time.sleep(0.05)


def test_a_worker_that_dies_stops_the_sidecar_with_an_error(sidecar: Sidecar) -> None:
    _, second = sidecar.workers()
    os.kill(second, signal.SIGKILL)
    assert sidecar.proc.wait(timeout=30) == 1
    assert not Path(f"/proc/{second}").exists()
    assert any(f"worker 2 (pid {second}) exited with status -9" in m for m in sidecar.messages())


def test_workers_stop_when_the_first_one_is_killed(sidecar: Sidecar) -> None:
    # SIGKILL leaves worker 1 no time to stop the others: each sees its link close and shuts down.
    first, second = sidecar.workers()
    os.kill(first, signal.SIGKILL)
    sidecar.proc.wait(timeout=30)
    deadline = time.monotonic() + 20
    while Path(f"/proc/{second}").exists() and Path(f"/proc/{second}/stat").read_text().split()[2] != "Z":
        assert time.monotonic() < deadline, "worker 2 outlived worker 1"
        time.sleep(0.05)


def test_a_worker_left_alone_still_answers_metadata_writes_and_shutdown_calls(tmp_path: Path) -> None:
    # Worker 1 killed outright: worker 2 shuts down, and first keeps serving for its block-shutdown
    # period, as one sidecar does. Its link to worker 1 is closed then: a write that would be relayed
    # through it must not fail the caller's request.
    running = Sidecar(tmp_path, "--dapr-block-shutdown-duration", "60s")
    second = 0
    try:
        running.wait_ready()
        first, second = running.workers()
        os.kill(first, signal.SIGKILL)
        running.proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while not any("worker 1 is gone" in m for m in running.messages()):
            assert time.monotonic() < deadline, running.messages()
            time.sleep(0.05)
        for value in ("blue", "green", "red"):
            request = urllib.request.Request(f"http://127.0.0.1:{running.http}/v1.0/metadata/team",
                                             data=value.encode(), method="PUT")
            with urllib.request.urlopen(request, timeout=10) as resp:  # only worker 2 accepts now
                assert resp.status == 204
        assert json.loads(running.get(running.http, "/v1.0/metadata"))["extended"]["team"] == "red"
        assert running.post("/v1.0/shutdown", b"")[0] == 204
    finally:
        if second:
            with contextlib.suppress(ProcessLookupError):
                os.kill(second, signal.SIGKILL)  # the test's own process, past its point


def test_memory_in_process_is_refused_with_workers(tmp_path: Path) -> None:
    running = Sidecar(tmp_path, resources={
        "chat": component_yaml("chat", metadata={"memory": "true"}),
        "shared": component_yaml("shared", metadata={"memory": "true", "memoryStore": "redis://127.0.0.1:1/0"}),
    })
    try:
        running.wait_ready()
        assert any("memoryStore: redis://" in m and "'chat'" in m for m in running.messages())
        status, body = running.post("/v1.0-alpha1/conversation/chat/converse")
        assert status == 400 and b"ERR_CONVERSATION_NOT_FOUND" in body, body
        assert running.post("/v1.0-alpha1/conversation/shared/converse")[0] == 200
    finally:
        assert running.stop() == 0


def test_unix_socket_api_is_refused_with_workers(tmp_path: Path) -> None:
    running = Sidecar(tmp_path, "--unix-domain-socket", str(tmp_path))
    assert running.proc.wait(timeout=30) != 0
    assert "cannot serve --unix-domain-socket" in running.log.read_text()


def test_workers_flag_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli.settings_from_args([])[0].workers == 1
    assert cli.settings_from_args(["--workers", "3"])[0].workers == 3
    assert cli.settings_from_args(["-workers=2"])[0].workers == 2
    with pytest.raises(SystemExit):
        cli.settings_from_args(["--workers", "0"])
    monkeypatch.setenv("PARLEY_WORKERS", "4")
    assert cli.settings_from_args([])[0].workers == 4
    assert cli.settings_from_args(["--workers", "1"])[0].workers == 1  # the flag wins
    assert cli.settings_from_args([], environ={})[0].workers == 1  # the environment given, not the process's
    assert cli.settings_from_args([], environ={"PARLEY_WORKERS": "2"})[0].workers == 2
    monkeypatch.setenv("PARLEY_WORKERS", "many")
    with pytest.raises(SystemExit, match="PARLEY_WORKERS"):
        cli.settings_from_args([])
    assert cli.settings_from_args(["--workers", "2"])[0].workers == 2  # the flag wins over a bad value too
    assert "--workers" in cli.build_parser().format_help()  # --help still works


def test_absorb_sums_counters_and_histograms_and_takes_the_largest_gauge() -> None:
    one, two = Metrics("app"), Metrics("app")
    for metrics, statuses in ((one, ("200", "200", "500")), (two, ("200",))):
        for status in statuses:
            metrics.http("POST", "/p", int(status), 3.0)
    one.breaker_state.source = lambda: [(("c", "closed"), 1.0), (("c", "open"), 0.0)]
    two.breaker_state.source = lambda: [(("c", "closed"), 0.0), (("c", "open"), 1.0)]
    total = Metrics("app")
    for metrics in (one, two):
        snapshot = metrics.snapshot()
        assert snapshot is not None
        total.absorb(snapshot)
    assert total.http_requests.values == {("app", "POST", "/p", "200"): 3.0, ("app", "POST", "/p", "500"): 1.0}
    row = total.http_latency.values[("app", "POST", "/p", "200")]
    assert row[-1] == 3 and row[-2] == 9.0
    assert dict(total.breaker_state.source() if total.breaker_state.source else ()) == {
        ("c", "closed"): 1.0, ("c", "open"): 1.0}
    one.enabled = False
    assert one.snapshot() is None
