"""The two servers under comparison, as real processes on loopback: the real daprd and parley.

Both get the very same command line (parley accepts every daprd flag), the same Component files
and the same environment; only the executable differs. Answers are read with ``http.client``
(no client-side JSON handling or retries in the way) and turned into :class:`Answer`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import decimal
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.conformance.differences import Answer

__all__ = ["DAPRD_VERSION", "Server", "find_daprd", "free_port", "start_pair", "start_server"]

ROOT = Path(__file__).resolve().parents[2]
DAPRD_VERSION = os.environ.get("PARLEY_DAPRD_VERSION", "v1.18.3")
DAPRD_TAGS = os.environ.get("PARLEY_DAPRD_TAGS", "conversation_echo,conversation_openai")
# Environment that would change either server's behaviour behind the test's back.
_SCRUBBED_ENV = ("DAPR_API_TOKEN", "DAPR_HTTP_PORT", "DAPR_GRPC_PORT", "DAPR_METRICS_PORT", "NAMESPACE",
                 "OPENAI_MODEL", "OPENAI_API_KEY", "APP_API_TOKEN", "PARLEY_OPERATOR_ADDRESS")


def cache_root() -> Path:
    return Path(os.environ.get("PARLEY_CACHE") or Path.home() / ".cache" / "parley")


def find_daprd() -> tuple[Path | None, str]:
    """The daprd binary (``PARLEY_DAPRD``, else the build cache), or None and why not.

    ``build.sh`` is run only when its cached binary already exists (its fast path, a file test):
    a test never starts the three-minute build.
    """
    given = os.environ.get("PARLEY_DAPRD")
    if given:
        path = Path(given)
        if path.is_file() and os.access(path, os.X_OK):
            return path, ""
        return None, f"PARLEY_DAPRD={given} is not an executable file"
    cached = cache_root() / "daprd" / f"{DAPRD_VERSION}-{DAPRD_TAGS.replace(',', '+')}" / "daprd"
    if not (cached.is_file() and os.access(cached, os.X_OK)):
        return None, (f"the real daprd is not built ({cached} is missing and PARLEY_DAPRD is unset): "
                      "run `bash tests/daprd/build.sh` once (about 3 minutes, needs Go) or `.ci/run`")
    out = subprocess.run(["bash", str(ROOT / "tests" / "daprd" / "build.sh")], capture_output=True, text=True,
                         timeout=30, check=False)
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        return None, f"tests/daprd/build.sh failed: {out.stderr.strip()[-300:]}"
    return Path(lines[-1]), ""


def find_dapr_cli() -> tuple[Path | None, str]:
    version = os.environ.get("PARLEY_DAPR_CLI_VERSION", "v1.16.5")
    cached = cache_root() / "dapr-cli" / version / "dapr"
    if not (cached.is_file() and os.access(cached, os.X_OK)):
        return None, (f"the Dapr CLI is not built ({cached} is missing): run `bash tests/daprd/build-cli.sh` "
                      "once (about 3.5 minutes, needs Go)")
    out = subprocess.run(["bash", str(ROOT / "tests" / "daprd" / "build-cli.sh")], capture_output=True, text=True,
                         timeout=30, check=False)
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        return None, f"tests/daprd/build-cli.sh failed: {out.stderr.strip()[-300:]}"
    return Path(lines[-1]), ""


_PORTS = random.Random()


def free_port() -> int:
    """A port that is free now, below the kernel's ephemeral range (where a server's own outgoing
    connections or another process could take it between our choice and the server's bind)."""
    while True:
        port = _PORTS.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env.update(extra or {})
    return env


@dataclasses.dataclass
class Server:
    """One running server process and a way to talk HTTP to it."""

    name: str
    proc: subprocess.Popen[bytes]
    ports: dict[str, int]
    log_path: Path
    started_at: float
    ready_s: float = 0.0

    @property
    def http_port(self) -> int:
        return self.ports["http"]

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.ports['grpc']}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: Mapping[str, str] | None = None, *, port: int | None = None,
                timeout: float = 30.0) -> Answer:
        """One HTTP exchange on a fresh connection; the answer's body parsed as JSON when it is JSON."""
        conn = http.client.HTTPConnection("127.0.0.1", port or self.http_port, timeout=timeout)
        try:
            # A server may answer before reading a too-large body; its answer is still there to read.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                conn.request(method, path, body=body, headers=dict(headers or {}))
            resp = conn.getresponse()
            raw = resp.read()
            content_type = resp.getheader("Content-Type", "")
            status = resp.status
        finally:
            conn.close()
        return Answer(status, content_type, parse_body(raw))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        stop_process(self.proc)


def parse_body(raw: bytes) -> Any:
    """JSON numbers become Decimals: equal when their values are (``1`` and ``1.0``, Go's
    ``18446744073709552000`` and Python's ``1.8446744073709552e+19``), exact otherwise."""
    if not raw:
        return None
    try:
        return json.loads(raw, parse_float=decimal.Decimal, parse_int=decimal.Decimal)
    except ValueError:
        return raw.decode("utf-8", "replace")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(8)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def daprd_flags(app_id: str, resources: Path, ports: Mapping[str, int]) -> list[str]:
    """daprd's flags for a loopback-only standalone run; parley gets exactly the same."""
    return [
        "--app-id", app_id, "--resources-path", str(resources),
        "--dapr-http-port", str(ports["http"]), "--dapr-grpc-port", str(ports["grpc"]),
        "--metrics-port", str(ports["metrics"]), "--dapr-internal-grpc-port", str(ports["internal"]),
        "--dapr-public-port", str(ports["public"]),
        "--dapr-listen-addresses", "127.0.0.1", "--dapr-internal-grpc-listen-address", "127.0.0.1",
        "--metrics-listen-address", "127.0.0.1", "--dapr-public-listen-address", "127.0.0.1",
    ]


def parley_argv() -> list[str]:
    return [sys.executable, "-m", "parley_sidecar"]


def _wait_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not server.alive():
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}; log:\n{server.log_tail()}")
        try:
            if server.request("GET", "/v1.0/healthz", timeout=1).status == 204:
                with socket.create_connection(("127.0.0.1", server.ports["grpc"]), timeout=1):
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.name} not ready after {timeout}s; log:\n{server.log_tail()}")
        time.sleep(0.02)
    server.ready_s = time.perf_counter() - server.started_at


def start_server(name: str, executable: Sequence[str], app_id: str, resources: Path, log_dir: Path, *,
                 env: Mapping[str, str] | None = None, timeout: float = 30.0, attempts: int = 3,
                 extra_args: Sequence[str] = ()) -> Server:
    """Start and wait for health; on a port taken meanwhile by someone else, again on new ports."""
    for attempt in range(attempts):
        try:
            return _start_server(name, executable, app_id, resources, log_dir, env=env, timeout=timeout,
                                 extra_args=extra_args)
        except RuntimeError as exc:
            if "in use" not in str(exc) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _start_server(name: str, executable: Sequence[str], app_id: str, resources: Path, log_dir: Path, *,
                  env: Mapping[str, str] | None, timeout: float, extra_args: Sequence[str] = ()) -> Server:
    ports = {k: free_port() for k in ("http", "grpc", "metrics", "internal", "public")}
    log_path = log_dir / f"{name}.log"
    started = time.perf_counter()
    with log_path.open("wb") as log:
        proc = subprocess.Popen([*executable, *daprd_flags(app_id, resources, ports), *extra_args], stdout=log,
                                stderr=subprocess.STDOUT, env=clean_env(env), cwd=log_dir,
                                start_new_session=True)
    server = Server(name, proc, ports, log_path, started)
    try:
        _wait_ready(server, timeout)
    except BaseException:
        server.stop()
        raise
    return server


@dataclasses.dataclass
class Pair:
    daprd: Server
    parley: Server

    def both(self) -> tuple[Server, Server]:
        return self.daprd, self.parley

    def stop(self) -> None:
        for server in self.both():
            server.stop()


def start_pair(daprd: Path, label: str, app_id: str, resources: Path, log_dir: Path, *,
               env: Mapping[str, str] | None = None, extra_args: Sequence[str] = ()) -> Pair:
    """daprd and parley started side by side (concurrently: the slower decides the wait);
    ``extra_args`` are given to both after the usual flags (e.g. ``--config FILE``)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        d = pool.submit(start_server, f"daprd-{label}", [str(daprd)], app_id, resources, log_dir, env=env,
                        extra_args=extra_args)
        p = pool.submit(start_server, f"parley-{label}", parley_argv(), app_id, resources, log_dir, env=env,
                        extra_args=extra_args)
        errors = []
        servers: list[Server] = []
        for fut in (d, p):
            try:
                servers.append(fut.result())
            except Exception as exc:
                errors.append(exc)
        if errors:
            for server in servers:
                server.stop()
            raise errors[0]
    return Pair(servers[0], servers[1])
