"""Idle RSS, RSS after load and CPU per request of the sidecar with glibc malloc settings, alternating.

    python -m bench.malloc_env [--rounds 2] [--seconds 3] [--env NAME=VALUE ...]
    # default variants: none, MALLOC_ARENA_MAX=2, MALLOC_ARENA_MAX=1

Each variant is this checkout started with the extra environment (echo Component), pinned to CPU 0
with its load generator on CPU 1 (as ``bench.cpu_per_request``). Per start: VmRSS one second after
ready (idle), after 16 connections of HTTP alpha1 echo (``wrk``), after 16 concurrent gRPC alpha1
echo calls (``bench.grpc_load``), and the server's CPU time per 1,000 requests of each load. Starts
alternate (a, b, c, c, b, a, …) so that a neighbour's load falls on every variant alike; the means
over the rounds are printed with the load average. The question it answers: does an image
``ENV`` such as ``MALLOC_ARENA_MAX`` (grpcio's and libuv's threads each get a malloc arena) cut
memory without costing CPU per request.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench import harness, startup
from bench.cpu_per_request import SCENARIOS, grpc_count, wrk_count

_FIGURES = ("idle MB", "after HTTP MB", "after gRPC MB", "HTTP CPU s/1000", "gRPC CPU s/1000", "HTTP req/s", "gRPC req/s")


def one_start(resources: Path, env: dict[str, str], seconds: float) -> tuple[float, ...]:
    ports = {k: harness.free_port() for k in ("http", "grpc", "metrics", "public")}
    argv = harness.sidecar_argv(ports["http"], ports["grpc"], ports["metrics"], ports["public"], resources)
    http, grpc = SCENARIOS[0], next(s for s in SCENARIOS if s.transport == "grpc" and s.kind == "a1")
    with harness.serve(["taskset", "-c", "0", *argv], f"http://127.0.0.1:{ports['http']}/v1.0/healthz", "",
                       env=env) as server:
        time.sleep(1.0)
        idle = server.rss_mb
        cpu0 = harness.cpu_seconds(server.proc.pid)
        done, rps, _ = wrk_count(f"http://127.0.0.1:{ports['http']}{http.path()}", http.body(), 16, seconds)
        cpu1 = harness.cpu_seconds(server.proc.pid)
        after_http = server.rss_mb
        grpc_done, grpc_rps, _ = grpc_count(f"127.0.0.1:{ports['grpc']}", grpc.kind, 16, seconds)
        cpu2 = harness.cpu_seconds(server.proc.pid)
        return (idle, after_http, server.rss_mb, (cpu1 - cpu0) / done * 1000, (cpu2 - cpu1) / grpc_done * 1000,
                rps, grpc_rps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="one variant per flag (default: MALLOC_ARENA_MAX=2 and =1)")
    args = parser.parse_args()
    variants: dict[str, dict[str, str]] = {"none": {}}
    for item in args.env or ["MALLOC_ARENA_MAX=2", "MALLOC_ARENA_MAX=1"]:
        name, _, value = item.partition("=")
        variants[item] = {name: value}
    results: dict[str, list[tuple[float, ...]]] = {name: [] for name in variants}
    print(f"load average before: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        resources = startup.write_components(Path(tmp), "echo")
        order = list(variants)
        for i in range(args.rounds):
            for name in order if i % 2 == 0 else order[::-1]:
                results[name].append(one_start(resources, variants[name], args.seconds))
    print(f"load average after: {os.getloadavg()}")
    for name, rows in results.items():
        means = [sum(row[j] for row in rows) / len(rows) for j in range(len(_FIGURES))]
        print(f"{name:20} " + "; ".join(f"{label} {value:.3f}" if "CPU" in label else f"{label} {value:.1f}"
                                       for label, value in zip(_FIGURES, means, strict=True)))


if __name__ == "__main__":
    main()
