"""Soak: a real sidecar under a long mixed load, its memory sampled from start to end.

    python -m bench.soak [--requests 1000000] [--max-seconds 3600] [--concurrency 16] [--samples 20]

One ``parley-sidecar`` process (``harness.serve``) with a component for each feature whose state
could grow without bound:

- ``echo``: plain;
- ``cached``: echo with ``responseCacheTTL`` (one request in four repeats one of 200 prompts, the
  rest are new: hits, and a cache that fills and evicts);
- ``memory``: echo with ``memory: true``, each request under one of 20,000 context ids (twice the
  in-process store's default bound, so conversations are evicted too);
- ``pii``: requests with ``scrubPII`` carrying e-mails, phone numbers, card numbers, IPs;
- ``openai``: ``conversation.openai`` pointed at the local OpenAI fake (``tests/fakes``, run as a
  child process by ``bench.provider_overhead.start_fake``).

Requests (alpha1 and alpha2) are spread over those five, on loopback only. It stops after
``--requests`` requests or ``--max-seconds``, whichever comes first, and prints the sidecar's RSS
at start (ready, idle), after the warm-up (first 5 %), every ``--samples``-th of the run, and at
the end, then a summary line with the growth as a ratio. Every answer must be a 200: the count of
others is printed and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import aiohttp
from tests.manifests import component_yaml

from bench import harness, provider_overhead
from bench.grpc_load import install_uvloop

PROMPTS = [f"Summarise chapter {i} of the Dapr book in one line" for i in range(200)]
PII = ["mail me at jane.doe{i}@example.com", "call +1 (555) 010-{i:04d} after six", "card 4111 1111 1111 1111, ip 10.0.{i}.7",
       "ssn 123-45-{i:04d} and iban DE89 3704 0044 0532 0130 00"]
CONTEXTS = 20_000


def components(fake_port: int) -> dict[str, str]:
    return {
        "echo.yaml": component_yaml("echo"),
        "cached.yaml": component_yaml("cached", metadata={"responseCacheTTL": "10m"}),
        "memory.yaml": component_yaml("memory", metadata={"memory": "true"}),
        "pii.yaml": component_yaml("pii"),
        "openai.yaml": component_yaml("openai", "conversation.openai", {
            "key": provider_overhead.KEY, "model": "gpt-4o-mini", "endpoint": f"http://127.0.0.1:{fake_port}/v1"}),
    }


def alpha2(name: str, text: str, **extra: Any) -> tuple[str, bytes]:
    body = {"inputs": [{"messages": [{"ofUser": {"content": [{"text": text}]}}]}], **extra}
    return f"/v1.0-alpha2/conversation/{name}/converse", json.dumps(body).encode()


def alpha1(name: str, text: str, **extra: Any) -> tuple[str, bytes]:
    return f"/v1.0-alpha1/conversation/{name}/converse", json.dumps({"inputs": [{"content": text}], **extra}).encode()


def mix() -> Iterator[tuple[str, bytes]]:
    """The request stream: one feature after another, each with varying content."""
    for i in itertools.count():
        kind = i % 6
        if kind == 0:
            yield alpha1("echo", f"plain request {i}")
        elif kind == 1:
            text = PROMPTS[(i // 6) % len(PROMPTS)] if (i // 6) % 4 == 0 else f"a new prompt {i}"
            yield (alpha1 if i % 2 else alpha2)("cached", text)
        elif kind == 2:
            context = f"ctx-{(i * 7919) % CONTEXTS}"
            yield alpha1("memory", f"turn {i} of {context}", contextID=context)
        elif kind == 3:
            text = PII[i % len(PII)].format(i=i % 10_000)
            yield alpha2("pii", text, scrubPii=True) if i % 2 else alpha1("pii", text, scrubPII=True)
        elif kind == 4:
            yield alpha2("openai", f"question {i} for the model")
        else:
            yield alpha2("memory", f"alpha2 turn {i}", contextId=f"ctx-{i % CONTEXTS}")


async def load(url: str, total: int, max_seconds: float, concurrency: int, samples: int,
               rss: Any) -> tuple[int, float, Counter[int], list[tuple[int, float, float]]]:
    """Sends up to ``total`` requests; returns (sent, seconds, answers by status, RSS samples)."""
    stream = mix()
    sent = 0
    statuses: Counter[int] = Counter()
    marks = sorted({max(1, total // 20), *(total * k // samples for k in range(1, samples + 1))})
    taken: list[tuple[int, float, float]] = []
    began = time.perf_counter()
    deadline = began + max_seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal sent
            while sent < total and time.perf_counter() < deadline:
                path, body = next(stream)
                sent += 1
                try:
                    async with session.post(url + path, data=body, headers=headers) as resp:
                        await resp.read()
                        statuses[resp.status] += 1
                except aiohttp.ClientError:
                    statuses[0] += 1
                done = sum(statuses.values())
                if marks and done >= marks[0]:
                    marks.pop(0)
                    taken.append((done, time.perf_counter() - began, rss()))
                    print(f"  {done:>9} requests  {time.perf_counter() - began:8.1f} s  RSS {taken[-1][2]:7.1f} MB",
                          flush=True)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sent, time.perf_counter() - began, statuses, taken


def exercised(metrics_url: str) -> str:
    """What the features did, from the sidecar's own metrics: calls per component, cache, PII."""
    with urllib.request.urlopen(metrics_url, timeout=10) as resp:
        text = resp.read().decode()
    sums: Counter[str] = Counter()
    for line in text.splitlines():
        m = re.match(r'(dapr_component_conversation_count|parley_cache_requests_total|parley_pii_redactions_total)'
                     r'\{([^}]*)\} ([0-9.e+]+)$', line)
        if m is None:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2)))
        if m.group(1) == "dapr_component_conversation_count":
            sums[f"calls {labels.get('component')}"] += float(m.group(3))
        elif m.group(1) == "parley_cache_requests_total":
            sums[f"cache {labels.get('result')}"] += float(m.group(3))
        else:
            sums["PII redactions"] += float(m.group(3))
    return ", ".join(f"{k} {v:.0f}" for k, v in sorted(sums.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--max-seconds", type=float, default=3600.0, help="stop then even if fewer were sent")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--samples", type=int, default=20, help="RSS samples over the run")
    args = parser.parse_args()
    install_uvloop()
    fake, fake_port = provider_overhead.start_fake()
    try:
        resources = provider_overhead.write(components(fake_port))
        ports = [harness.free_port() for _ in range(4)]
        argv = harness.sidecar_argv(*ports, resources)
        base = f"http://127.0.0.1:{ports[0]}"
        with harness.serve(argv, f"{base}/v1.0/healthz", base) as sidecar:
            time.sleep(1.0)
            start = sidecar.rss_mb
            print(f"soak: {args.requests} requests, at most {args.max_seconds:.0f} s, {args.concurrency} connections; "
                  f"sidecar pid {sidecar.proc.pid}, RSS at start {start:.1f} MB", flush=True)
            sent, seconds, statuses, taken = asyncio.run(
                load(base, args.requests, args.max_seconds, args.concurrency, args.samples, lambda: sidecar.rss_mb))
            end = sidecar.rss_mb
            alive = sidecar.proc.poll() is None
            features = exercised(f"http://127.0.0.1:{ports[2]}/") if alive else "(sidecar gone)"
    finally:
        fake.terminate()
        fake.wait(10)
    warm = taken[0][2] if taken else start
    bad = sum(n for status, n in statuses.items() if status != 200)
    others = ", ".join(f"{s or 'connection error'}: {n}" for s, n in sorted(statuses.items()) if s != 200) or "none"
    print(f"non-200 answers: {others}")
    print(f"features exercised: {features}")
    print(f"soak summary: {sent} requests in {seconds:.0f} s ({sent / seconds:.0f} req/s), {bad} not 200; "
          f"RSS start {start:.1f} MB, after warm-up ({taken[0][0] if taken else 0} requests) {warm:.1f} MB, "
          f"end {end:.1f} MB; growth end/warm-up {end / warm:.2f}x, end/start {end / start:.2f}x; "
          f"sidecar {'alive' if alive else 'DEAD'}")
    if bad or not alive:
        sys.exit(1)


if __name__ == "__main__":
    main()
