"""What tracing costs the sidecar on the hot path: alpha2 echo over HTTP at 16 connections, tracing
off vs a Configuration's ``samplingRate`` 0, 0.01 and 1 (spans over OTLP/HTTP to a real Jaeger v2
when it is built, else to a local sink answering 200), and idle RSS of each (issue #17, Measure).

    python -m bench.tracing_cost [--seconds 2] [--rounds 10] [--rates 0,0.01,1] [--backend jaeger|sink] [--env N=V]
                                 [--control] [--no-pin] [--baseline-src DIR]

How, and why so: req/s and CPU time per request of one sidecar move by ±30 % between runs on a
shared two-core machine, and CPU per request rises with the machine's load (a preempted sidecar
comes back to cold caches), so cases measured minutes apart differ by more than the few per cent
sought. So every case's sidecar is started once and kept running, and the load moves between them
in short slices, round after round (a different order each round): a case's figure is compared with
off's from the same round, seconds apart, and the median of those paired ratios is reported.
``--control`` adds a second tracing-off sidecar ("off again"): its ratios show how far the method
itself wanders. The sidecars run on CPU 0, wrk and the trace backend (this process's children) on
CPU 1 (``--no-pin``: anywhere), so the backend's work is not counted as the sidecar's, nor does it
take the sidecar's core. CPU per request is the sidecar process's CPU (all its threads: the batch
exporter's too) from one of its slices to its next, less what it uses idle meanwhile (measured before
the rounds), over the requests of its slice: a batch exported after its slice still counts. ``--baseline-src DIR`` measures every case again with the
sidecar of another checkout's ``sidecar/`` directory ("before …"), against the same "off".
Target: sampling 0.01 ≥ 0.95 of off's throughput.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from bench import harness

BODY = json.dumps({"inputs": [{"messages": [{"ofUser": {"content": [{"text": "Please write a witty haiku about "
                                                                              "the Dapr framework"}]}}]}]})
PATH = "/v1.0-alpha2/conversation/echo/converse"
CONNECTIONS = 16
SIDECAR_CPU, LOAD_CPU = 0, 1
DRAIN_S = 5.5
"""Wait after the last round: the batch processor exports what is left within 5 s."""
IDLE_S = 3.0


def cpu_ns(pid: int) -> int:
    """CPU time of all ``pid``'s threads so far, in ns (``schedstat``: finer than ``stat``'s 10 ms ticks)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{task}/schedstat") as f:
            total += int(f.read().split()[0])
    return total


class _Sink(http.server.BaseHTTPRequestHandler):
    """Accepts every OTLP/HTTP export and discards it: the cheapest backend there is."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def collector(workdir: Path, backend: str) -> Iterator[tuple[str, str]]:
    """(host:port of an OTLP/HTTP receiver, what it is): Jaeger when asked for and built, else the sink."""
    from tests.observability.jaeger import find_jaeger, start_jaeger

    binary, _ = find_jaeger()
    if backend == "jaeger" and binary is not None:
        jaeger = start_jaeger(binary, workdir)
        try:
            yield jaeger.otlp_http, "Jaeger v2 (OTLP/HTTP)"
        finally:
            jaeger.stop()
        return
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", "a local sink answering 200"
    finally:
        server.shutdown()


def config_file(workdir: Path, rate: str, address: str) -> Path:
    path = workdir / f"tracing-{rate}.yaml"
    path.write_text("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: t\nspec:\n"
                    f"  tracing:\n    samplingRate: \"{rate}\"\n    otel:\n      endpointAddress: \"{address}\"\n"
                    "      isSecure: false\n      protocol: http\n")
    return path


def _start(stack: contextlib.ExitStack, extra: list[str], env: dict[str, str], pin: bool) -> harness.Server:
    http, grpc, metrics, public = (harness.free_port() for _ in range(4))
    argv = [*harness.sidecar_argv(http, grpc, metrics, public, harness.ROOT / "examples" / "components"), *extra]
    if pin:  # taskset execs the sidecar: the pid stays the sidecar's
        argv = ["taskset", "-c", str(SIDECAR_CPU), *argv]
    return stack.enter_context(harness.serve(argv, f"http://127.0.0.1:{http}/v1.0/healthz",
                                             f"http://127.0.0.1:{http}{PATH}", env=env))


def _row(name: str, rps: list[float], cpu: list[float], off_rps: list[float], off_cpu: list[float],
         rss: float) -> str:
    rps_ratio = [a / b for a, b in zip(rps, off_rps, strict=True)]
    cpu_ratio = [a / b for a, b in zip(cpu, off_cpu, strict=True)]
    return (f"{name:20} {statistics.median(rps):8.0f} {statistics.median(rps_ratio):7.3f} "
            f"{min(rps_ratio):6.2f}-{max(rps_ratio):4.2f} {statistics.median(cpu):8.0f} "
            f"{statistics.median(cpu_ratio):7.3f} {min(cpu_ratio):6.2f}-{max(cpu_ratio):4.2f} {rss:8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=2, help="length of one slice of load (whole seconds: wrk's)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--rates", default="0,0.01,1",
                        help="samplingRate values to measure, comma-separated (0.0000001: traced, never sampled)")
    parser.add_argument("--backend", choices=("jaeger", "sink"), default="jaeger",
                        help="where spans go (jaeger: the sink when Jaeger is not built)")
    parser.add_argument("--control", action="store_true", help="add a second tracing-off case: the method's noise")
    parser.add_argument("--no-pin", dest="pin", action="store_false", help="leave every process on any CPU")
    parser.add_argument("--baseline-src", type=Path, help="a checkout's sidecar/ directory: every case again with it")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="every sampling case again with these variables too (e.g. OTEL_BSP_SCHEDULE_DELAY=250)")
    parser.add_argument("--raw", type=Path, help="write every slice's req/s and CPU µs per request to this JSON file")
    args = parser.parse_args()
    pin = args.pin and hasattr(os, "sched_setaffinity") and shutil.which("taskset") is not None \
        and len(os.sched_getaffinity(0)) >= 2
    if pin:  # wrk and the backend are this process's children (or threads): they inherit CPU 1
        os.sched_setaffinity(0, {LOAD_CPU})
    with tempfile.TemporaryDirectory() as tmp, collector(Path(tmp), args.backend) as (address, backend), \
            contextlib.ExitStack() as stack:
        work = Path(tmp)
        cases: dict[str, tuple[list[str], dict[str, str]]] = {"off": ([], {})}
        if args.control:
            cases["off again"] = ([], {})
        for rate in args.rates.split(","):
            cases[f"sampling {rate}"] = (["--config", str(config_file(work, rate, address))], {})
            if args.env:
                cases[f"sampling {rate} +env"] = (["--config", str(config_file(work, rate, address))],
                                                  dict(item.split("=", 1) for item in args.env))
        if args.baseline_src is not None:  # every case again, with the other checkout's sidecar
            before = {"PYTHONPATH": str(args.baseline_src.resolve())}
            cases.update({f"before {name}": (extra, before) for name, (extra, _) in list(cases.items())
                          if name != "off again"})
        servers = {name: _start(stack, extra, env, pin) for name, (extra, env) in cases.items()}
        for server in servers.values():
            harness.wrk(server.url, BODY, connections=CONNECTIONS, seconds=1)  # warm-up
        time.sleep(0.5)
        idle = {name: server.rss_mb for name, server in servers.items()}
        # A sidecar uses a little CPU while it waits (timers: about 2 ms a second), and each one
        # waits through the other cases' slices: that is measured here and taken out below.
        start = {name: (cpu_ns(server.proc.pid), time.monotonic()) for name, server in servers.items()}
        time.sleep(IDLE_S)
        idle_rate = {name: (cpu_ns(server.proc.pid) - start[name][0]) / (time.monotonic() - start[name][1])
                     for name, server in servers.items()}
        rps: dict[str, list[float]] = {name: [] for name in cases}
        marks: dict[str, list[tuple[int, float]]] = {name: [] for name in cases}
        order = list(cases)
        for round_ in range(args.rounds):
            order = order[1:] + order[:1] if round_ else order
            for name in order:
                server = servers[name]
                marks[name].append((cpu_ns(server.proc.pid), time.monotonic()))
                load = harness.wrk(server.url, BODY, connections=CONNECTIONS, seconds=args.seconds)
                if load.errors:
                    raise RuntimeError(f"{load.errors} errors under load in case {name}")
                rps[name].append(load.rps)
        time.sleep(DRAIN_S)
        for name, server in servers.items():
            marks[name].append((cpu_ns(server.proc.pid), time.monotonic()))
    cpu = {name: [(b[0] - a[0] - idle_rate[name] * max(0.0, b[1] - a[1] - args.seconds)) / (r * args.seconds) / 1e3
                  for a, b, r in zip(points[:-1], points[1:], rps[name], strict=True)]
           for name, points in marks.items()}
    if args.raw is not None:
        args.raw.write_text(json.dumps({"rps": rps, "cpu_us": cpu, "order": list(cases)}))
    print(f"alpha2 echo, {CONNECTIONS} connections, {args.rounds} rounds of {args.seconds} s slices; spans to "
          f"{backend}; " + (f"sidecars on CPU {SIDECAR_CPU}, wrk and backend on CPU {LOAD_CPU}" if pin else "unpinned"))
    print("ratios: median over rounds of (case / off in the same round), with their min-max")
    print(f"{'case':20} {'req/s':>8} {'vs off':>7} {'range':>11} {'CPU µs':>8} {'vs off':>7} {'range':>11} "
          f"{'idle RSS':>8}")
    for name in cases:
        print(_row(name, rps[name], cpu[name], rps["off"], cpu["off"], idle[name]))
    print(f"load average during the run: {os.getloadavg()[0]:.2f} (1 min, at its end)")
    print("target: sampling 0.01 ≥ 0.95 of off's throughput (≤ 1.05 of its CPU per request)")


if __name__ == "__main__":
    main()
