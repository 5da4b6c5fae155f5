"""CPU time the sidecar spends per relayed chunk: the streaming figure least moved by other load.

    python -m bench.stream_cpu [--concurrency 20] [--seconds 8] [--gap-ms 20] [--chunks 20] [--cpu N] [--runs 3]

A paced model (``bench.stream_upstream``: no think time, 20 content chunks ``--gap-ms`` apart, so
each chunk reaches the sidecar in a read of its own, as a real model's do) streams through parley's
``/v1/chat/completions`` to ``bench.stream_client`` at ``--concurrency`` streams, each in its own
process. The sidecar's user+system CPU time is read from ``/proc/<pid>/stat`` before and after a
load of ``--seconds``, and divided by the content chunks relayed in it: per-stream costs (the
request, the role, finish and usage chunks, [DONE]) are spread over the stream's 20 chunks, which
is what a client streaming such answers pays. Latency on a shared machine moves with everyone
else's work; CPU time per chunk moves far less, so A/B comparisons of the relay path use this.
``--cpu N`` pins the sidecar to CPU N (``taskset``), so its CPU time is not spread over caches.
Also printed: the same CPU time per stream, and its user/system split (system time is mostly the
kernel's loopback work of each ``send``). ``--chunks 1`` makes the per-stream cost (the request,
the upstream call, the response's start and end) most of the figure: what a burst of stream
starts queues behind.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from bench import harness
from bench.streaming import component, load


def _cpu_times(pid: int) -> tuple[float, float]:
    """utime and stime of ``pid`` (all its threads) so far, in seconds (``harness.cpu_seconds``, split)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.stream_cpu")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--gap-ms", type=float, default=20.0)
    parser.add_argument("--cpu", type=int, default=None, help="pin the sidecar to this CPU")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=20, help="content chunks per stream")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    figures: list[float] = []
    per_stream: list[float] = []
    system: list[float] = []
    streams_done: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        up = harness.free_port()
        upstream_argv = [sys.executable, "-m", "bench.stream_upstream", str(up), "--think-ms", "0",
                         "--chunks", str(args.chunks), "--gap-ms", str(args.gap_ms)]
        with harness.serve(upstream_argv, f"http://127.0.0.1:{up}/healthz", f"http://127.0.0.1:{up}/v1"):
            http = harness.free_port()
            argv = harness.sidecar_argv(http, harness.free_port(), harness.free_port(), harness.free_port(),
                                        component(Path(tmp), up, args.concurrency + 100))
            if args.cpu is not None:
                argv = ["taskset", "-c", str(args.cpu), *argv]
            with harness.serve(argv, f"http://127.0.0.1:{http}/v1.0/healthz", f"http://127.0.0.1:{http}/v1") as sidecar:
                url = sidecar.url + "/chat/completions"
                load(url, 10, 2)  # warm-up: imports, pools, first-call paths
                for _ in range(args.runs):
                    before = _cpu_times(sidecar.proc.pid)
                    result = load(url, args.concurrency, args.seconds)
                    after = _cpu_times(sidecar.proc.pid)
                    if result["errors"]:
                        sys.exit(f"{result['errors']:.0f} streams failed")
                    spent = sum(after) - sum(before)
                    figures.append(spent * 1e6 / (result["streams"] * args.chunks))
                    per_stream.append(spent * 1e6 / result["streams"])
                    system.append((after[1] - before[1]) / spent if spent else 0.0)
                    streams_done.append(result["streams"])
    print(f"# bench.stream_cpu: {args.concurrency} streams of {args.chunks} chunks, {args.gap_ms:g} ms between chunks, "
          f"{args.seconds:g} s x {args.runs}, load average before {load_before:.1f}"
          + (f", sidecar on CPU {args.cpu}" if args.cpu is not None else ""))
    print("sidecar CPU per relayed chunk: " + ", ".join(f"{f:.0f}" for f in figures)
          + f" us (median {statistics.median(figures):.0f}); streams per run: "
          + ", ".join(f"{s:.0f}" for s in streams_done))
    print("sidecar CPU per stream: " + ", ".join(f"{f:.0f}" for f in per_stream)
          + f" us (median {statistics.median(per_stream):.0f}); system time share: "
          + ", ".join(f"{f:.0%}" for f in system))


if __name__ == "__main__":
    main()
