"""What tracing costs on the hot path: alpha2 echo over HTTP at 16 connections, tracing off vs a
Configuration's ``samplingRate`` 0, 0.01 and 1 (OTLP/HTTP to a real Jaeger when it is built, else
to a local sink that accepts every export), and idle RSS of each (issue #17, Measure).

    python -m bench.tracing_cost [--seconds 5] [--rounds 3] [--rates 0,0.01,1] [--baseline-src DIR]

``--baseline-src`` adds a case "before": the sidecar from another checkout's ``sidecar/`` directory
(e.g. a ``git worktree`` of the commit before tracing), to show that tracing off costs nothing.
Cases run in turn, round after round, and each case's median is kept: the machine is shared, and
interleaving spreads its noise over every case alike. Target: ≥ 0.95 of off at sampling 0.01.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import json
import os
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


class _Sink(http.server.BaseHTTPRequestHandler):
    """Accepts every OTLP/HTTP export (when Jaeger is not built): the exporter's cost is what is measured."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def collector(workdir: Path) -> Iterator[tuple[str, str]]:
    """(host:port of an OTLP/HTTP receiver, what it is)."""
    from tests.observability.jaeger import find_jaeger, start_jaeger

    binary, _ = find_jaeger()
    if binary is not None:
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


def run_case(extra: list[str], env: dict[str, str], seconds: float) -> tuple[float, float, float, float]:
    """(req/s, p99 ms, idle RSS MB, CPU µs per request) of one sidecar under ``extra`` flags. CPU per
    request is the steadier figure on a shared machine: another process's load lowers req/s, not it."""
    ports = [harness.free_port() for _ in range(4)]
    argv = [*harness.sidecar_argv(*ports, harness.ROOT / "examples" / "components"), *extra]
    with harness.serve(argv, f"http://127.0.0.1:{ports[0]}/v1.0/healthz",
                       f"http://127.0.0.1:{ports[0]}{PATH}", env=env) as parley:
        harness.wrk(parley.url, BODY, connections=CONNECTIONS, seconds=1)  # warm-up
        time.sleep(0.5)
        idle = parley.rss_mb
        cpu = harness.cpu_seconds(parley.proc.pid)
        load = harness.wrk(parley.url, BODY, connections=CONNECTIONS, seconds=seconds)
        cpu = harness.cpu_seconds(parley.proc.pid) - cpu
        if load.errors:
            raise RuntimeError(f"{load.errors} errors under load with {extra}")
    return load.rps, load.p99_ms, idle, cpu / (load.rps * max(1, round(seconds))) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rates", default="0,0.01,1",
                        help="samplingRate values to measure, comma-separated (0.0000001: traced, never sampled)")
    parser.add_argument("--baseline-src", type=Path, help="a checkout's sidecar/ directory to measure as 'before'")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, collector(Path(tmp)) as (address, backend):
        work = Path(tmp)
        cases: dict[str, tuple[list[str], dict[str, str]]] = {"off": ([], {})}
        if args.baseline_src is not None:
            cases["before"] = ([], {"PYTHONPATH": str(args.baseline_src.resolve())})
        for rate in args.rates.split(","):
            cases[f"sampling {rate}"] = (["--config", str(config_file(work, rate, address))], {})
        results: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in cases}
        order = list(cases)
        for round_ in range(args.rounds):
            # A different order each round: a neighbour's burst or Jaeger still ingesting the
            # sampling-1 case's spans must not always land on the same case.
            order = order[1:] + order[:1] if round_ else order
            for name in order:
                extra, env = cases[name]
                results[name].append(run_case(extra, env, args.seconds))
    off = statistics.median(r[0] for r in results["off"])
    off_cpu = statistics.median(r[3] for r in results["off"])
    print(f"alpha2 echo, {CONNECTIONS} connections, {args.rounds} rounds of {args.seconds:g} s, "
          f"medians; spans to {backend}")
    print(f"{'case':14} {'req/s':>8} {'vs off':>7} {'p99 ms':>7} {'CPU µs/req':>11} {'vs off':>7} {'idle RSS MB':>12}")
    for name, runs in results.items():
        rps = statistics.median(r[0] for r in runs)
        p99 = statistics.median(r[1] for r in runs)
        rss = statistics.median(r[2] for r in runs)
        cpu = statistics.median(r[3] for r in runs)
        print(f"{name:14} {rps:8.0f} {rps / off:7.3f} {p99:7.2f} {cpu:11.0f} {cpu / off_cpu:7.3f} {rss:12.1f}")
    print("spread of req/s over the rounds (min-max): " + ", ".join(
        f"{name} {min(r[0] for r in runs):.0f}-{max(r[0] for r in runs):.0f}" for name, runs in results.items()))
    print(f"load average during the run: {os.getloadavg()[0]:.2f} (1 min, at its end)")
    print("target: sampling 0.01 ≥ 0.95 of off's throughput (≤ 1.05 of its CPU per request)")


if __name__ == "__main__":
    main()
