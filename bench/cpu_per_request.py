"""Sidecar CPU time per echo request, parley next to the real daprd: the A/B figure least moved by load.

    python -m bench.cpu_per_request [--seconds 4] [--runs 2] [--connections 16] [--only LABEL] [--no-daprd]
                                    [--baseline DIR] [--python PATH]

Each server is pinned to CPU 0 (``taskset -c 0``) and its load generator to CPU 1 (``wrk`` for HTTP,
``bench.grpc_load`` for gRPC), as a sidecar under a one-core limit runs. The server's user+system
CPU time (all threads) is read from ``/proc/<pid>/stat`` before and after a closed-loop load and
divided by the requests answered in it. Throughput on a shared 2-core machine moves with the
neighbours' work; CPU time per request moves far less, so this is the figure to compare a change
by. req/s is printed too, with the load average, for the record. Runs alternate between the
servers (daprd, parley, parley, daprd, …) so drifting load falls on both alike.

Scenarios: HTTP alpha1/alpha2 echo and gRPC alpha1/alpha2 echo, the bodies of ``bench.vs_daprd``.
``--baseline DIR`` adds a third server, "base": parley from another checkout (``DIR/sidecar`` first
on ``PYTHONPATH``, e.g. ``git worktree add /tmp/base HEAD~1``), for an A/B of a change in one run.
``--python PATH`` adds "py": this checkout's parley on that interpreter (``bench.shipped_python``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import harness, vs_daprd

SCENARIOS = tuple(s for s in vs_daprd.SCENARIOS if s.kind in ("a1", "a2"))
SERVER_CPU, LOAD_CPU = "0", "1"


def wrk_count(url: str, body: str, connections: int, seconds: float) -> tuple[int, float, int]:
    """Requests answered, req/s and errors of one ``wrk`` run on the load CPU."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
                     'wrk.headers["Content-Type"] = "application/json"\n')
    try:
        out = subprocess.run(["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}",
                              f"-d{max(1, round(seconds))}s", "-s", script.name, url],
                             capture_output=True, text=True, check=True, timeout=seconds + 30).stdout
    finally:
        os.unlink(script.name)
    done = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return done, rps, int(m.group(1)) if m else 0


def grpc_count(target: str, kind: str, connections: int, seconds: float) -> tuple[int, float, int]:
    """Requests answered (the 20 warm-up calls included), req/s and errors of one gRPC load."""
    out = subprocess.run(["taskset", "-c", LOAD_CPU, sys.executable, "-m", "bench.grpc_load", target, kind,
                          "--concurrency", str(connections), "--seconds", str(seconds)],
                         cwd=harness.ROOT, capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    data = json.loads(out.strip().splitlines()[-1])
    return round(data["rps"] * seconds) + 20, float(data["rps"]), int(data["errors"])


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.cpu_per_request")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--runs", type=int, default=2, help="measurements per server and scenario (alternating)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--only", action="append", default=[], metavar="LABEL")
    harness.add_server_args(parser)
    args = parser.parse_args()
    scenarios = [s for s in SCENARIOS if not args.only or any(o in s.label for o in args.only)]
    names, daprd_bin = harness.servers(args)
    load_before = os.getloadavg()[0]
    cpu: dict[tuple[str, str], list[float]] = {}
    rps: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        resources = vs_daprd.components(Path(tmp), harness.free_port())
        running: dict[str, tuple[harness.Server, int, int]] = {}
        for name in names:
            argv, ports = harness.server_argv(name, daprd_bin, resources, harness.server_python(args, name))
            url = f"http://127.0.0.1:{ports['http']}"
            env = harness.server_env(args, name)
            server = stack.enter_context(harness.serve(["taskset", "-c", SERVER_CPU, *argv],
                                                       f"{url}/v1.0/healthz", url, env=env))
            running[name] = (server, ports["http"], ports["grpc"])
        for scenario in scenarios:
            for run in range(args.runs + 1):  # run 0 warms each server up and is not counted
                for name in names if run % 2 == 0 else names[::-1]:
                    server, http, grpc_port = running[name]
                    before = harness.cpu_seconds(server.proc.pid)
                    if scenario.transport == "http":
                        done, r, errors = wrk_count(f"http://127.0.0.1:{http}{scenario.path()}", scenario.body(),
                                                    args.connections, 1.0 if run == 0 else args.seconds)
                    else:
                        done, r, errors = grpc_count(f"127.0.0.1:{grpc_port}", scenario.kind, args.connections,
                                                     1.0 if run == 0 else args.seconds)
                    spent = harness.cpu_seconds(server.proc.pid) - before
                    if errors:
                        sys.exit(f"{name} {scenario.label}: {errors} errors")
                    if run:
                        cpu.setdefault((name, scenario.label), []).append(spent * 1e6 / done)
                        rps.setdefault((name, scenario.label), []).append(r)
    print(f"# bench.cpu_per_request: {args.connections} connections, {args.seconds:g} s x {args.runs} runs, "
          f"servers on CPU {SERVER_CPU}, load on CPU {LOAD_CPU}, load average before {load_before:.1f}, "
          f"after {os.getloadavg()[0]:.1f}")
    print(f"{'scenario':20} " + " ".join(f"{n + ' us/req':>13} {n + ' req/s':>13}" for n in names)
          + ("   parley/daprd CPU" if "daprd" in names else "")
          + ("   parley/base CPU" if "base" in names else "")
          + ("   py/daprd CPU" if "py" in names and "daprd" in names else ""))
    for scenario in scenarios:
        row = f"{scenario.label:20} "
        medians = {}
        for name in names:
            medians[name] = statistics.median(cpu[(name, scenario.label)])
            row += f"{medians[name]:13.0f} {statistics.median(rps[(name, scenario.label)]):13.0f} "
        if "daprd" in names:
            row += f"  {medians['parley'] / medians['daprd']:17.2f}x"
        if "base" in names:
            row += f"  {medians['parley'] / medians['base']:16.2f}x"
        if "py" in names and "daprd" in names:
            row += f"  {medians['py'] / medians['daprd']:13.2f}x"
        print(row)


if __name__ == "__main__":
    main()
