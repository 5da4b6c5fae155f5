"""What ten concurrent 50 MB provider answers cost the sidecar, with and without the answer cap.

    python -m bench.upstream_limits

One OpenAI component per case, built by the store as the sidecar builds it (its own pool), calls
the OpenAI fake (``tests/fakes``) on loopback; the fake writes each 50 MB body, chunked, from one
reused buffer, so what grows is the sidecar's side. Resident memory is read from
``/proc/self/status``: ``VmHWM`` (the peak) and ``VmRSS`` after the calls. The cases run from the
cheapest up, because the peak never goes down:

- ``maxResponseBytes`` at its default (4Mi): each answer is refused once 4 MiB have been read;
- ``maxResponseBytes: 64Mi``: each answer is read whole, as every answer was before the cap.
"""

from __future__ import annotations

import asyncio
import gc
import time

from tests.fakes import OpenAIFake

from parley_sidecar import errors
from parley_sidecar.components import base
from parley_sidecar.components.spec import ComponentSpec
from parley_sidecar.components.store import ComponentStore

ANSWER = 50 * 10**6
CONCURRENT = 10


def status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


async def case(store: ComponentStore, fake: OpenAIFake, label: str, metadata: dict[str, str]) -> None:
    name = label.split(maxsplit=1)[0]
    await store.apply(ComponentSpec(name=name, type="conversation.openai", version="v1", metadata={
        "key": "sk-bench", "endpoint": f"{fake.url}/v1", "model": "m", **metadata}))
    entry = store.get(name)
    assert entry is not None
    for _ in range(CONCURRENT):
        fake.big(ANSWER, chunked=True)
    request = base.ConverseRequest(messages=(base.Message(base.Role.USER, (base.TextPart("everything"),)),))
    gc.collect()
    before = status("VmRSS")
    started = time.perf_counter()
    results = await asyncio.gather(*(entry.instance.converse(request, timeout=120) for _ in range(CONCURRENT)),
                                   return_exceptions=True)
    elapsed = time.perf_counter() - started
    reasons = {r.reason.split(":")[-1].strip() if isinstance(r, errors.ProviderError) else type(r).__name__
               for r in results}
    gc.collect()
    print(f"{label:<28} peak RSS {status('VmHWM') / 2**20:7.1f} MiB (+{(status('VmHWM') - before) / 2**20:6.1f}), "
          f"after {status('VmRSS') / 2**20:6.1f} MiB; {elapsed:.1f}s; answers: {sorted(reasons)}")
    await store.remove(name)


async def main() -> None:
    fake = await OpenAIFake(keep=1).start()
    store = ComponentStore()
    gc.collect()
    print(f"{CONCURRENT} concurrent answers of {ANSWER / 1e6:.0f} MB; idle RSS {status('VmRSS') / 2**20:.1f} MiB")
    try:
        await case(store, fake, "capped (default 4Mi)", {})
        await case(store, fake, "uncapped (64Mi)", {"maxResponseBytes": "64Mi"})
    finally:
        await store.aclose()
        await fake.close()


if __name__ == "__main__":
    asyncio.run(main())
