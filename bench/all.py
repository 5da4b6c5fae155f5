"""Every gateway benchmark in one run: the floor, parley, LiteLLM, the operator (issue 7).

    python -m bench.all [--seconds 4] [--no-litellm] [--no-operator] [--no-write]

Starts the floor (bench/floor.py: a bare aiohttp handler returning a body of the same size),
parley (echo, a cached echo) and LiteLLM's proxy with ``mock_response`` (bench/litellm_proxy.py:
its own virtualenv, installed on first use) side by side on 127.0.0.1, then runs every load on
each in turn, load by load, so that background work on a shared machine falls on all alike:

- 1 connection (wrk -c1): p50/p99 of one caller; saturation (wrk -c16, or 16 gRPC callers);
- a fixed 100, 500 and 1000 req/s (bench/fixed_rate.py, bench/grpc_load.py --rate: open loop,
  latency from the scheduled start). A rate over 1.5x a server's measured saturation is skipped
  (the queue would only grow for the whole window).

Per server: time to ready (exec → first 2xx from its health URL; parley: median of 3 starts),
RSS idle and the peak under load (whole process tree). Then the operator: mutating-webhook latency
(bench/operator_webhook.py) and Component fan-out to 100 and 500 sidecar streams
(bench/operator_delivery.py). Writes docs/benchmarks.md and docs/benchmarks_*.png and prints the
ratio table. Anything below ``KEEP`` in an existing docs/benchmarks.md (the profiling notes) is kept.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import harness, litellm_proxy
from bench.sidecar_http import REPLY
from bench.vs_daprd import A1_BODY, A2_BODY, PeakRss, python_load

KEEP = "<!-- Hand-written below this line: bench/all.py keeps it when it rewrites the file. -->"
RATES = (100, 500, 1000)
LOADS = ("1 conn", "saturation", *(f"{r} req/s" for r in RATES))
DOC = harness.ROOT / "docs" / "benchmarks.md"


@dataclasses.dataclass(frozen=True)
class Case:
    label: str
    server: str  # floor | parley | litellm
    path: str = ""  # HTTP path; empty for gRPC
    body: str = ""
    grpc_kind: str = ""  # a1 | a2 (bench.grpc_load)


CASES = (
    Case("floor: bare aiohttp", "floor", "/v1.0-alpha1/conversation/echo/converse", A1_BODY),
    Case("parley alpha1 echo, HTTP", "parley", "/v1.0-alpha1/conversation/echo/converse", A1_BODY),
    Case("parley alpha2 echo, HTTP", "parley", "/v1.0-alpha2/conversation/echo/converse", A2_BODY),
    Case("parley alpha1 cache hit, HTTP", "parley", "/v1.0-alpha1/conversation/cached/converse", A1_BODY),
    Case("parley alpha1 echo, gRPC", "parley", grpc_kind="a1"),
    Case("parley alpha2 echo, gRPC", "parley", grpc_kind="a2"),
    Case("LiteLLM proxy, mock_response", "litellm", "/chat/completions", litellm_proxy.CHAT_BODY),
)
FLOOR, ECHO, LITELLM = CASES[0].label, CASES[1].label, CASES[-1].label


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and all its descendants (LiteLLM may run its server in a child)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError):
            total += harness.rss_mb(current)
        todo.extend(children.get(current, ()))
    return total


class TreePeak(PeakRss):
    """:class:`bench.vs_daprd.PeakRss` over the whole process tree."""

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, tree_rss_mb(self.pid))


@dataclasses.dataclass
class ServerStats:
    ready_s: float = float("nan")
    rss_idle: float = float("nan")
    rss_peak: float = float("nan")


def components(directory: Path) -> Path:
    (directory / "echo.yaml").write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: echo\n"
        "spec:\n  type: conversation.echo\n  version: v1\n")
    (directory / "cached.yaml").write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: cached\n"
        "spec:\n  type: conversation.echo\n  version: v1\n  metadata:\n"
        "  - name: responseCacheTTL\n    value: 10m\n")
    return directory


def parley_argv(resources: Path) -> tuple[list[str], int, int]:
    http, grpc, metrics, public = (harness.free_port() for _ in range(4))
    return harness.sidecar_argv(http, grpc, metrics, public, resources), http, grpc


def parley_ready(resources: Path, starts: int = 3) -> float:
    """Median time to ready over a few fresh starts (one start moves by ±30 % on a busy machine)."""
    times = []
    for _ in range(starts):
        argv, http, _ = parley_argv(resources)
        with harness.serve(argv, f"http://127.0.0.1:{http}/v1.0/healthz", "") as server:
            times.append(server.ready_s)
    return statistics.median(times)


def measure(case: Case, load: str, base: str, grpc_target: str, seconds: float) -> harness.Load:
    rate = load.removesuffix(" req/s")
    if case.grpc_kind:
        args = [grpc_target, case.grpc_kind]
        args += ["--rate", rate] if rate != load else ["--concurrency", "1" if load == "1 conn" else "16"]
        return python_load("bench.grpc_load", *args, seconds=seconds)
    url = base + case.path
    if rate != load:
        return python_load("bench.fixed_rate", url, case.body, "--rate", rate, seconds=seconds)
    return harness.wrk(url, case.body, connections=1 if load == "1 conn" else 16, seconds=seconds)


def run_gateways(args: argparse.Namespace, litellm_exe: Path | None) -> tuple[
        dict[tuple[str, str], harness.Load | None], dict[str, ServerStats]]:
    results: dict[tuple[str, str], harness.Load | None] = {}
    stats = {name: ServerStats() for name in ("floor", "parley", "litellm")}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        resources = components(Path(tmp))
        stats["parley"].ready_s = parley_ready(resources)
        floor_port = harness.free_port()
        servers: dict[str, tuple[harness.Server, str, str]] = {}
        servers["floor"] = (stack.enter_context(harness.serve(
            [sys.executable, "-m", "bench.floor", str(floor_port), str(len(REPLY))],
            f"http://127.0.0.1:{floor_port}/healthz", "")), f"http://127.0.0.1:{floor_port}", "")
        argv, http, grpc_port = parley_argv(resources)
        servers["parley"] = (stack.enter_context(harness.serve(argv, f"http://127.0.0.1:{http}/v1.0/healthz", "")),
                             f"http://127.0.0.1:{http}", f"127.0.0.1:{grpc_port}")
        if litellm_exe is not None:
            port = harness.free_port()
            server = stack.enter_context(harness.serve(
                litellm_proxy.argv(litellm_exe, litellm_proxy.config(Path(tmp)), port),
                f"http://127.0.0.1:{port}/health/liveliness", "", env=litellm_proxy.ENV, timeout=180))
            servers["litellm"] = (server, f"http://127.0.0.1:{port}", "")
        for name, (server, _, _) in servers.items():
            if name != "parley":
                stats[name].ready_s = server.ready_s
        time.sleep(2.0)  # let each settle after its first answers
        peaks = {}
        for name, (server, _, _) in servers.items():
            stats[name].rss_idle = tree_rss_mb(server.proc.pid)
            peaks[name] = stack.enter_context(TreePeak(server.proc.pid))
        cases = [c for c in CASES if c.server in servers]
        for load in LOADS:
            for case in cases:
                server, base, grpc_target = servers[case.server]
                saturation = results.get((case.label, "saturation"))
                rate = load.removesuffix(" req/s")
                if rate != load and saturation is not None and float(rate) > 1.5 * saturation.rps:
                    results[(case.label, load)] = None  # over capacity: see the module docstring
                    print(f"  {case.label:32} {load:12} skipped: over 1.5x its saturation", flush=True)
                    continue
                result = measure(case, load, base, grpc_target, args.seconds)
                results[(case.label, load)] = result
                print(f"  {case.label:32} {load:12} {result.rps:9.0f} req/s  p50 {result.p50_ms:8.2f} ms  "
                      f"p99 {result.p99_ms:8.2f} ms  errors {result.errors}", flush=True)
        for name, (server, _, _) in servers.items():
            stats[name].rss_peak = max(peaks[name].peak, tree_rss_mb(server.proc.pid))
    return results, stats


def run_operator(seconds: float) -> dict[str, Any]:
    """The operator benchmarks in their own processes (each starts kmock and the operator)."""
    out: dict[str, Any] = {}
    try:
        webhook = subprocess.run([sys.executable, "-m", "bench.operator_webhook", "--rate", "50", "--seconds",
                                  str(max(5.0, 2 * seconds))], cwd=harness.ROOT, capture_output=True, text=True,
                                 check=True, timeout=180).stdout
        out["webhook"] = json.loads(webhook)
        delivery = subprocess.run([sys.executable, "-m", "bench.operator_delivery", "--sidecars", "100", "500",
                                   "--changes", "5"], cwd=harness.ROOT, capture_output=True, text=True, check=True,
                                  timeout=400).stdout
        out["delivery"] = json.loads(delivery)
    except (subprocess.SubprocessError, json.JSONDecodeError) as exc:
        out["error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    return out


# -- report ----------------------------------------------------------------------------------------

def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _cell(load: harness.Load | None, field: str, fmt: str = "{:.2f}") -> str:
    if load is None:
        return "over capacity"
    return fmt.format(getattr(load, field)) + (f" ({load.errors} err)" if load.errors else "")


def ratio_table(results: dict[tuple[str, str], harness.Load | None]) -> list[str]:
    floor_sat, floor_one = results[(FLOOR, "saturation")], results[(FLOOR, "1 conn")]
    lite_sat = results.get((LITELLM, "saturation"))
    lines = ["| case | req/s at saturation ÷ floor | ÷ LiteLLM | p50 at 1 conn ÷ floor | p99 at 1 conn ÷ floor |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for case in CASES:
        sat, one = results.get((case.label, "saturation")), results.get((case.label, "1 conn"))
        if sat is None or one is None or floor_sat is None or floor_one is None:
            continue
        vs_lite = f"{_ratio(sat.rps, lite_sat.rps):.1f}x" if lite_sat else "n/a"
        lines.append(f"| {case.label} | {_ratio(sat.rps, floor_sat.rps):.2f}x | {vs_lite} | "
                     f"{_ratio(one.p50_ms, floor_one.p50_ms):.2f}x | {_ratio(one.p99_ms, floor_one.p99_ms):.2f}x |")
    return lines


def absolute_table(results: dict[tuple[str, str], harness.Load | None]) -> list[str]:
    head = "| case | saturation req/s | 1 conn req/s | 1 conn p50 / p99 ms |" + "".join(
        f" {r} req/s p50 / p99 ms |" for r in RATES)
    lines = [head, "| --- |" + " ---: |" * (3 + len(RATES))]
    for case in CASES:
        if (case.label, "1 conn") not in results:
            continue
        sat, one = results[(case.label, "saturation")], results[(case.label, "1 conn")]
        row = f"| {case.label} | {_cell(sat, 'rps', '{:,.0f}')} | {_cell(one, 'rps', '{:,.0f}')} | "
        row += f"{_cell(one, 'p50_ms')} / {_cell(one, 'p99_ms')} |"
        for r in RATES:
            fixed = results[(case.label, f"{r} req/s")]
            row += " over capacity |" if fixed is None else f" {_cell(fixed, 'p50_ms')} / {_cell(fixed, 'p99_ms')} |"
        lines.append(row)
    return lines


def resources_table(stats: dict[str, ServerStats]) -> list[str]:
    names = {"floor": "floor (bare aiohttp)", "parley": "parley sidecar", "litellm": "LiteLLM proxy"}
    lines = ["| server | time to ready | RSS idle | RSS peak under load |", "| --- | ---: | ---: | ---: |"]
    for key, label in names.items():
        s = stats[key]
        if s.ready_s == s.ready_s:  # measured (not NaN)
            lines.append(f"| {label} | {s.ready_s:.2f} s | {s.rss_idle:.1f} MB | {s.rss_peak:.1f} MB |")
    return lines


@dataclasses.dataclass
class Target:
    what: str
    target: str
    measured: float
    limit: float
    higher_is_better: bool
    unit: str

    @property
    def met(self) -> bool:
        return self.measured >= self.limit if self.higher_is_better else self.measured <= self.limit

    def row(self) -> str:
        if self.met:
            verdict = "met"
        else:
            by = self.limit / self.measured if self.higher_is_better else self.measured / self.limit
            verdict = f"**missed** by {by:.2f}x"
        return f"| {self.what} | {self.target} | {self.measured:.2f}{self.unit} | {verdict} |"


def targets(results: dict[tuple[str, str], harness.Load | None], stats: dict[str, ServerStats]) -> list[Target]:
    floor_sat, floor_one = results[(FLOOR, "saturation")], results[(FLOOR, "1 conn")]
    sat, one, at500 = results[(ECHO, "saturation")], results[(ECHO, "1 conn")], results[(ECHO, "500 req/s")]
    floor500 = results[(FLOOR, "500 req/s")]
    assert floor_sat and floor_one and sat and one
    out = [
        Target("echo throughput ÷ floor (alpha1, HTTP, 16 conns)", "≥ 0.5x", _ratio(sat.rps, floor_sat.rps), 0.5,
               True, "x"),
        Target("echo p50 at 1 connection ÷ floor's", "≤ 2.5x", _ratio(one.p50_ms, floor_one.p50_ms), 2.5, False, "x"),
        Target(f"echo p99 at a fixed 500 req/s (the floor's, same client: {_cell(floor500, 'p99_ms')} ms)", "≤ 2 ms",
               at500.p99_ms if at500 else float("inf"), 2.0, False, " ms"),
        Target("sidecar RSS idle", "≤ 60 MB", stats["parley"].rss_idle, 60.0, False, " MB"),
        Target("sidecar RSS peak under load", "≤ 80 MB", stats["parley"].rss_peak, 80.0, False, " MB"),
        Target("sidecar time to ready", "≤ 1 s", stats["parley"].ready_s, 1.0, False, " s"),
    ]
    lite = results.get((LITELLM, "saturation"))
    if lite:
        out.append(Target("echo throughput ÷ LiteLLM's", "≈ 75x (0.5x a 16k req/s floor ÷ 110)",
                          _ratio(sat.rps, lite.rps), 0.5 * _ratio(floor_sat.rps, lite.rps), True, "x"))
    return out


def operator_lines(op: dict[str, Any]) -> list[str]:
    if "error" in op and "webhook" not in op:
        return [f"Not measured: {op['error']}"]
    w = op["webhook"]
    lines = ["| operator | p50 | p99 | max | target | |", "| --- | ---: | ---: | ---: | ---: | --- |",
             f"| mutating webhook, {w['rate_per_s']:.0f} reviews/s (HTTPS, {w['reviews']} reviews) | "
             f"{w['p50_ms']:.2f} ms | {w['p99_ms']:.2f} ms | {w['max_ms']:.2f} ms | p99 ≤ 10 ms | "
             f"{'met' if w['met'] else '**missed**'} |"]
    for d in op.get("delivery", []):
        lines.append(f"| Component change → all {d['sidecars']} sidecar streams ({d['changes']} changes) | "
                     f"{d['all_reached_p50_ms']:.1f} ms | | {d['all_reached_max_ms']:.1f} ms | ≤ 1000 ms | "
                     f"{'met' if d['met'] else '**missed**'} |")
    if "error" in op:
        lines.append(f"\nFan-out not measured: {op['error']}")
    return lines


def plot(results: dict[tuple[str, str], harness.Load | None], stats: dict[str, ServerStats], docs: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = [c for c in CASES if (c.label, "saturation") in results]
    colours = {"floor": "#8c8c8c", "parley": "#dd8452", "litellm": "#4c72b0"}
    written = []

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), sharey=True)
    y = list(range(len(cases)))
    for ax, load, title in zip(axes, ("saturation", "1 conn"), ("req/s at saturation (16 connections; log)",
                                                               "p50 ms at 1 connection (log)"), strict=True):
        field = "rps" if load == "saturation" else "p50_ms"
        values = [getattr(results[(c.label, load)], field, float("nan")) for c in cases]
        ax.barh(y, values, color=[colours[c.server] for c in cases])
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:,.0f}" if field == "rps" else f" {v:.2f}", va="center", fontsize=8)
        ax.set_xscale("log")
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, [c.label for c in cases])
    axes[0].invert_yaxis()
    fig.suptitle("Throughput and latency, same machine, same run (grey: floor, orange: parley, blue: LiteLLM)")
    fig.tight_layout()
    written.append("benchmarks_throughput.png")
    fig.savefig(docs / written[-1], dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    for ax, field in zip(axes, ("p50_ms", "p99_ms"), strict=True):
        for c in cases:
            points = [(r, results[(c.label, f"{r} req/s")]) for r in RATES]
            xs = [r for r, v in points if v is not None]
            ys = [getattr(v, field) for _, v in points if v is not None]
            if xs:
                ax.plot(xs, ys, marker="o", label=c.label, color=colours[c.server] if c.server != "parley" else None)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(list(RATES), [str(r) for r in RATES])
        ax.set_xlabel("offered req/s (open loop)")
        ax.set_title(f"{field.removesuffix('_ms')} latency, ms (log)")
        ax.grid(alpha=0.3)
    axes[1].axhline(2.0, color="red", linestyle=":", linewidth=1)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    written.append("benchmarks_latency.png")
    fig.savefig(docs / written[-1], dpi=100)
    plt.close(fig)

    names = [n for n in ("floor", "parley", "litellm") if stats[n].ready_s == stats[n].ready_s]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    x = list(range(len(names)))
    axes[0].bar([i - 0.2 for i in x], [stats[n].rss_idle for n in names], width=0.4, label="idle", color="#9ecae1")
    axes[0].bar([i + 0.2 for i in x], [stats[n].rss_peak for n in names], width=0.4, label="peak under load",
                color="#3182bd")
    axes[0].set_title("RSS, MB")
    axes[0].legend()
    axes[1].bar(x, [stats[n].ready_s for n in names], color=[colours[n] for n in names])
    axes[1].set_yscale("log")
    axes[1].set_title("time to ready, s (log)")
    for ax in axes:
        ax.set_xticks(x, names)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    written.append("benchmarks_resources.png")
    fig.savefig(docs / written[-1], dpi=100)
    plt.close(fig)
    return written


def machine() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())
    mem = next((int(ln.split()[1]) // 1024 for ln in Path("/proc/meminfo").read_text().splitlines()
                if ln.startswith("MemTotal")), 0)
    import aiohttp

    return (f"{os.cpu_count()} cores ({cpu}), {mem / 1024:.1f} GiB RAM, Linux {platform.release()}, "
            f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}")


def write_doc(sections: dict[str, list[str]], args: argparse.Namespace, took: float, loads: tuple[float, float],
              pngs: list[str], lite_version: str) -> None:
    kept = ""
    if DOC.exists() and KEEP in DOC.read_text():
        kept = DOC.read_text().split(KEEP, 1)[1].lstrip("\n")
    litellm = f"LiteLLM {lite_version} (`litellm[proxy]` in its own venv)" if lite_version else "LiteLLM not measured"
    text = f"""# Benchmarks: parley next to the floor and LiteLLM

Measured by `python -m bench.all --seconds {args.seconds:g}` on {datetime.date.today().isoformat()}:

- machine: {machine()};
- {litellm}.

The whole run took {took / 60:.1f} minutes. Load average
{loads[0]:.2f} when it started and {loads[1]:.2f} when it ended: other work shared this machine, so
absolute figures move by ±20 % between runs; the ratios come from one run, with every load applied
to every server in turn, and are the figures to compare.

- **floor**: `bench/floor.py`, a bare aiohttp handler that parses the same JSON body and returns a
  reply of the same size as parley's alpha1 echo. **parley**: the sidecar (`python -m
  parley_sidecar`, log level warn), with `conversation.echo` and a second echo with
  `responseCacheTTL: 10m` (the cache-hit case). **LiteLLM**: its proxy with one model whose
  `litellm_params` have a `mock_response` (no upstream call), no database, telemetry off,
  POST `/chat/completions` with the same prompt.
- Load from separate processes on 127.0.0.1, {args.seconds:g} s per measurement: `wrk` (1 thread)
  at 1 and 16 connections for HTTP; `bench/grpc_load.py` (the Dapr SDK's generated stub on
  grpc.aio) at 1 and 16 callers for gRPC; fixed rates with `bench/fixed_rate.py` /
  `grpc_load.py --rate` (open loop, latency from the scheduled start, so a stall shows in p99).
  Those Python clients cost CPU on the same 2 cores; at 1000 req/s they are part of the figure.
- RSS: the server's process tree, idle 2 s after ready and the peak sampled every 100 ms through
  all loads. Time to ready: exec → first 2xx from the health URL (parley: the median of 3 starts).

## Ratios

{chr(10).join(sections['ratios'])}

## Targets (issue 7)

| target | wanted | measured | |
| --- | --- | ---: | --- |
{chr(10).join(sections['targets'])}

## Absolute figures

{chr(10).join(sections['absolute'])}

{chr(10).join(sections['resources'])}

![throughput and latency at one connection](benchmarks_throughput.png)

![latency at fixed rates](benchmarks_latency.png)

![memory and time to ready](benchmarks_resources.png)

## Operator

{chr(10).join(sections['operator'])}

Re-run: `python -m bench.all` (needs `wrk`, matplotlib and network access the first time, to
install LiteLLM into `${{PARLEY_CACHE:-~/.cache/parley}}/litellm-venv`). The daprd comparison is
`python -m bench.vs_daprd --write` (docs/performance.md).

{KEEP}

{kept}"""
    DOC.write_text(text.rstrip("\n") + "\n")
    del pngs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="per measurement")
    parser.add_argument("--no-litellm", action="store_true", help="skip LiteLLM (no install, no network)")
    parser.add_argument("--no-operator", action="store_true", help="skip the operator benchmarks")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write docs/")
    args = parser.parse_args()
    litellm_exe = None
    lite_version = ""
    if not args.no_litellm:
        print("LiteLLM: installing into its own venv when missing …", flush=True)
        litellm_exe = litellm_proxy.install()
        lite_version = litellm_proxy.version()
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    results, stats = run_gateways(args, litellm_exe)
    operator = {} if args.no_operator else run_operator(args.seconds)
    took = time.perf_counter() - started
    sections = {
        "ratios": ratio_table(results),
        "absolute": absolute_table(results),
        "resources": resources_table(stats),
        "targets": [t.row() for t in targets(results, stats)],
        "operator": operator_lines(operator) if operator else ["Not measured (--no-operator)."],
    }
    print("\n".join(sections["ratios"] + [""] + sections["targets"] + [""] + sections["resources"]))
    if not args.no_write:
        pngs = plot(results, stats, DOC.parent)
        write_doc(sections, args, took, (load_before, os.getloadavg()[0]), pngs, lite_version)
        print(f"wrote {DOC.relative_to(harness.ROOT)} and " + ", ".join(f"docs/{p}" for p in pngs))


if __name__ == "__main__":
    main()
