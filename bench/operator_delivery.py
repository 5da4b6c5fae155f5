"""Time until one Component change reaches 100 and 500 connected sidecar streams (issue 5).

    python -m bench.operator_delivery [--sidecars 100 500] [--changes 10]

The real ``parley-operator`` process against kmock; N sidecar streams (HTTPS, each with its own
pod-bound token) are held open by this process. For each change the clock starts just before the
PATCH reaches the API and stops when the updated Component has arrived on every stream, as read by
this process (which also hosts kmock, so reading 500 TLS streams in Python is part of the figure).
``operator_queued_all_mean_ms`` is the operator's own share, from the Component event to the
change being queued on every stream. Target: the change reaches all 500 streams within 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import time
from typing import Any

import aiohttp

from bench import operator_rig


class Stream:
    def __init__(self) -> None:
        self.at = 0.0
        self.latest = ""
        self.changed = asyncio.Event()

    async def follow(self, session: aiohttp.ClientSession, url: str, token: str, ready: asyncio.Event) -> None:
        async with session.get(url, headers={"Authorization": f"Bearer {token}"},
                               server_hostname=operator_rig.SERVER_NAME) as resp:
            assert resp.status == 200, await resp.text()
            while line := await resp.content.readuntil(b"\n", max_size=1 << 24):
                message = json.loads(line)
                if message["type"] == "snapshot":
                    ready.set()
                elif message["type"] == "upsert":
                    self.latest = message["component"]["metadata"][0]["value"]
                    self.at = time.perf_counter()
                    self.changed.set()


def _mean_ms(metrics: str, name: str) -> float:
    values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in metrics.splitlines()
              if line.startswith((f"{name}_sum", f"{name}_count"))}
    return 1000 * values.get(f"{name}_sum", 0.0) / max(values.get(f"{name}_count", 0.0), 1.0)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(count: int, changes: int) -> dict[str, Any]:
    async with operator_rig.cluster() as rig:
        await rig.put_component("shop", "llm", "1m", create=True)
        tokens = [await rig.add_pod("shop", f"web-{i}", "web") for i in range(count)]
        async with operator_rig.operator(rig) as op:
            context = ssl.create_default_context(cadata=op.ca_pem)
            url = f"https://127.0.0.1:{op.ports['stream']}/v1/stream"
            connector = aiohttp.TCPConnector(ssl=context, limit=0)
            async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=None)) as session:
                streams = [Stream() for _ in tokens]
                readies = [asyncio.Event() for _ in tokens]
                started = time.perf_counter()
                tasks = []
                # One at a time: kmock's emulator keeps each TokenReview it answers (the API server
                # does not), and two reviews in flight at once collide there.
                for s, t, r in zip(streams, tokens, readies, strict=True):
                    tasks.append(asyncio.create_task(s.follow(session, url, t, r)))
                    await asyncio.wait_for(r.wait(), 30)
                connect_s = time.perf_counter() - started
                # kmock records every request and matches each new one against all recorded ones,
                # so after 500 connections its answers slow to hundreds of ms (kube-apiserver's do not).
                # Forget the setup traffic: only the measured changes should pay for the API.
                rig.api._requests.clear()
                all_reached: list[float] = []
                first_reached: list[float] = []
                cpu_before = op.cpu_seconds
                for n in range(changes):
                    value = f"{n + 2}m"
                    for s in streams:
                        s.changed.clear()
                    t0 = time.perf_counter()
                    await rig.put_component("shop", "llm", value)
                    await asyncio.wait_for(asyncio.gather(*(s.changed.wait() for s in streams)), 30)
                    all_reached.append(time.perf_counter() - t0)
                    first_reached.append(min(stream.at for stream in streams) - t0)
                    assert all(s.latest == value for s in streams)
                    await asyncio.sleep(0.2)
                cpu_ms = (op.cpu_seconds - cpu_before) * 1000 / changes
                rss = op.rss_mb
                async with session.get(f"http://127.0.0.1:{op.ports['metrics']}/metrics") as resp:
                    metrics = await resp.text()
                queued_ms = _mean_ms(metrics, "parley_operator_delivery_duration_seconds")
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
    ms = [v * 1000 for v in all_reached]
    first = [v * 1000 for v in first_reached]
    return {"sidecars": count, "changes": changes, "connect_one_by_one_s": round(connect_s, 2),
            "first_reached_p50_ms": round(percentile(first, 0.5), 1),
            "all_reached_p50_ms": round(percentile(ms, 0.5), 1), "all_reached_max_ms": round(max(ms), 1),
            "operator_queued_all_mean_ms": round(queued_ms, 1), "operator_cpu_ms_per_change": round(cpu_ms, 1), "operator_rss_mb": round(rss, 1), "target_ms": 1000, "met": max(ms) <= 1000}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sidecars", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--changes", type=int, default=10)
    args = parser.parse_args()
    print(json.dumps([asyncio.run(measure(n, args.changes)) for n in args.sidecars], indent=2))


if __name__ == "__main__":
    main()
