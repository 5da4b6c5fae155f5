"""parley next to the real daprd: the same requests, one server after the other, in one run.

    python -m bench.vs_daprd [--seconds 2] [--rounds 2] [--rate 500] [--only LABEL] [--write]

Scenarios: alpha1 and alpha2 echo over HTTP (wrk) and gRPC (bench.grpc_load), alpha2 through
each server's ``conversation.openai`` to one local fake of OpenAI (tests/conformance/fake_openai.py,
its own process), and gRPC ``GetMetadata`` (what dapr-agents calls before every conversation and the
JavaScript SDK polls at start; ``python -m bench.vs_daprd metadata-load``, bench.grpc_load's loops).
``--only`` keeps the scenarios whose label contains the text (repeatable). Each at 1 connection, 16 connections and a fixed 500 req/s (bench.fixed_rate /
grpc_load --rate: open loop). Per server: time to ready (exec → first 204 from /v1.0/healthz), RSS
idle and the peak under load. Prints the figures and the ratios parley/daprd; ``--write`` also
writes docs/performance.md and docs/performance.png (needs matplotlib: ``pip install matplotlib``).

daprd comes from ``PARLEY_DAPRD`` or tests/daprd/build.sh's cache (built with the echo and openai
components); the script exits with a message if there is none. Both servers get the same Component
files, log at ``warn`` and listen on 127.0.0.1 only. Figures move ±20 % between runs on a shared
2-core machine; compare the ratios, which come from one run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tests.conformance.servers import daprd_flags, find_daprd

from bench import harness

TEXT = "Please write a witty haiku about the Dapr distributed programming framework"
A1_BODY = json.dumps({"inputs": [{"content": TEXT}]})
A2_BODY = json.dumps({"inputs": [{"messages": [{"ofUser": {"content": [{"text": TEXT}]}}]}]})
CHAT_BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": TEXT}], "temperature": 0})


@dataclasses.dataclass(frozen=True)
class Scenario:
    label: str
    transport: str  # http | grpc
    kind: str  # a1 | a2 | openai | metadata

    def path(self) -> str:
        if self.kind == "a1":
            return "/v1.0-alpha1/conversation/echo/converse"
        return f"/v1.0-alpha2/conversation/{'openai' if self.kind == 'openai' else 'echo'}/converse"

    def body(self) -> str:
        return A1_BODY if self.kind == "a1" else A2_BODY


SCENARIOS = (
    Scenario("HTTP alpha1 echo", "http", "a1"),
    Scenario("HTTP alpha2 echo", "http", "a2"),
    Scenario("gRPC alpha1 echo", "grpc", "a1"),
    Scenario("gRPC alpha2 echo", "grpc", "a2"),
    Scenario("HTTP alpha2 → openai → fake", "http", "openai"),
    Scenario("gRPC GetMetadata", "grpc", "metadata"),
)
LOADS = ("1 conn", "16 conns", "fixed rate")


@dataclasses.dataclass
class ServerRun:
    ready_s: float = 0.0
    rss_idle: float = 0.0
    rss_peak: float = 0.0
    loads: dict[tuple[str, str], harness.Load] = dataclasses.field(default_factory=dict)


def components(directory: Path, fake_port: int) -> Path:
    (directory / "echo.yaml").write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: echo\n"
        "spec:\n  type: conversation.echo\n  version: v1\n")
    (directory / "openai.yaml").write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: openai\n"
        "spec:\n  type: conversation.openai\n  version: v1\n  metadata:\n"
        "  - name: key\n    value: sk-bench\n  - name: model\n    value: gpt-4o-mini\n"
        f"  - name: endpoint\n    value: http://127.0.0.1:{fake_port}/v1\n")
    return directory


def python_load(module: str, *args: str, seconds: float) -> harness.Load:
    out = subprocess.run([sys.executable, "-m", module, *args, "--seconds", str(seconds)], cwd=harness.ROOT,
                         capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    data = json.loads(out.strip().splitlines()[-1])
    return harness.Load(data["rps"], data["p50_ms"], data["p99_ms"], int(data["errors"]))


def run_load(scenario: Scenario, load: str, http_url: str, grpc_target: str, seconds: float,
             rate: float) -> harness.Load:
    url = http_url + scenario.path()
    if scenario.transport == "http":
        if load == "fixed rate":
            return python_load("bench.fixed_rate", url, scenario.body(), "--rate", str(rate), seconds=seconds)
        return harness.wrk(url, scenario.body(), connections=1 if load == "1 conn" else 16, seconds=seconds)
    args = [grpc_target, scenario.kind]
    if load == "fixed rate":
        args += ["--rate", str(rate)]
    else:
        args += ["--concurrency", "1" if load == "1 conn" else "16"]
    if scenario.kind == "metadata":
        return python_load("bench.vs_daprd", "metadata-load", *args[:1], *args[2:], seconds=seconds)
    return python_load("bench.grpc_load", *args, seconds=seconds)


def metadata_load(argv: list[str]) -> None:
    """``python -m bench.vs_daprd metadata-load TARGET [--concurrency N | --rate R] --seconds S``: gRPC
    GetMetadata with bench.grpc_load's closed and open loops; prints its JSON line."""
    import asyncio

    import grpc
    from dapr.proto.runtime.v1 import dapr_pb2_grpc, metadata_pb2

    from bench import grpc_load

    parser = argparse.ArgumentParser(prog="bench.vs_daprd metadata-load")
    parser.add_argument("target")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--rate", type=float, default=None)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)

    async def run() -> dict[str, float]:
        async with grpc.aio.insecure_channel(args.target) as channel:
            stub = dapr_pb2_grpc.DaprStub(channel).GetMetadata  # type: ignore[no-untyped-call]
            request = metadata_pb2.GetMetadataRequest()

            async def call() -> object:
                return await stub(request, timeout=30)

            for _ in range(20):  # connect and warm up
                await call()
            if args.rate:
                return await grpc_load.open_loop(call, args.rate, args.seconds)
            return await grpc_load.closed_loop(call, args.concurrency, args.seconds)

    grpc_load.install_uvloop()
    print(json.dumps(asyncio.run(run())))


class PeakRss:
    """Samples a process's RSS every 50 ms while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.peak = max(self.peak, harness.rss_mb(self.pid))
            except OSError:
                return

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def mean(loads: list[harness.Load]) -> harness.Load:
    n = len(loads)
    return harness.Load(sum(x.rps for x in loads) / n, sum(x.p50_ms for x in loads) / n,
                        sum(x.p99_ms for x in loads) / n, sum(x.errors for x in loads))


def measure_all(servers: dict[str, tuple[list[str], int, int]], seconds: float, rate: float,
                rounds: int, scenarios: tuple[Scenario, ...] = SCENARIOS) -> dict[str, ServerRun]:
    """Start each server (timing it to ready), then run every measurement on each in turn, ``rounds``
    times in alternating order (daprd, parley, parley, daprd, …), so that background noise on a
    shared machine falls on both alike; the figures are the means over the rounds."""
    runs = {name: ServerRun() for name in servers}
    with contextlib.ExitStack() as stack:
        running: dict[str, harness.Server] = {}
        for name, (argv, http, _) in servers.items():
            url = f"http://127.0.0.1:{http}"
            running[name] = stack.enter_context(harness.serve(argv, f"{url}/v1.0/healthz", url))
            runs[name].ready_s = running[name].ready_s
        time.sleep(1.0)
        for name, server in running.items():
            runs[name].rss_idle = server.rss_mb
        peaks = {name: stack.enter_context(PeakRss(server.proc.pid)) for name, server in running.items()}
        names = list(servers)
        for scenario in scenarios:
            for load in LOADS:
                results: dict[str, list[harness.Load]] = {name: [] for name in names}
                for round_ in range(rounds):
                    for name in names if round_ % 2 == 0 else reversed(names):
                        _, http, grpc_port = servers[name]
                        result = run_load(scenario, load, f"http://127.0.0.1:{http}", f"127.0.0.1:{grpc_port}",
                                          seconds, rate)
                        results[name].append(result)
                        print(f"  {name:6} {scenario.label:30} {load:10} {result.rps:9.0f} req/s  "
                              f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  errors {result.errors}",
                              flush=True)
                for name in names:
                    runs[name].loads[(scenario.label, load)] = mean(results[name])
        for name, server in running.items():
            runs[name].rss_peak = max(peaks[name].peak, server.rss_mb)
    return runs


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def report(daprd: ServerRun, parley: ServerRun, fake: dict[str, harness.Load], rate: float,
           scenarios: tuple[Scenario, ...] = SCENARIOS) -> list[str]:
    lines = ["| scenario | load | daprd req/s | parley req/s | ratio | daprd p50 / p99 ms | parley p50 / p99 ms |"
             " p50 ratio | p99 ratio |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for scenario in scenarios:
        for load in LOADS:
            d, p = daprd.loads[(scenario.label, load)], parley.loads[(scenario.label, load)]
            shown = f"{rate:.0f} req/s" if load == "fixed rate" else load
            errors = f" ({p.errors} errors)" if p.errors else ""
            d_errors = f" ({d.errors} errors)" if d.errors else ""
            lines.append(
                f"| {scenario.label} | {shown} | {d.rps:,.0f}{d_errors} | {p.rps:,.0f}{errors} | "
                f"{ratio(p.rps, d.rps):.2f} | {d.p50_ms:.2f} / {d.p99_ms:.2f} | {p.p50_ms:.2f} / {p.p99_ms:.2f} | "
                f"{ratio(p.p50_ms, d.p50_ms):.2f} | {ratio(p.p99_ms, d.p99_ms):.2f} |")
    lines += [
        "",
        "| | daprd | parley | ratio |",
        "| --- | ---: | ---: | ---: |",
        f"| time to ready (exec → first 204 from /v1.0/healthz) | {daprd.ready_s:.2f} s | {parley.ready_s:.2f} s | "
        f"{ratio(parley.ready_s, daprd.ready_s):.2f} |",
        f"| RSS idle | {daprd.rss_idle:.1f} MB | {parley.rss_idle:.1f} MB | {ratio(parley.rss_idle, daprd.rss_idle):.2f} |",
        f"| RSS peak under load | {daprd.rss_peak:.1f} MB | {parley.rss_peak:.1f} MB | "
        f"{ratio(parley.rss_peak, daprd.rss_peak):.2f} |",
    ]
    if fake:
        lines += ["", "The fake OpenAI called directly (no sidecar), for scale: " + "; ".join(
            f"{load}: {f.rps:,.0f} req/s, p50 {f.p50_ms:.2f} ms, p99 {f.p99_ms:.2f} ms" for load, f in fake.items())
            + "."]
    return lines


def plot(daprd: ServerRun, parley: ServerRun, path: Path, rate: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [s.label for s in SCENARIOS]
    panels = [("req/s at 1 connection", "1 conn", "rps"), ("req/s at 16 connections", "16 conns", "rps"),
              (f"p99 ms at a fixed {rate:.0f} req/s (log scale)", "fixed rate", "p99_ms")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), sharey=True)
    y = range(len(labels))
    for ax, (title, load, field) in zip(axes, panels, strict=True):
        d = [getattr(daprd.loads[(lbl, load)], field) for lbl in labels]
        p = [getattr(parley.loads[(lbl, load)], field) for lbl in labels]
        ax.barh([i + 0.2 for i in y], d, height=0.4, label="daprd 1.18.3", color="#4c72b0")
        ax.barh([i - 0.2 for i in y], p, height=0.4, label="parley", color="#dd8452")
        ax.set_title(title)
        if field == "p99_ms":
            ax.set_xscale("log")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(list(y), labels)
    axes[0].invert_yaxis()
    axes[0].legend(loc="lower right")
    fig.suptitle("parley vs daprd, same machine, same run (higher req/s and lower p99 are better)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_doc(lines: list[str], args: argparse.Namespace, took: float, load_before: float, doc: Path,
              png: Path) -> None:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    text = f"""# Performance: parley next to daprd

Measured by `python -m bench.vs_daprd --seconds {args.seconds:g} --rounds {args.rounds} --rate {args.rate:g} --write` on
{datetime.date.today().isoformat()}: {os.cpu_count()} cores ({cpu}), parley on Python {harness.python_version()}, the real
daprd 1.18.3 (echo + openai build, tests/daprd/build.sh). Both servers were started with the same
Component files and flags, then every measurement ran on one right after the other, {args.rounds} times in
alternating order (daprd, parley, parley, daprd), so that background load falls on both alike; the
figures are the means ({args.seconds:g} s per measurement; the whole run took {took / 60:.1f} minutes;
load average {load_before:.1f} when it started: other work shared the machine).

- HTTP load at 1 and 16 connections: `wrk` (one thread), POSTing one short input.
- gRPC load at 1 and 16 concurrent callers, and every fixed-rate load: Python clients
  (`bench/grpc_load.py`, `bench/fixed_rate.py`, grpc.aio / aiohttp on uvloop) in their own process.
  At a fixed rate, latency counts from the scheduled start of each request (no coordinated
  omission). These clients cost CPU too: on 2 cores the closed-loop gRPC figures of the faster
  server are partly bounded by the client.
- The OpenAI path goes through each server's `conversation.openai` to one local fake of OpenAI
  (`tests/conformance/fake_openai.py`, aiohttp, its own process), which is part of what is measured.
- RSS is the server process's resident set: idle one second after ready, and the peak sampled every
  50 ms through all loads. Time to ready is one start of each server here (a cold first exec of
  daprd's 100 MB binary can take 0.2 s); `bench.startup` gives medians of many starts (the goals
  table below).

Figures move by ±20 % between runs on this shared machine; the ratios (parley / daprd) come from
one run and are the figures to compare. Ratio > 1 is better for req/s, < 1 for latency and memory.

{chr(10).join(lines)}

![req/s and p99, parley vs daprd](performance.png)

Re-run: `python -m bench.vs_daprd --write` (needs `wrk`, matplotlib and the daprd from
`tests/daprd/build.sh`; about {took / 60:.0f} minutes). With
`PARLEY_BENCH_PYTHON=$(python -m bench.shipped_python)` parley runs on the kind of interpreter
its images ship (a profile-guided build, see "The interpreter" below) instead of the
development venv's.
"""
    # The generated part has no "## " heading; the dated sections after it (breakdowns, A/B
    # figures written by hand) are kept.
    old = doc.read_text() if doc.exists() else ""
    start = old.find("\n## ")
    doc.write_text(text + (old[start:] if start >= 0 else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="measurements per server and load (alternating)")
    parser.add_argument("--rate", type=float, default=500.0, help="the fixed-rate load, req/s")
    parser.add_argument("--only", action="append", default=[], metavar="LABEL",
                        help="only the scenarios whose label contains LABEL (repeatable)")
    parser.add_argument("--write", action="store_true", help="write docs/performance.md and docs/performance.png")
    if sys.argv[1:2] == ["metadata-load"]:
        metadata_load(sys.argv[2:])
        return
    args = parser.parse_args()
    scenarios = tuple(s for s in SCENARIOS if not args.only or any(o in s.label for o in args.only))
    if not scenarios:
        sys.exit(f"no scenario matches {args.only}")
    if args.write and scenarios != SCENARIOS:
        sys.exit("--write needs every scenario (no --only)")
    daprd_bin, missing = find_daprd()
    if daprd_bin is None:
        sys.exit(missing)
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    fake_port = harness.free_port()
    fake_argv = [sys.executable, "-m", "tests.conformance.fake_openai", str(fake_port)]
    with tempfile.TemporaryDirectory() as tmp, harness.serve(
            fake_argv, f"http://127.0.0.1:{fake_port}/health", f"http://127.0.0.1:{fake_port}/v1/chat/completions"
    ) as fake:
        resources = components(Path(tmp), fake_port)
        fake_loads = {c: harness.wrk(fake.url, CHAT_BODY, connections=1 if c == "1 conn" else 16,
                                     seconds=args.seconds) for c in ("1 conn", "16 conns")
                      if any(s.kind == "openai" for s in scenarios)}
        servers: dict[str, tuple[list[str], int, int]] = {}
        for name in ("daprd", "parley"):
            ports = {k: harness.free_port() for k in ("http", "grpc", "metrics", "internal", "public")}
            if name == "daprd":
                argv = [str(daprd_bin), *daprd_flags("bench", resources, ports), "--log-level", "warn"]
            else:
                argv = harness.sidecar_argv(ports["http"], ports["grpc"], ports["metrics"], ports["public"], resources)
            servers[name] = (argv, ports["http"], ports["grpc"])
        runs = measure_all(servers, args.seconds, args.rate, args.rounds, scenarios)
    took = time.perf_counter() - started
    lines = report(runs["daprd"], runs["parley"], fake_loads, args.rate, scenarios)
    print("\n".join(lines))
    if args.write:
        doc = harness.ROOT / "docs" / "performance.md"
        png = doc.with_suffix(".png")
        plot(runs["daprd"], runs["parley"], png, args.rate)
        write_doc(lines, args, took, load_before, doc, png)
        print(f"wrote {doc.relative_to(harness.ROOT)} and {png.relative_to(harness.ROOT)}")


if __name__ == "__main__":
    main()
