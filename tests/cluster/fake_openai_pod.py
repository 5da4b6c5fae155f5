"""The OpenAI fake (tests/fakes) serving inside a pod of the real-node tier, on 0.0.0.0:8080.

The pod mounts tests/fakes from a ConfigMap and runs this file with the sidecar image's Python. A
request must carry the key in $OPENAI_API_KEY (from a Secret), as OpenAI would insist. With
$FAKE_DELAY (seconds) every answer comes that late: a slow LLM call, for the shutdown tests.
"""

from __future__ import annotations

import asyncio
import os

from tests.fakes.openai import OpenAIFake


async def serve() -> None:
    fake = OpenAIFake(expected_key=os.environ["OPENAI_API_KEY"], keep=100)
    delay = float(os.environ.get("FAKE_DELAY", "0"))
    if delay:
        fake.slow(delay, times=10_000)
    await fake.start(host="0.0.0.0", port=8080)
    print(f"fake OpenAI listening on :{fake.port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve())
