"""Mutating-webhook latency at a steady 50 AdmissionReviews/s (issue 5).

    python -m bench.operator_webhook [--rate 50] [--seconds 20]

The real ``parley-operator`` process (kopf's webhook server, TLS) against kmock; the load is sent
like kube-apiserver sends it: HTTPS with keep-alive, the CA verified, one review at a time at a
fixed rate (open loop: a slow answer does not delay the next send). Latency is measured by the
sender, from request to parsed response. Target: p99 ≤ 10 ms. Wall-clock figures need a quiet machine;
``operator_cpu_ms_per_review`` (the operator process's CPU time per review) does not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import statistics
import time
import uuid
from typing import Any

import aiohttp

from bench import operator_rig

POD = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"generateName": "checkout-7d9f8-", "labels": {"app": "checkout"},
                 "annotations": {"dapr.io/enabled": "true", "dapr.io/app-id": "checkout", "dapr.io/app-port": "8080",
                                 "dapr.io/sidecar-cpu-request": "100m", "dapr.io/env": "A=1,B=2"}},
    "spec": {"containers": [{"name": "app", "image": "shop/checkout:1"}]},
}


def review() -> dict[str, Any]:
    resource = {"group": "", "version": "v1", "resource": "pods"}
    kind = {"group": "", "version": "v1", "kind": "Pod"}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": str(uuid.uuid4()), "kind": kind, "resource": resource, "requestKind": kind,
        "requestResource": resource, "name": "", "namespace": "shop", "operation": "CREATE",
        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller", "groups": []},
        "object": POD, "oldObject": None, "dryRun": False}}


def _server_side(metrics: str) -> dict[str, float]:
    """From the operator's own ``parley_operator_webhook_duration_seconds{webhook="mutate"}``: its
    mean, and the histogram bucket bounds that hold 50 % and 99 % of the reviews."""
    total = count = 0.0
    buckets: list[tuple[float, float]] = []
    for line in metrics.splitlines():
        if not line.startswith("parley_operator_webhook_duration_seconds_") or 'webhook="mutate"' not in line:
            continue
        name, value = line.rsplit(" ", 1)
        if name.startswith("parley_operator_webhook_duration_seconds_sum"):
            total = float(value)
        elif name.startswith("parley_operator_webhook_duration_seconds_count"):
            count = float(value)
        elif 'le="' in name:
            bound = name.split('le="')[1].split('"')[0]
            buckets.append((float("inf") if bound == "+Inf" else float(bound), float(value)))
    buckets.sort()

    def upper(q: float) -> float:
        return next((bound for bound, seen in buckets if seen >= q * count), float("inf")) * 1000

    return {"mean_ms": 1000 * total / max(count, 1.0), "p50_le_ms": upper(0.5), "p99_le_ms": upper(0.99)}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(rate: float, seconds: float) -> dict[str, Any]:
    async with operator_rig.cluster() as rig, operator_rig.operator(rig) as op:
        context = ssl.create_default_context(cadata=op.ca_pem)
        url = f"https://127.0.0.1:{op.ports['webhook']}/mutate"
        latencies: list[float] = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context, limit=8)) as session:

            async def one(record: bool) -> None:
                body = json.dumps(review())
                started = time.perf_counter()
                async with session.post(url, data=body, headers={"Content-Type": "application/json"},
                                        server_hostname=operator_rig.SERVER_NAME) as resp:
                    answer = await resp.json()
                elapsed = time.perf_counter() - started
                assert answer["response"]["allowed"] and answer["response"]["patchType"] == "JSONPatch"
                if record:
                    latencies.append(elapsed)

            for _ in range(20):  # warm-up: connections, imports, caches
                await one(False)
            interval, tasks = 1.0 / rate, []
            cpu_before = op.cpu_seconds
            start = time.perf_counter()
            for i in range(int(rate * seconds)):
                await asyncio.sleep(max(0.0, start + i * interval - time.perf_counter()))
                tasks.append(asyncio.create_task(one(True)))
            await asyncio.gather(*tasks)
            cpu_ms = (op.cpu_seconds - cpu_before) * 1000 / max(1, len(tasks))
            rss = op.rss_mb
            async with session.get(f"http://127.0.0.1:{op.ports['metrics']}/metrics") as resp:
                server = _server_side(await resp.text())
    ms = [v * 1000 for v in latencies]
    return {"reviews": len(ms), "rate_per_s": rate, "p50_ms": round(percentile(ms, 0.50), 2),
            "p90_ms": round(percentile(ms, 0.90), 2), "p99_ms": round(percentile(ms, 0.99), 2),
            "max_ms": round(max(ms), 2), "mean_ms": round(statistics.fmean(ms), 2), "operator_rss_mb": round(rss, 1),
            "operator_cpu_ms_per_review": round(cpu_ms, 2),
            "server_side_mean_ms": round(server["mean_ms"], 2), "server_side_p50_at_most_ms": server["p50_le_ms"],
            "server_side_p99_at_most_ms": server["p99_le_ms"],
            "target_p99_ms": 10.0, "met": percentile(ms, 0.99) <= 10.0}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.rate, args.seconds)), indent=2))


if __name__ == "__main__":
    main()
