"""parley ``--workers 1`` and ``--workers 2`` next to daprd, unpinned, 16 connections (issue #18, goal 5).

    python -m bench.workers [--seconds 3] [--rounds 2] [--workers 2] [--only LABEL]

Scenarios: alpha1 and alpha2 echo over HTTP (wrk, one thread, as bench.vs_daprd) and gRPC
(bench.grpc_load, 16 concurrent calls over 16 connections: the kernel balances connections between
workers, so the calls multiplexed on one gRPC channel all reach one worker). Nothing is pinned: each server may use every core, and
so does the load generator. The servers run one after the other, ``rounds`` times in alternating
order; the figures are the means. For each run: requests per second, p50/p99, and CPU seconds per
1,000 requests summed over the server's processes (utime + stime from /proc, steadier than
throughput on a shared machine).

Memory, idle (after one warm-up request per worker) and after the loads, per process: RSS and PSS
(``/proc/PID/smaps_rollup``). PSS divides each shared page among the processes that map it, so
the workers' PSS sum is what the pod pays; RSS counts the pages the workers share (forked after
the imports) once per worker. daprd (``PARLEY_DAPRD`` or tests/daprd/build.sh's cache) is one
process; without it the script measures parley alone.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path

from tests.conformance.servers import daprd_flags, find_daprd

from bench import harness, vs_daprd

SCENARIOS = tuple(s for s in vs_daprd.SCENARIOS if s.kind in ("a1", "a2"))
LOAD = "16 conns"


def processes(pid: int) -> list[int]:
    """``pid`` and its children (parley's worker 1 and the workers it forked)."""
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [pid, *(int(c) for c in children)]
    return [pid]


def rollup(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of ``pid`` in MB, from ``/proc/PID/smaps_rollup``."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, rest = line.partition(":")
        values[name] = int(rest.split()[0]) / 1024
    return values["Rss"], values["Pss"]


def memory(name: str, pid: int) -> str:
    pids = processes(pid)
    figures = [rollup(p) for p in pids]
    parts = [f"{f'worker {i + 1}' if len(pids) > 1 else 'one process'} (pid {p}): RSS {rss:5.1f} PSS {pss:5.1f}"
             for i, (p, (rss, pss)) in enumerate(zip(pids, figures, strict=True))]
    return (f"  {name:10} total RSS {sum(r for r, _ in figures):6.1f} MB, PSS {sum(p for _, p in figures):6.1f} MB"
            f"  ({'; '.join(parts)})")


def cpu(pid: int) -> float:
    return sum(harness.cpu_seconds(p) for p in processes(pid))


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.workers")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", action="append", default=[])
    args = parser.parse_args()
    scenarios = tuple(s for s in SCENARIOS if not args.only or any(o in s.label for o in args.only))
    print(f"load average before: {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores, unpinned")
    daprd, why = find_daprd()
    if daprd is None:
        print(f"no daprd ({why}): parley only")
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        resources = vs_daprd.components(Path(tmp), harness.free_port())
        servers: dict[str, tuple[list[str], dict[str, int]]] = {}
        for name in ("daprd", "parley-1", f"parley-{args.workers}"):
            ports = {k: harness.free_port() for k in ("http", "grpc", "metrics", "public", "internal")}
            if name == "daprd":
                if daprd is None:
                    continue
                argv = [str(daprd), *daprd_flags("bench", resources, ports), "--log-level", "warn"]
            else:
                argv = [*harness.sidecar_argv(ports["http"], ports["grpc"], ports["metrics"], ports["public"],
                                              resources), "--workers", name.split("-")[1]]
            servers[name] = (argv, ports)
        running: dict[str, harness.Server] = {}
        for name, (argv, ports) in servers.items():
            url = f"http://127.0.0.1:{ports['http']}"
            running[name] = stack.enter_context(harness.serve(argv, f"{url}/v1.0/healthz", url))
        time.sleep(1.0)
        for _, ports in servers.values():  # a second of answers from every worker before "idle"
            harness.wrk(f"http://127.0.0.1:{ports['http']}{SCENARIOS[0].path()}", SCENARIOS[0].body(),
                        connections=4, seconds=1)
        print("memory, idle:")
        for name, server in running.items():
            print(memory(name, server.proc.pid))
        names = list(servers)
        table: list[str] = []
        for scenario in scenarios:
            results: dict[str, list[tuple[harness.Load, float]]] = {n: [] for n in names}
            for round_ in range(args.rounds):
                for name in names if round_ % 2 == 0 else reversed(names):
                    ports = servers[name][1]
                    pid = running[name].proc.pid
                    cpu_before = cpu(pid)
                    if scenario.transport == "http":
                        load = vs_daprd.run_load(scenario, LOAD, f"http://127.0.0.1:{ports['http']}", "",
                                                 args.seconds, 0.0)
                    else:
                        load = vs_daprd.python_load("bench.grpc_load", f"127.0.0.1:{ports['grpc']}", scenario.kind,
                                                    "--concurrency", "16", "--channels", "16", seconds=args.seconds)
                    served = load.rps * args.seconds  # the loads time their own window; warm-up excluded
                    per_1000 = (cpu(pid) - cpu_before) / served * 1000 if served else float("nan")
                    results[name].append((load, per_1000))
                    print(f"  {name:10} {scenario.label:18} {load.rps:8.0f} req/s  p50 {load.p50_ms:6.2f} ms  "
                          f"p99 {load.p99_ms:6.2f} ms  CPU {per_1000:5.3f} s/1000 req  errors {load.errors}",
                          flush=True)
            for name in names:
                mean = vs_daprd.mean([load for load, _ in results[name]])
                cpu_mean = sum(c for _, c in results[name]) / len(results[name])
                table.append(f"| {scenario.label} | {name} | {mean.rps:,.0f} | {mean.p50_ms:.2f} | {mean.p99_ms:.2f} "
                             f"| {cpu_mean:.3f} |")
        print("memory, after the loads:")
        for name, server in running.items():
            print(memory(name, server.proc.pid))
        print("\n| scenario (16 connections, unpinned) | server | req/s | p50 ms | p99 ms | CPU s / 1000 req |")
        print("|---|---|---:|---:|---:|---:|")
        print("\n".join(table))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
