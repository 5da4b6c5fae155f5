"""`parley-sidecar` as a process: daprd's flags, --version, startup, and a clean SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from parley_sidecar import cli
from parley_sidecar.settings import RUNTIME_VERSION

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "components"


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_daprd_defaults() -> None:
    settings, _ = cli.settings_from_args(["--app-id", "a"], environ={})
    assert (settings.ports.http, settings.ports.grpc, settings.ports.metrics, settings.ports.public) == (
        3500, 50001, 9090, 3501)
    assert settings.limits.max_body_size == 4 * 1024 * 1024
    assert settings.enable_metrics is True


def test_dapr_cli_flags_are_accepted_and_the_irrelevant_ones_named() -> None:
    # exactly what `dapr run` (CLI v1.16) passes, see shared/reference/daprd-oracle.md §4
    argv = ["--config", "/root/.dapr/config.yaml", "--app-protocol", "http", "--log-level", "debug", "--app-max-concurrency", "-1", "--placement-host-address", "localhost:50005", "--resources-path", "./config", "--max-body-size", "4Mi", "--read-buffer-size", "4Ki", "--scheduler-host-address", "localhost:50006", "--app-id", "conversation", "--app-port", "0", "--dapr-http-port", "3510", "--dapr-grpc-port", "50011", "--profile-port", "-1", "--metrics-port", "9091", "--dapr-internal-grpc-port", "50012", "--enable-metrics=false", "-enable-mtls"]
    settings, args = cli.settings_from_args(argv, environ={"DAPR_API_TOKEN": "t"})
    assert settings.app_id == "conversation"
    assert settings.resources_paths == [Path("./config")]
    assert (settings.ports.http, settings.ports.grpc, settings.ports.metrics) == (3510, 50011, 9091)
    assert settings.logging.level == "debug"
    assert settings.enable_metrics is False
    assert settings.api_token == "t"
    assert cli.ignored_flags(args) == sorted([
        "--config", "--app-protocol", "--app-max-concurrency", "--placement-host-address", "--read-buffer-size",
        "--scheduler-host-address", "--app-port", "--profile-port", "--dapr-internal-grpc-port", "--enable-mtls"])


def test_bad_port_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.settings_from_args(["--dapr-http-port", "http"], environ={})
    assert "expected a port number" in capsys.readouterr().err


def test_version() -> None:
    import subprocess

    out = subprocess.run([sys.executable, "-m", "parley_sidecar", "--version"], capture_output=True, text=True,
                         check=True, timeout=30)
    assert out.stdout.strip() == RUNTIME_VERSION


async def test_process_serves_then_finishes_in_flight_request_on_sigterm(tmp_path: Path) -> None:
    http, grpc_port, metrics, public = free_ports(4)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "parley_sidecar", "--app-id", "cli-test", "--resources-path", str(EXAMPLES),
        "--dapr-http-port", str(http), "--dapr-grpc-port", str(grpc_port), "--metrics-port", str(metrics),
        "--dapr-public-port", str(public), "--dapr-listen-addresses", "127.0.0.1",
        "--metrics-listen-address", "127.0.0.1", "--dapr-public-listen-address", "127.0.0.1", "--log-as-json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env={**os.environ},
    )
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 15
            while True:
                try:
                    async with session.get(f"http://127.0.0.1:{http}/v1.0/healthz") as resp:
                        if resp.status == 204:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                assert time.monotonic() < deadline, "sidecar did not become healthy"
                await asyncio.sleep(0.05)
        # Start a request whose body is still on its way, then ask the process to stop.
        body = json.dumps({"inputs": [{"content": "finish me"}]}).encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", http)
        writer.write(b"POST /v1.0-alpha1/conversation/echo/converse HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
        await writer.drain()
        await asyncio.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.3)
        writer.write(body[10:])
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert answer.endswith(b'{"outputs":[{"result":"finish me"}]}')
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    logs = [json.loads(line) for line in (await proc.stdout.read()).decode().splitlines() if line.startswith("{")]  # type: ignore[union-attr]
    messages = [entry["msg"] for entry in logs]
    assert any("ready" in m for m in messages)
    assert any("shutting down" in m for m in messages)
    assert all(entry["app_id"] == "cli-test" for entry in logs)
