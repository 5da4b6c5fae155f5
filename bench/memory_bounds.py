"""Worst-case memory of one component's conversation memory and response cache, at the defaults.

    python -m bench.memory_bounds

Resident memory (VmRSS) is read before and after filling, in this process, with nothing else
running. The stores are the sidecar's own (``memory.Memory``, ``cache.LocalStore``) with the
settings a Component gets when it sets only ``memory: "true"`` and ``responseCacheTTL``; every
message is a new string, as a request's would be (shared strings would under-count).

- memory, emoji text: 10,000 conversations each sent 32 KiB of 4-byte emoji; the per-component
  byte bound (``memoryMaxTotalBytes``, 16Mi) keeps the most recent ~512 of them;
- memory, ASCII with one emoji: each message ASCII after a single emoji. UTF-8 would count one byte
  per ASCII character, but CPython stores the whole string at four bytes per character once one
  character is outside the BMP; the bounds count what CPython holds, so this costs no more;
- memory, tiny messages: 10,000 conversations × ``memoryMaxTurns`` (20) messages of one emoji each:
  far under the byte bound, so the count bounds rule, and per-message overhead is what costs;
- cache: ``cacheMaxEntries`` (1000) answers of emoji text filling ``cacheMaxBytes`` (16Mi).

Before the byte bounds (#14), 10,000 conversations × 32,000 characters of emoji measured 1.34 GB.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Awaitable, Callable

from parley_sidecar.components import base
from parley_sidecar.components.spec import ComponentSpec
from parley_sidecar.components.store import ComponentStore
from parley_sidecar.conversation import cache, memory

EMOJI = "\U0001F600"


def rss() -> int:
    """Resident set size of this process, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def text(tag: int, nbytes: int) -> str:
    """A new string of about ``nbytes`` UTF-8 bytes of emoji (never an interned or shared one)."""
    return f"{tag}:" + EMOJI * (nbytes // 4)


def message(role: base.Role, content: str) -> base.Message:
    return base.Message(role, (base.TextPart(content),))


async def measure(label: str, fill: Callable[[], Awaitable[str]]) -> None:
    gc.collect()
    before = rss()
    started = time.perf_counter()
    detail = await fill()
    gc.collect()
    grown = rss() - before
    print(f"{label:<38} RSS +{grown / 2**20:7.1f} MiB   ({detail}; {time.perf_counter() - started:.1f}s)")


async def main() -> None:
    components = ComponentStore()
    await components.apply(ComponentSpec(name="chat", type="conversation.echo", version="v1",
                                         metadata={"memory": "true", "responseCacheTTL": "10m"}))
    entry = components.get("chat")
    assert entry is not None
    limits, cache_settings = entry.settings.memory, entry.settings.cache
    print(f"defaults: memoryMaxBytes={limits.max_bytes} memoryMaxTotalBytes={limits.max_total_bytes} "
          f"memoryMaxConversations={limits.max_conversations} memoryMaxTurns={limits.max_turns} "
          f"cacheMaxEntries={cache_settings.max_entries} cacheMaxBytes={cache_settings.max_bytes}")
    keep: list[object] = []

    async def emoji_memory() -> str:
        store = memory.Memory()
        keep.append(store)
        half = limits.max_bytes // 2 - 16
        for n in range(limits.max_conversations):
            turn = (message(base.Role.USER, text(n, half)), message(base.Role.ASSISTANT, text(n, half)))
            await store.remember("chat", f"room-{n}", turn, limits)
        return f"{len(store)} conversations kept, {store.size('chat') / 2**20:.1f} MiB counted"

    async def mixed_memory() -> str:
        store = memory.Memory()
        keep.append(store)
        quarter = limits.max_bytes // 8 - 128  # two messages of this many characters, 4 bytes each, fit
        for n in range(limits.max_conversations):
            turn = tuple(message(role, f"{EMOJI}{n}:" + "a" * (quarter - 12))
                         for role in (base.Role.USER, base.Role.ASSISTANT))
            await store.remember("chat", f"room-{n}", turn, limits)
        return f"{len(store)} conversations kept, {store.size('chat') / 2**20:.1f} MiB counted"

    async def tiny_memory() -> str:
        store = memory.Memory()
        keep.append(store)
        for n in range(limits.max_conversations):
            turn = tuple(message(base.Role.USER if i % 2 == 0 else base.Role.ASSISTANT, f"{EMOJI}{n % 10}")
                         for i in range(limits.max_turns))
            await store.remember("chat", f"room-{n}", turn, limits)
        return f"{len(store)} conversations kept, {store.size('chat') / 2**20:.1f} MiB counted"

    async def full_cache() -> str:
        store = cache.LocalStore(cache_settings.max_entries, cache_settings.max_bytes, lambda reason: None)
        keep.append(store)
        size = cache_settings.max_bytes // cache_settings.max_entries
        for n in range(cache_settings.max_entries * 2):
            answer = base.ConverseResponse(
                outputs=(base.Output((base.Choice("stop", 0, text(n, size - 200), ()),)),),
                usage=None, model="m")
            await store.put(f"key-{n}", cache.encode(answer), 600.0)
        return f"{len(store)} answers kept"

    await measure("memory, 32 KiB emoji conversations", emoji_memory)
    await measure("memory, ASCII after one emoji", mixed_memory)
    await measure("memory, 20 one-emoji messages each", tiny_memory)
    await measure("response cache full of emoji answers", full_cache)
    await components.aclose()


if __name__ == "__main__":
    asyncio.run(main())
