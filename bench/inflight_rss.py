"""Goal 3b of issue #18: each server's RSS with 1,000 calls in flight to a slow upstream.

    python -m bench.inflight_rss [--calls 1000] [--rounds 2] [--baseline DIR] [--no-daprd]

A fake OpenAI that holds every chat-completions request until told (this module run with
``--serve-fake``: ``GET /held`` counts the requests it holds, ``POST /release`` answers them all;
none is held longer than 120 s) runs in its own process. Each server (the real daprd, parley) is
started fresh per measurement, with one ``conversation.openai`` Component pointing at the fake and
``maxConnections`` raised to the number of calls (parley's own pool bound, 64 by default; daprd's
Go client has no per-host connection limit and ignores the field). Then:

1. idle: ``VmRSS`` one second after ready;
2. warm: 50 calls at once, held and released, so the pools, lazily imported modules and first-call
   caches exist; ``VmRSS`` after;
3. in flight: ``--calls`` alpha2 calls at once over as many client connections (aiohttp, this
   process, every text unique); when the fake holds all of them, ``VmRSS`` sampled for one second
   (the highest kept), then they are released and every answer must be a 200.

Reported per server: the three RSS figures, (in flight − warm) / calls as the memory one in-flight
call costs, and the ratio parley/daprd. Measurements alternate (daprd, parley, parley, daprd, …).
``--baseline DIR`` adds parley from another checkout as ``base`` for an A/B.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench import harness

WARM = 50
HOLD_MAX = 120.0
REPLY = {"id": "chatcmpl-slow", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
         "choices": [{"index": 0, "message": {"role": "assistant", "content": "a slow answer"},
                      "finish_reason": "stop", "logprobs": None}],
         "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}}


# -- the slow fake (a child process) ---------------------------------------------------------------


def serve_fake(port: int) -> None:
    state: dict[str, Any] = {"held": 0, "release": asyncio.Event()}

    async def chat(request: web.Request) -> web.Response:
        await request.read()
        release: asyncio.Event = state["release"]
        state["held"] += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(release.wait(), HOLD_MAX)
        finally:
            state["held"] -= 1
        return web.json_response(REPLY)

    async def held(_: web.Request) -> web.Response:
        return web.Response(text=str(state["held"]))

    async def release(_: web.Request) -> web.Response:
        state["release"].set()
        state["release"] = asyncio.Event()
        return web.Response(text="released")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/held", held)
    app.router.add_post("/release", release)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, backlog=4096)


# -- the measurement -------------------------------------------------------------------------------


def component(directory: Path, fake_port: int, calls: int) -> Path:
    (directory / "openai.yaml").write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: openai\n"
        "spec:\n  type: conversation.openai\n  version: v1\n  metadata:\n"
        "  - name: key\n    value: sk-bench\n  - name: model\n    value: gpt-4o-mini\n"
        f"  - name: endpoint\n    value: http://127.0.0.1:{fake_port}/v1\n"
        f"  - name: maxConnections\n    value: \"{calls}\"\n")
    return directory


def body(i: int) -> bytes:
    return json.dumps({"inputs": [{"messages": [{"ofUser": {"content": [
        {"text": f"slow question {i} {time.time_ns()}"}]}}]}]}).encode()


async def held(session: aiohttp.ClientSession, fake: str) -> int:
    async with session.get(f"{fake}/held") as resp:
        return int(await resp.text())


async def batch(url: str, fake: str, calls: int, pid: int, sample_s: float) -> tuple[float, list[int]]:
    """``calls`` calls at once; the highest RSS while the fake holds all of them, and the statuses."""
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=HOLD_MAX + 30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session, \
            aiohttp.ClientSession() as control:

        async def one(i: int) -> int:
            try:
                async with session.post(url, data=body(i), headers={"Content-Type": "application/json"}) as resp:
                    await resp.read()
                    return resp.status
            except aiohttp.ClientError:
                return 0

        tasks = [asyncio.create_task(one(i)) for i in range(calls)]
        deadline = time.monotonic() + 90
        while await held(control, fake) < calls:
            if time.monotonic() > deadline or all(t.done() for t in tasks):
                break
            await asyncio.sleep(0.1)
        reached = await held(control, fake)
        peak = 0.0
        end = time.monotonic() + sample_s
        while time.monotonic() < end:
            peak = max(peak, harness.rss_mb(pid))
            await asyncio.sleep(0.05)
        async with control.post(f"{fake}/release") as resp:
            await resp.read()
        statuses = await asyncio.gather(*tasks)
    if reached < calls:
        print(f"    only {reached} of {calls} calls reached the fake", flush=True)
    return peak, list(statuses)


def measure(name: str, argv: list[str], env: dict[str, str] | None, http: int, fake: str,
            calls: int) -> dict[str, float]:
    url = f"http://127.0.0.1:{http}"
    with harness.serve(argv, f"{url}/v1.0/healthz", url, env=env) as server:
        time.sleep(1.0)
        idle = server.rss_mb
        target = f"{url}/v1.0-alpha2/conversation/openai/converse"
        _, warm_statuses = asyncio.run(batch(target, fake, WARM, server.proc.pid, 0.0))
        time.sleep(0.5)
        warm = server.rss_mb
        peak, statuses = asyncio.run(batch(target, fake, calls, server.proc.pid, 1.0))
        bad = [s for s in warm_statuses + statuses if s != 200]
        if bad:
            sys.exit(f"{name}: {len(bad)} calls did not answer 200 (e.g. {bad[:5]})")
        threads = len(os.listdir(f"/proc/{server.proc.pid}/task"))
    result = {"idle": idle, "warm": warm, "inflight": peak, "per_call_kb": (peak - warm) * 1024 / calls,
              "threads": threads}
    print(f"  {name:6} idle {idle:6.1f} MB  warm {warm:6.1f} MB  {calls} in flight {peak:6.1f} MB  "
          f"{result['per_call_kb']:5.1f} KB per call  {threads} threads", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.inflight_rss")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2, help="fresh starts per server (alternating)")
    harness.add_server_args(parser)
    parser.add_argument("--serve-fake", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        serve_fake(args.serve_fake)
        return
    names, daprd_bin = harness.servers(args)
    load_before = os.getloadavg()[0]
    fake_port = harness.free_port()
    fake = f"http://127.0.0.1:{fake_port}"
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as tmp, harness.serve(
            [sys.executable, "-m", "bench.inflight_rss", "--serve-fake", str(fake_port)], f"{fake}/held", fake):
        resources = component(Path(tmp), fake_port, args.calls)
        for round_ in range(args.rounds):
            for name in names if round_ % 2 == 0 else names[::-1]:
                argv, ports = harness.server_argv(name, daprd_bin, resources)
                env = harness.server_env(args, name)
                results[name].append(measure(name, argv, env, ports["http"], fake, args.calls))
    print(f"\n# bench.inflight_rss: {args.calls} calls in flight, {args.rounds} fresh starts per server, "
          f"load average before {load_before:.1f}, after {os.getloadavg()[0]:.1f}; medians")
    print(f"| server | idle MB | warm MB | {args.calls} in flight MB | KB per in-flight call | threads |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    med = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in results.items()}
    for name, m in med.items():
        print(f"| {name} | {m['idle']:.1f} | {m['warm']:.1f} | {m['inflight']:.1f} | {m['per_call_kb']:.1f} | "
              f"{m['threads']:.0f} |")
    if "daprd" in med:
        p, d = med["parley"], med["daprd"]
        print(f"parley/daprd: in flight {p['inflight'] / d['inflight']:.2f}, "
              f"per call {p['per_call_kb'] / d['per_call_kb']:.2f}")


if __name__ == "__main__":
    main()
