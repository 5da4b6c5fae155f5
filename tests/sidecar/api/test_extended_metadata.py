"""``PUT /v1.0/metadata/{key}``: stored as daprd stores it, but bounded in keys and bytes, so a client
that keeps writing new keys cannot grow the sidecar without limit (daprd's store has no bound)."""

from __future__ import annotations

from typing import Any

from parley_sidecar.api.public import MAX_EXTENDED_BYTES, MAX_EXTENDED_KEYS
from tests.conftest import Running


async def put(running: Running, key: str, value: bytes) -> tuple[int, Any]:
    async with running.session.put(f"{running.http}/v1.0/metadata/{key}", data=value) as resp:
        return resp.status, (await resp.json() if resp.content_type == "application/json" else await resp.read())


async def extended(running: Running) -> dict[str, str]:
    async with running.session.get(running.public + "/v1.0/metadata") as resp:
        stored: dict[str, str] = (await resp.json())["extended"]
    stored.pop("daprRuntimeVersion")
    return stored


async def test_new_keys_beyond_the_bound_are_refused_with_a_clear_error(sidecar: Running) -> None:
    for i in range(MAX_EXTENDED_KEYS):
        assert await put(sidecar, f"key{i}", b"v") == (204, b"")
    status, body = await put(sidecar, "one-too-many", b"v")
    assert status == 400
    assert body == {"errorCode": "ERR_METADATA_LIMIT", "message": (
        f"failed setting extended metadata 'one-too-many': extended metadata already holds "
        f"{MAX_EXTENDED_KEYS} keys, the most kept")}
    stored = await extended(sidecar)
    assert len(stored) == MAX_EXTENDED_KEYS and "one-too-many" not in stored
    assert await put(sidecar, "key7", b"replaced") == (204, b"")  # an existing key may still change
    assert (await extended(sidecar))["key7"] == "replaced"


async def test_values_beyond_the_byte_bound_are_refused_and_nothing_changes(sidecar: Running) -> None:
    assert await put(sidecar, "cliPID", b"4242") == (204, b"")
    status, body = await put(sidecar, "cliPID", b"x" * MAX_EXTENDED_BYTES)
    assert (status, body["errorCode"]) == (400, "ERR_METADATA_LIMIT")
    assert body["message"].endswith(f"keys and values would exceed {MAX_EXTENDED_BYTES} bytes in all")
    assert await extended(sidecar) == {"cliPID": "4242"}


async def test_many_puts_keep_the_store_within_its_bytes(sidecar: Running) -> None:
    """The outside review's case, shortened: each PUT a new key with a 4 KiB value."""
    refused = 0
    for i in range(300):
        status, _ = await put(sidecar, f"k{i}", b"v" * 4096)
        refused += status == 400
    stored = await extended(sidecar)
    assert sum(len(k.encode()) + len(v.encode()) for k, v in stored.items()) <= MAX_EXTENDED_BYTES
    assert refused == 300 - len(stored) > 0
    assert all(v == "v" * 4096 for v in stored.values())  # values are kept whole, as daprd keeps them
