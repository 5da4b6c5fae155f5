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
from aiohttp import web

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
    # exactly what `dapr run` (CLI v1.16) passes, as read from its source (dapr/cli ``pkg/standalone/run.go``)
    argv = ["--config", "/root/.dapr/config.yaml", "--app-protocol", "http", "--log-level", "debug", "--app-max-concurrency", "-1", "--placement-host-address", "localhost:50005", "--resources-path", "./config", "--max-body-size", "4Mi", "--read-buffer-size", "4Ki", "--scheduler-host-address", "localhost:50006", "--app-id", "conversation", "--app-port", "0", "--dapr-http-port", "3510", "--dapr-grpc-port", "50011", "--profile-port", "-1", "--metrics-port", "9091", "--dapr-internal-grpc-port", "50012", "--enable-metrics=false", "-enable-mtls"]
    settings, args = cli.settings_from_args(argv, environ={"DAPR_API_TOKEN": "t"})
    assert settings.app_id == "conversation"
    assert settings.resources_paths == [Path("./config")]
    assert (settings.ports.http, settings.ports.grpc, settings.ports.metrics) == (3510, 50011, 9091)
    assert settings.logging.level == "debug"
    assert settings.enable_metrics is False
    assert settings.api_token == "t"
    assert settings.limits.read_buffer_size == 4096
    assert cli.ignored_flags(args) == sorted([
        "--app-protocol", "--app-max-concurrency", "--placement-host-address",
        "--scheduler-host-address", "--app-port", "--profile-port", "--dapr-internal-grpc-port", "--enable-mtls"])


def test_what_the_injector_passes_for_the_shutdown_and_size_annotations() -> None:
    settings, args = cli.settings_from_args([
        "--dapr-graceful-shutdown-seconds", "30", "--dapr-block-shutdown-duration", "1m30s",
        "--max-body-size", "16Mi", "--read-buffer-size", "16Ki", "--unix-domain-socket", "/var/run/dapr-sockets",
        "--dapr-listen-addresses", "[::1],127.0.0.1", "--enable-api-logging=true"], environ={})
    assert (settings.limits.graceful_shutdown, settings.limits.block_shutdown) == (30.0, 90.0)
    assert (settings.limits.max_body_size, settings.limits.read_buffer_size) == (16 << 20, 16 << 10)
    assert settings.unix_domain_socket == Path("/var/run/dapr-sockets")
    assert settings.listen_addresses == ["[::1]", "127.0.0.1"]
    assert settings.enable_api_logging is True
    assert cli.ignored_flags(args) == []


def test_negative_graceful_shutdown_is_daprds_default() -> None:
    # Dapr's injector passes -1 when the pod has no dapr.io/graceful-shutdown-seconds.
    settings, _ = cli.settings_from_args(["--dapr-graceful-shutdown-seconds", "-1"], environ={})
    assert settings.limits.graceful_shutdown == 5.0
    assert settings.limits.block_shutdown == 0.0


def test_legacy_size_flags_are_mib_and_kib_and_lose_to_the_quantities() -> None:
    legacy, _ = cli.settings_from_args(["--dapr-http-max-request-size", "8", "--dapr-http-read-buffer-size", "8"],
                                       environ={})
    assert (legacy.limits.max_body_size, legacy.limits.read_buffer_size) == (8 << 20, 8 << 10)
    both, _ = cli.settings_from_args(["--dapr-http-max-request-size", "8", "--max-body-size", "1Mi",
                                      "--dapr-http-read-buffer-size", "8", "--read-buffer-size", "2Ki"], environ={})
    assert (both.limits.max_body_size, both.limits.read_buffer_size) == (1 << 20, 2 << 10)


@pytest.mark.parametrize(("argv", "message"), [
    (["--read-buffer-size", "lots"], "--read-buffer-size"),
    (["--max-body-size", "0"], "--max-body-size: must be above 0"),
    (["--dapr-block-shutdown-duration", "soon"], "--dapr-block-shutdown-duration"),
])
def test_bad_shutdown_or_size_flag_is_a_clear_error(capsys: pytest.CaptureFixture[str], argv: list[str],
                                                    message: str) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.settings_from_args(argv, environ={})
    assert message in f"{exited.value.code} {capsys.readouterr().err}"


def test_bad_port_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.settings_from_args(["--dapr-http-port", "http"], environ={})
    assert "expected a port number" in capsys.readouterr().err


def test_connection_limits_default_to_daprd_and_take_go_durations() -> None:
    settings, _ = cli.settings_from_args([], environ={})
    c = settings.connections
    # daprd's ReadHeaderTimeout and gRPC MaxConnectionIdle; an idle limit of a minute (daprd has none)
    assert (c.read_header_timeout, c.idle_timeout, c.grpc_max_idle) == (10.0, 60.0, 180.0)
    settings, _ = cli.settings_from_args(["--http-read-header-timeout", "2s", "-http-idle-timeout=1m30s",
                                          "--grpc-max-connection-idle", "0"], environ={})
    c = settings.connections
    assert (c.read_header_timeout, c.idle_timeout, c.grpc_max_idle) == (2.0, 90.0, 0.0)


@pytest.mark.parametrize("value", ["soon", "-5s"])
def test_bad_connection_limit_is_a_clear_error(capsys: pytest.CaptureFixture[str], value: str) -> None:
    with pytest.raises(SystemExit):
        cli.settings_from_args([f"--http-idle-timeout={value}"], environ={})
    err = capsys.readouterr().err
    assert "--http-idle-timeout" in err and ("invalid duration" in err or "negative" in err)


def test_version() -> None:
    import subprocess

    out = subprocess.run([sys.executable, "-m", "parley_sidecar", "--version"], capture_output=True, text=True,
                         check=True, timeout=30)
    assert out.stdout.strip() == RUNTIME_VERSION


SLOW_OPENAI = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: slow
spec:
  type: conversation.openai
  version: v1
  metadata:
  - name: key
    value: sk-test
  - name: endpoint
    value: http://127.0.0.1:{port}/v1
  - name: model
    value: gpt-test
"""


async def slow_openai() -> tuple[web.AppRunner, int]:
    """An upstream in OpenAI's chat-completions format that takes a second to answer."""

    async def completions(request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.json_response({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-test",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "slow answer"}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        })

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def test_process_finishes_in_flight_request_on_sigterm(tmp_path: Path) -> None:
    upstream, upstream_port = await slow_openai()
    (tmp_path / "slow.yaml").write_text(SLOW_OPENAI.format(port=upstream_port))
    http, grpc_port, metrics, public = free_ports(4)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "parley_sidecar", "--app-id", "cli-test", "--resources-path", str(tmp_path),
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
            # A request waits on the slow upstream while the process is asked to stop.
            pending = asyncio.create_task(session.post(
                f"http://127.0.0.1:{http}/v1.0-alpha1/conversation/slow/converse", json={"inputs": ["hi"]}))
            await asyncio.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            resp = await asyncio.wait_for(pending, 10)
            assert resp.status == 200
            assert await resp.json() == {"outputs": [{"result": "slow answer"}]}
            resp.release()
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await upstream.cleanup()
    assert proc.stdout is not None
    logs = [json.loads(line) for line in (await proc.stdout.read()).decode().splitlines() if line.startswith("{")]
    messages = [entry["msg"] for entry in logs]
    assert any("ready" in m for m in messages)
    assert any("shutting down" in m for m in messages)
    assert all(entry["app_id"] == "cli-test" for entry in logs)
    assert all("sk-test" not in entry["msg"] for entry in logs)
