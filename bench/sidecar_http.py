"""Sidecar vs the floor: alpha1 echo over HTTP, idle RSS, time to ready (issue: sidecar).

    python -m bench.sidecar_http [--seconds 5]

Targets: throughput ratio ≥ 0.5 of the floor, idle RSS ≤ 60 MB, ready ≤ 1.5 s.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from bench import harness

BODY = json.dumps({"inputs": [{"content": "Please write a witty haiku about the Dapr distributed programming framework"}]})
REPLY = '{"outputs":[{"result":"Please write a witty haiku about the Dapr distributed programming framework"}]}'


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    results = {}
    floor_port = harness.free_port()
    with harness.serve([sys.executable, "-m", "bench.floor", str(floor_port), str(len(REPLY))],
                       f"http://127.0.0.1:{floor_port}/healthz",
                       f"http://127.0.0.1:{floor_port}/v1.0-alpha1/conversation/echo/converse") as floor:
        time.sleep(0.5)
        results["floor"] = {c: harness.wrk(floor.url, BODY, connections=c, seconds=args.seconds) for c in (1, 16)}
        results["floor_rss"] = floor.rss_mb
    ports = [harness.free_port() for _ in range(4)]
    argv = harness.sidecar_argv(*ports, harness.ROOT / "examples" / "components")
    with harness.serve(argv, f"http://127.0.0.1:{ports[0]}/v1.0/healthz",
                       f"http://127.0.0.1:{ports[0]}/v1.0-alpha1/conversation/echo/converse") as parley:
        time.sleep(1.0)
        idle = parley.rss_mb
        results["parley"] = {c: harness.wrk(parley.url, BODY, connections=c, seconds=args.seconds) for c in (1, 16)}
        loaded = parley.rss_mb
        ready = parley.ready_s
    print(f"{'case':28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name in ("floor", "parley"):
        for c, load in results[name].items():
            print(f"{name + f' ({c} conn)':28} {load.rps:9.0f} {load.p50_ms:8.2f} {load.p99_ms:8.2f} {load.errors:7d}")
    for c in (1, 16):
        f, p = results["floor"][c], results["parley"][c]
        print(f"ratio parley/floor at {c:2d} conn: throughput {p.rps / f.rps:.2f} (target ≥ 0.5), "
              f"p50 {p.p50_ms / f.p50_ms:.2f}x, p99 {p.p99_ms / f.p99_ms:.2f}x")
    print(f"parley RSS idle {idle:.1f} MB (target ≤ 60), under load {loaded:.1f} MB; floor {results['floor_rss']:.1f} MB")
    print(f"parley exec → first 204 from healthz: {ready:.2f} s (target ≤ 1.5)")


if __name__ == "__main__":
    main()
