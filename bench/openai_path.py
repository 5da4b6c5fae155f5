"""Goal 2 of issue #18: what each server's ``conversation.openai`` adds over calling the fake directly.

    python -m bench.openai_path [--seconds 3] [--rounds 2] [--baseline DIR] [--python PATH] [--no-daprd]

One local fake of OpenAI (``tests/conformance/fake_openai.py``, its own process), the real daprd
and parley (the Components of ``bench.vs_daprd``), all started once. In one run, interleaved, with
``wrk`` (closed loop, one thread) at 1 and 16 connections: the fake called directly with an OpenAI
chat body, and each server's alpha2 converse to its ``openai`` Component. Two placements:

- unpinned: every process may run on both cores;
- pinned: the servers on CPU 0 (every thread, as ``taskset -a -p``), the fake and wrk on CPU 1,
  as a sidecar under a one-core limit runs next to its upstream.

In each round the paths run one after the other (direct, daprd, parley; the order rotates per
round), so a neighbour's load falls on all alike. Added latency = the server's p50/p99 minus the
direct path's in the same round; the table gives the median over rounds (a busy moment on a shared
machine makes a mean meaningless). Also printed: each server's CPU time per
request (utime+stime from ``/proc/<pid>/stat`` over the window), steadier than latency on a shared
machine. ``--baseline DIR`` adds parley from another checkout as ``base`` for an A/B; ``--python PATH``
adds ``py``, this checkout's parley on that interpreter (``bench.shipped_python``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench import harness, vs_daprd

SERVER_CPU, LOAD_CPU = 0, 1
CONNECTIONS = (1, 16)
PLACEMENTS = ("unpinned", "pinned")


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.openai_path")
    parser.add_argument("--seconds", type=float, default=3.0, help="per wrk window")
    parser.add_argument("--rounds", type=int, default=2, help="windows per path, placement and connections")
    harness.add_server_args(parser)
    args = parser.parse_args()
    servers, daprd_bin = harness.servers(args)
    load_before = os.getloadavg()[0]
    paths = ["direct", *servers]
    got: dict[tuple[str, int, str], list[harness.Load]] = {}
    cpu: dict[tuple[str, int, str], list[float]] = {}
    fake_port = harness.free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        fake = stack.enter_context(harness.serve(
            [sys.executable, "-m", "tests.conformance.fake_openai", str(fake_port)], f"{fake_url}/health",
            f"{fake_url}/v1/chat/completions"))
        resources = vs_daprd.components(Path(tmp), fake_port)
        running: dict[str, harness.Server] = {}
        for name in servers:
            argv, ports = harness.server_argv(name, daprd_bin, resources, harness.server_python(args, name))
            url = f"http://127.0.0.1:{ports['http']}"
            env = harness.server_env(args, name)
            running[name] = stack.enter_context(harness.serve(
                argv, f"{url}/v1.0/healthz", f"{url}{vs_daprd.SCENARIOS[4].path()}", env=env))
        for placement in PLACEMENTS:
            pinned = placement == "pinned"
            for server in running.values():
                harness.pin(server.proc.pid, {SERVER_CPU} if pinned else {SERVER_CPU, LOAD_CPU})
            harness.pin(fake.proc.pid, {LOAD_CPU} if pinned else {SERVER_CPU, LOAD_CPU})
            for connections in CONNECTIONS:
                for round_ in range(args.rounds + 1):  # round 0 warms up (pools, caches) and is not counted
                    shift = round_ % len(paths)
                    for path in paths[shift:] + paths[:shift]:
                        if path == "direct":
                            url, body, pid = fake.url, vs_daprd.CHAT_BODY, None
                        else:
                            url, body, pid = running[path].url, vs_daprd.A2_BODY, running[path].proc.pid
                        before = harness.cpu_seconds(pid) if pid else 0.0
                        load = harness.wrk(url, body, connections=connections,
                                           seconds=1.0 if round_ == 0 else args.seconds,
                                           cpus=str(LOAD_CPU) if pinned else None)
                        spent = harness.cpu_seconds(pid) - before if pid else 0.0
                        if load.errors:
                            sys.exit(f"{path} {placement} {connections}: {load.errors} errors")
                        if round_:
                            key = (placement, connections, path)
                            got.setdefault(key, []).append(load)
                            cpu.setdefault(key, []).append(spent * 1e6 / max(1, load.requests))
                            print(f"  {placement:8} {connections:2} conn {path:6} {load.rps:7.0f} req/s  "
                                  f"p50 {load.p50_ms:6.2f} ms  p99 {load.p99_ms:6.2f} ms"
                                  + (f"  {cpu[key][-1]:5.0f} us CPU/req" if pid else ""), flush=True)
    report(got, cpu, servers, args, load_before)


def report(got: dict[tuple[str, int, str], list[harness.Load]], cpu: dict[tuple[str, int, str], list[float]],
           servers: list[str], args: argparse.Namespace, load_before: float) -> None:
    print(f"\n# bench.openai_path: {args.seconds:g} s x {args.rounds} rounds per path, load average before "
          f"{load_before:.1f}, after {os.getloadavg()[0]:.1f}")
    head = "| placement | conns | direct p50 / p99 ms |"
    for name in servers:
        head += f" {name} added p50 / p99 ms | {name} µs CPU/req |"
    ratios = [n for n in ("parley", "py") if n in servers] if "daprd" in servers else []
    for name in ratios:
        head += f" {name}/daprd added p50 | added p99 |"
    print(head)
    print("|" + " --- |" * (head.count("|") - 1))
    for placement in PLACEMENTS:
        for connections in CONNECTIONS:
            direct = got[(placement, connections, "direct")]
            row = (f"| {placement} | {connections} | {statistics.median(d.p50_ms for d in direct):.2f} / "
                   f"{statistics.median(d.p99_ms for d in direct):.2f} |")
            added: dict[str, tuple[float, float]] = {}
            for name in servers:
                loads = got[(placement, connections, name)]
                # paired by round: each window's figure minus the direct path's of the same round
                p50 = statistics.median(x.p50_ms - d.p50_ms for x, d in zip(loads, direct, strict=True))
                p99 = statistics.median(x.p99_ms - d.p99_ms for x, d in zip(loads, direct, strict=True))
                added[name] = (p50, p99)
                row += f" {p50:+.2f} / {p99:+.2f} | {statistics.median(cpu[(placement, connections, name)]):.0f} |"
            for name in ratios:
                (p50, p99), (d50, d99) = added[name], added["daprd"]
                row += f" {p50 / d50:.2f} | {p99 / d99:.2f} |"
            print(row)


if __name__ == "__main__":
    main()
