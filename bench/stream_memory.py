"""Where the memory of an open stream goes: the sidecar's Python allocations per stream, by owner.

    python -m bench.stream_memory [--hold 300] [--by filename|lineno] [--top 25]

The sidecar runs under ``tracemalloc`` (this module, ``--serve``, wraps ``python -m parley_sidecar``
and writes a snapshot on SIGUSR1), relaying ``bench.stream_upstream`` (a chunk a second, so the
streams stay open) to ``bench.stream_client --hold N``. A snapshot is taken after a warm-up and
again with N streams open; the difference divided by N is what one open stream holds, grouped by
the file (or line) that allocated it and summed by owner: aiohttp, the standard library, parley.
``bench.streaming --hold-only`` gives the RSS figure; this says what it is made of (RSS is ~15 %
more than the Python allocations: allocator overhead and the C-level parts of the transports).
"""

from __future__ import annotations

import argparse
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from bench import harness
from bench.streaming import component, load


def serve(argv: list[str], snapshots: str) -> None:
    """Run the sidecar with ``argv`` under tracemalloc; each SIGUSR1 writes the next snapshot."""
    tracemalloc.start(1)
    taken = [0]

    def dump(*_: object) -> None:
        taken[0] += 1
        tracemalloc.take_snapshot().dump(f"{snapshots}.{taken[0]}")

    signal.signal(signal.SIGUSR1, dump)
    sys.argv = ["parley_sidecar", *argv]
    runpy.run_module("parley_sidecar", run_name="__main__")


def _owner(filename: str) -> str:
    if "parley_sidecar" in filename:
        return "parley"
    if "aiohttp" in filename or "multidict" in filename or "yarl" in filename:
        return "aiohttp"
    return "other (stdlib, asyncio's loop)"


def measure(streams: int, by: str, top: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        snapshots = str(Path(tmp) / "snapshot")
        up = harness.free_port()
        upstream_argv = [sys.executable, "-m", "bench.stream_upstream", str(up), "--think-ms", "10",
                         "--chunks", "40", "--gap-ms", "1000"]
        with harness.serve(upstream_argv, f"http://127.0.0.1:{up}/healthz", ""):
            http = harness.free_port()
            argv = harness.sidecar_argv(http, harness.free_port(), harness.free_port(), harness.free_port(),
                                        component(Path(tmp), up, streams + 100))
            traced = [sys.executable, "-m", "bench.stream_memory", "--serve", snapshots, "--", *argv[3:]]
            with harness.serve(traced, f"http://127.0.0.1:{http}/v1.0/healthz", "") as sidecar:
                url = f"http://127.0.0.1:{http}/v1/chat/completions"
                load(url, 10, 2)  # warm-up: imports, pools, first-call paths
                os.kill(sidecar.proc.pid, signal.SIGUSR1)
                client = subprocess.Popen([sys.executable, "-m", "bench.stream_client", url, "bench", "--hold",
                                           str(streams)], cwd=harness.ROOT, stdout=subprocess.PIPE, text=True)
                assert client.stdout is not None
                client.stdout.readline()  # {"open": N}: every stream has its first chunk
                os.kill(sidecar.proc.pid, signal.SIGUSR1)
                deadline = time.monotonic() + 60
                while not os.path.exists(f"{snapshots}.2") and time.monotonic() < deadline:
                    time.sleep(0.5)
                time.sleep(2)  # the dump is written by then
                client.kill()
                client.wait()
        before = tracemalloc.Snapshot.load(f"{snapshots}.1")
        during = tracemalloc.Snapshot.load(f"{snapshots}.2")
    stats = during.compare_to(before, by)
    owners: dict[str, float] = {}
    for stat in stats:
        owner = _owner(stat.traceback[0].filename)
        owners[owner] = owners.get(owner, 0.0) + stat.size_diff / streams
    print(f"# bench.stream_memory: {streams} open streams, load average {os.getloadavg()[0]:.1f}")
    print(f"Python allocations per open stream: {sum(owners.values()) / 1024:.1f} KiB")
    for owner, size in sorted(owners.items(), key=lambda item: -item[1]):
        print(f"  {owner}: {size / 1024:.1f} KiB")
    print(f"\nlargest, by {by} (bytes and objects per stream):")
    for stat in stats[:top]:
        frame = stat.traceback[0]
        where = frame.filename.split("site-packages/")[-1].split("sidecar/")[-1]
        where += f":{frame.lineno}" if by == "lineno" else ""
        print(f"  {stat.size_diff / streams:7.0f} B {stat.count_diff / streams:6.1f}  {where}")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        serve(sys.argv[sys.argv.index("--") + 1:], sys.argv[2])
        return
    parser = argparse.ArgumentParser(prog="bench.stream_memory")
    parser.add_argument("--hold", type=int, default=300)
    parser.add_argument("--by", choices=("filename", "lineno"), default="filename")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    measure(args.hold, args.by, args.top)


if __name__ == "__main__":
    main()
