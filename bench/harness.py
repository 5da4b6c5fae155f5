"""Shared pieces of the benchmark scripts: start a server process, wait for it, measure it, load it.

Load comes from ``wrk`` (Debian's package) in its own process, always on loopback and bounded in
time. Figures on a shared 2-core machine move by ±20 % between runs, so every script measures its
baseline in the same run and reports ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads) so far, in seconds, from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    # fields[0] is the state (field 3 of proc(5)): utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    ready_s: float

    @property
    def rss_mb(self) -> float:
        return rss_mb(self.proc.pid)


@contextlib.contextmanager
def serve(argv: Sequence[str], health_url: str, url: str, *, env: dict[str, str] | None = None,
          timeout: float = 30.0) -> Iterator[Server]:
    """Run ``argv`` until the block ends; ``ready_s`` is exec → first 2xx from ``health_url``."""
    started = time.perf_counter()
    proc = subprocess.Popen(list(argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})})
    try:
        while True:
            try:
                with urllib.request.urlopen(health_url, timeout=1) as resp:
                    if resp.status < 300:
                        break
            except OSError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited with {proc.returncode}")
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"{argv[0]} not ready after {timeout}s")
            time.sleep(0.01)
        yield Server(proc, url, time.perf_counter() - started)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclasses.dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int = 0
    """Requests answered in the window (wrk's count; 0 where the load generator does not say)."""


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if m is None:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def wrk(url: str, body: str, *, connections: int, seconds: float = 5.0, threads: int = 1,
        cpus: str | None = None) -> Load:
    """POST ``body`` to ``url`` as fast as possible; requires Debian's ``wrk``. ``cpus`` pins wrk
    (``taskset -c CPUS``)."""
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        body_lua = body.replace("\\", "\\\\").replace('"', '\\"')
        script.write(f'wrk.method = "POST"\nwrk.body = "{body_lua}"\n'
                     'wrk.headers["Content-Type"] = "application/json"\n')
    try:
        pin = ["taskset", "-c", cpus] if cpus else []
        out = subprocess.run(
            [*pin, "wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", script.name, url],
            capture_output=True, text=True, check=True, timeout=seconds + 30).stdout
    finally:
        os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(g) for g in m.groups())
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return Load(rps, p50, p99, errors, done)


def parley_python() -> str:
    """The interpreter that runs parley: ``PARLEY_BENCH_PYTHON`` (the image's kind of build, from
    ``bench.shipped_python``) or the one running the bench."""
    return os.environ.get("PARLEY_BENCH_PYTHON") or sys.executable


def python_version(python: str | None = None) -> str:
    """``3.11.2 (/usr/bin/python3.11)``: the version and real executable of ``python`` (default:
    :func:`parley_python`), for the benches' reports."""
    out = subprocess.run([python or parley_python(), "-c",
                          "import os, platform, sys; print(platform.python_version(), os.path.realpath(sys.executable))"],
                         check=True, capture_output=True, text=True).stdout.split()
    return f"{out[0]} ({out[1]})"


def sidecar_argv(http: int, grpc: int, metrics: int, public: int, resources: Path,
                 python: str | None = None) -> list[str]:
    return [python or parley_python(), "-m", "parley_sidecar", "--app-id", "bench", "--resources-path", str(resources),
            "--dapr-http-port", str(http), "--dapr-grpc-port", str(grpc), "--metrics-port", str(metrics),
            "--dapr-public-port", str(public), "--dapr-listen-addresses", "127.0.0.1",
            "--metrics-listen-address", "127.0.0.1", "--dapr-public-listen-address", "127.0.0.1",
            "--log-level", "warn"]


def pin(pid: int, cpus: set[int]) -> None:
    """Set the CPU affinity of every thread of ``pid`` (``taskset -a -p``); threads it starts later
    inherit it from their parent thread."""
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task), cpus)


def add_server_args(parser: argparse.ArgumentParser) -> None:
    """``--no-daprd`` and ``--baseline DIR``, as every script comparing daprd and parley takes them."""
    parser.add_argument("--no-daprd", action="store_true", help="parley only (no daprd needed)")
    parser.add_argument("--baseline", type=Path, default=None, metavar="DIR",
                        help="also run parley from this checkout, as 'base'")
    parser.add_argument("--python", default=None, metavar="PATH",
                        help="also run this checkout's parley on that interpreter, as 'py' "
                             "(e.g. the images' kind of build: python -m bench.shipped_python)")


def servers(args: argparse.Namespace) -> tuple[list[str], Path | None]:
    """The servers :func:`add_server_args` asked for, in the order the scripts print them (daprd,
    base, parley), and daprd's binary; exits when daprd is asked for and not built."""
    names = ["parley"] if args.no_daprd else ["daprd", "parley"]
    if args.baseline is not None:
        names.insert(-1, "base")
    if getattr(args, "python", None):
        names.append("py")
    if args.no_daprd:
        return names, None
    from tests.conformance.servers import find_daprd  # the tests' own lookup, only when daprd runs

    daprd, missing = find_daprd()
    if daprd is None:
        sys.exit(missing)
    return names, daprd


def server_argv(name: str, daprd: Path | None, resources: Path,
                python: str | None = None) -> tuple[list[str], dict[str, int]]:
    """How to start server ``name`` of :func:`servers` (daprd, or parley from either checkout, on
    ``python`` when given: see :func:`server_python`) on free loopback ports, and those ports
    (``http``, ``grpc``, ``metrics``, ``internal``, ``public``)."""
    ports = {k: free_port() for k in ("http", "grpc", "metrics", "internal", "public")}
    if name == "daprd":
        from tests.conformance.servers import daprd_flags

        assert daprd is not None, "servers() found no daprd"
        return [str(daprd), *daprd_flags("bench", resources, ports), "--log-level", "warn"], ports
    return sidecar_argv(ports["http"], ports["grpc"], ports["metrics"], ports["public"], resources, python), ports


def server_python(args: argparse.Namespace, name: str) -> str | None:
    """The interpreter of server ``name``: ``--python``'s for ``py``, else the default."""
    return args.python if name == "py" else None


def server_env(args: argparse.Namespace, name: str) -> dict[str, str] | None:
    """The environment of server ``name``: the baseline's checkout first on the path for ``base``."""
    return {"PYTHONPATH": str(args.baseline.resolve() / "sidecar")} if name == "base" else None
