"""Costs inside the sidecar's pipeline (issue: cache, PII, memory): no network, no HTTP.

    python -m bench.pipeline_costs

- a cache hit: one alpha2 request answered from the response cache, from the decoded protobuf
  request to the protobuf response (targets: ≤ 0.3 ms p50), next to the same request answered by
  echo without a cache (the baseline, measured in the same run);
- PII scrubbing per KiB of English text with a few PII items (target ≤ 0.2 ms/KiB), next to a
  plain ``str.lower()`` pass over the same text (the floor of touching every byte once).
"""

from __future__ import annotations

import asyncio
import statistics
import time

from dapr.proto.runtime.v1 import ai_pb2

from parley_sidecar.components.spec import ComponentSpec
from parley_sidecar.components.store import ComponentStore
from parley_sidecar.conversation import alpha2, pii
from parley_sidecar.conversation.pipeline import Pipeline
from parley_sidecar.metrics import Metrics

TEXT = (
    "Hello team, the quarterly report is attached. Please call me at +1 415 555 0132 or write to "
    "jane.doe@example.com before Friday. The staging host is 10.20.30.40 and the release is v2.3.1, "
    "shipped on 2026-11-20T10:00:00Z for $1,299.00 per seat. Card on file: 4111 1111 1111 1111. "
)


def request(name: str) -> ai_pb2.ConversationRequestAlpha2:
    req = ai_pb2.ConversationRequestAlpha2(name=name)
    req.inputs.add().messages.add().of_user.content.add(text="What is the capital of France? Answer briefly.")
    return req


def percentiles(samples: list[float]) -> tuple[float, float]:
    samples.sort()
    return statistics.median(samples) * 1000, samples[int(len(samples) * 0.99)] * 1000


async def time_requests(pipeline: Pipeline, name: str, n: int) -> tuple[float, float]:
    req = request(name)
    await alpha2.converse(pipeline, req)  # warm up, and fill the cache
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await alpha2.converse(pipeline, req)
        samples.append(time.perf_counter() - started)
    return percentiles(samples)


async def main() -> None:
    store = ComponentStore()
    await store.apply(ComponentSpec(name="plain", type="conversation.echo", version="v1"))
    await store.apply(ComponentSpec(name="cached", type="conversation.echo", version="v1",
                                    metadata={"cacheTTL": "10m"}))
    pipeline = Pipeline(store, Metrics("bench"))
    plain = await time_requests(pipeline, "plain", 5000)
    hit = await time_requests(pipeline, "cached", 5000)
    print(f"alpha2 answered by echo, no cache: p50 {plain[0]:.3f} ms, p99 {plain[1]:.3f} ms")
    print(f"alpha2 answered from the cache   : p50 {hit[0]:.3f} ms, p99 {hit[1]:.3f} ms "
          f"(target p50 ≤ 0.3 ms; {hit[0] / plain[0]:.2f}x the uncached echo)")

    scrubber = pii.Scrubber()
    text = (TEXT * 40)[:16 * 1024]
    kib = len(text.encode()) / 1024
    rounds = 200
    started = time.perf_counter()
    for _ in range(rounds):
        _, found = scrubber.scrub(text)
    per_kib = (time.perf_counter() - started) / rounds / kib * 1000
    started = time.perf_counter()
    for _ in range(rounds):
        text.lower()
    floor = (time.perf_counter() - started) / rounds / kib * 1000
    print(f"PII scrubbing: {per_kib:.3f} ms per KiB (target ≤ 0.2), {sum(found.values())} items per 16 KiB; "
          f"a str.lower() pass: {floor:.4f} ms per KiB")
    await pipeline.aclose()
    await store.aclose()


if __name__ == "__main__":
    asyncio.run(main())
