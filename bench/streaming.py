"""Streaming through parley and through LiteLLM's proxy, against the model streaming directly.

    python -m bench.streaming [--seconds 10] [--hold 1000] [--no-litellm] [--hold-only | --no-hold] [--pin]

One paced model (``bench.stream_upstream``: 100 ms to its first token, then 20 chunks 25 ms apart,
OpenAI's SSE) runs in its own process. The same client (``bench.stream_client``, its own process)
streams from it directly, through parley's ``/v1/chat/completions`` (``conversation.openai``
pointed at it) and through LiteLLM's proxy (``openai/…`` with ``api_base`` at it), at 1 and 100
concurrent streams, the 100 both in lock-step and staggered (``LOADS``). What each adds is its
figure minus the direct one, measured in the same run: time to first token and the gap between chunks, p50 and p99. The direct streams are measured
first and again last, and each figure is taken over the lower of the two: a burst of other work
on a shared machine during one direct run would otherwise make a server look faster than the
model it relays (the added figures err on the side of too large, never too small). Then each holds ``--hold`` streams
open at once (a model that sends a chunk a second) and its RSS growth per open stream is read
from /proc (``--hold-only``: that alone, no latency runs). parley's component gets ``maxConnections`` above the stream count: its default pool
(64) would queue the rest, which is the setting a user streaming that much raises too.

``--pin`` puts the server measured (parley, LiteLLM) on CPU 0 and the model and the client on
CPU 1, as ``bench.vs_daprd`` pins daprd and parley: what a server adds is then its own work, not
the two cores shared by three Python processes (and anyone else's work) queueing each other.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.manifests import component_yaml

from bench import harness, litellm_proxy

PEOPLE = ("direct", "parley", "litellm", "direct again")
DIRECT = ("direct", "direct again")


def component(directory: Path, upstream: int, connections: int) -> Path:
    (directory / "openai.yaml").write_text(component_yaml("bench", "conversation.openai", {
        "key": "sk-bench", "model": "gpt-4o-mini", "endpoint": f"http://127.0.0.1:{upstream}/v1",
        "maxConnections": str(connections)}))
    return directory


def litellm_config(directory: Path, upstream: int) -> Path:
    path = directory / "litellm.yaml"
    path.write_text(
        "model_list:\n  - model_name: bench\n    litellm_params:\n      model: openai/gpt-4o-mini\n"
        f"      api_base: http://127.0.0.1:{upstream}/v1\n      api_key: sk-bench\n"
        "litellm_settings:\n  telemetry: false\n  drop_params: true\n  set_verbose: false\n"
        "general_settings:\n  disable_spend_logs: true\n")
    return path


CLIENT_CPUS: list[str] = []
"""``taskset -c 1`` with ``--pin``: the client (and the model) on CPU 1, the server measured on CPU 0."""


STREAM_MS = 600.0
"""One stream's length from the paced model: 100 ms to the first token, then 20 chunks 25 ms apart."""
LOADS: tuple[tuple[str, int, float], ...] = (("1", 1, 0.0), ("100", 100, 0.0), ("100 staggered", 100, STREAM_MS))
"""(row label, concurrent streams, stagger in ms). At 100 streams the client's workers start either
all at once, so the equal streams stay in lock-step (every 25 ms all 100 chunks reach the server in
one burst, and a new stream's first chunk queues behind it: the worst case), or spread evenly over
one stream's length, so chunks arrive spread out as independent users' would."""


def load(url: str, concurrency: int, seconds: float, stagger_ms: float = 0.0) -> dict[str, float]:
    out = subprocess.run([*CLIENT_CPUS, sys.executable, "-m", "bench.stream_client", url, "bench", "--concurrency",
                          str(concurrency), "--seconds", str(seconds), "--stagger-ms", str(stagger_ms)],
                         cwd=harness.ROOT, capture_output=True, text=True, check=True,
                         timeout=seconds + stagger_ms / 1000 + 180).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def hold(url: str, streams: int, pid: int) -> tuple[float, float, int]:
    """RSS (MB) before and with ``streams`` open, and how many failed."""
    before = harness.rss_mb(pid)
    proc = subprocess.Popen([sys.executable, "-m", "bench.stream_client", url, "bench", "--hold", str(streams)],
                            cwd=harness.ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    during = harness.rss_mb(pid) if '"open"' in line else float("nan")
    rest = proc.stdout.read()
    proc.wait(300)
    failed = int(json.loads(rest.strip().splitlines()[-1])["errors"]) if rest.strip() else streams
    return before, during, failed


def _latency_table(people: list[str], results: dict[tuple[str, str], dict[str, float]]) -> None:
    print("\n| streams | who | streams done | errors | TTFT p50 | TTFT p99 | gap p50 | gap p99 | added TTFT p50 / p99 | added gap p50 / p99 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, _, _ in LOADS:
        runs = [results[(person, label)] for person in DIRECT]
        base = {key: min(run[key] for run in runs) for key in ("ttft_p50", "ttft_p99", "gap_p50", "gap_p99")}
        for person in people:
            r = results[(person, label)]
            added = "" if person in DIRECT else (
                f"{r['ttft_p50'] - base['ttft_p50']:+.2f} / {r['ttft_p99'] - base['ttft_p99']:+.2f} ms")
            gap = "" if person in DIRECT else (
                f"{r['gap_p50'] - base['gap_p50']:+.2f} / {r['gap_p99'] - base['gap_p99']:+.2f} ms")
            print(f"| {label} | {person} | {r['streams']:.0f} | {r['errors']:.0f} | {r['ttft_p50']:.2f} ms | "
                  f"{r['ttft_p99']:.2f} ms | {r['gap_p50']:.2f} ms | {r['gap_p99']:.2f} ms | {added} | {gap} |")


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.streaming")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--hold", type=int, default=1000)
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--hold-only", action="store_true", help="only the RSS per open stream")
    parser.add_argument("--no-hold", action="store_true", help="only the latency runs, no RSS figure")
    parser.add_argument("--pin", action="store_true",
                        help="the server measured on CPU 0, the model and the client on CPU 1")
    args = parser.parse_args()
    if args.pin:
        CLIENT_CPUS.extend(["taskset", "-c", "1"])
    people = [p for p in PEOPLE if (p != "litellm" or not args.no_litellm) and not (args.hold_only and p in DIRECT)]
    exe = None if args.no_litellm else litellm_proxy.install()
    results: dict[tuple[str, str], dict[str, float]] = {}
    memory: dict[str, tuple[float, float, int]] = {}
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        phases: tuple[tuple[str, list[str]], ...] = (
            ("latency", []), ("hold", ["--think-ms", "10", "--chunks", "40", "--gap-ms", "1000"]))
        for phase, upstream_args in phases[1:] if args.hold_only else phases[:1] if args.no_hold else phases:
            up = harness.free_port()
            upstream_argv = [sys.executable, "-m", "bench.stream_upstream", str(up), *upstream_args]
            with harness.serve(upstream_argv, f"http://127.0.0.1:{up}/healthz", f"http://127.0.0.1:{up}/v1") as upstream:
                if args.pin:
                    harness.pin(upstream.proc.pid, {1})
                for person in people:
                    http = harness.free_port()
                    directory = Path(tmp) / f"{phase}-{person}"
                    directory.mkdir()
                    if person in DIRECT:
                        server = None
                    elif person == "parley":
                        argv = harness.sidecar_argv(http, harness.free_port(), harness.free_port(), harness.free_port(),
                                                    component(directory, up, args.hold + 100))
                        server = harness.serve(argv, f"http://127.0.0.1:{http}/v1.0/healthz", f"http://127.0.0.1:{http}/v1")
                    else:
                        assert exe is not None
                        argv = litellm_proxy.argv(exe, litellm_config(directory, up), http)
                        server = harness.serve(argv, f"http://127.0.0.1:{http}/health/liveliness",
                                               f"http://127.0.0.1:{http}/v1", env=litellm_proxy.ENV, timeout=120)
                    if server is None:
                        if phase == "latency":
                            for label, streams, stagger in LOADS:
                                results[(person, label)] = load(upstream.url + "/chat/completions", streams,
                                                                args.seconds, stagger)
                        continue
                    with server as running:
                        if args.pin:
                            harness.pin(running.proc.pid, {0})
                        url = running.url + "/chat/completions"
                        load(url, 10, 2)  # warm-up: imports, pools, first-call paths
                        if phase == "latency":
                            for label, streams, stagger in LOADS:
                                results[(person, label)] = load(url, streams, args.seconds, stagger)
                        else:
                            memory[person] = hold(url, args.hold, running.proc.pid)
    print(f"# bench.streaming: {args.seconds:g} s per load{', pinned' if args.pin else ''}, "
          f"load average before {load_before:.1f}, "
          f"took {time.perf_counter() - started:.0f} s")
    if not args.hold_only:
        _latency_table(people, results)
    if memory:
        print(f"\n| server | RSS idle | RSS with {args.hold} open streams | per open stream | failed |")
        print("| --- | --- | --- | --- | --- |")
        for person, (before, during, failed) in memory.items():
            per = (during - before) * 1024 / args.hold
            print(f"| {person} | {before:.1f} MB | {during:.1f} MB | {per:.1f} KB | {failed} |")
    if "litellm" in people:
        print(f"\nLiteLLM {litellm_proxy.version()}, one worker.")


if __name__ == "__main__":
    main()
