"""Component files from --resources-path: loaded, hot-reloaded within 1 s, broken files reported."""

from __future__ import annotations

import asyncio
import logging
import os
import time

import pytest

from tests.conftest import ECHO, Running, StartSidecar, component_yaml


async def wait_for(predicate, timeout: float = 1.0) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await predicate():
            return time.monotonic() - started
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not met within {timeout:.1f}s")


async def converse_status(running: Running, name: str) -> int:
    status, _ = await running.post(f"/v1.0-alpha1/conversation/{name}/converse", {"inputs": ["ping"]})
    return status


async def test_added_file_serves_within_a_second(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar()
    assert await converse_status(running, "late") == 400
    (running.resources / "late.yaml").write_text(ECHO.format(name="late"))

    async def served() -> bool:
        return await converse_status(running, "late") == 200

    assert await wait_for(served) < 1.0


async def test_deleted_file_stops_serving(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar({"a.yaml": ECHO.format(name="a"), "b.yaml": ECHO.format(name="b")})
    (running.resources / "b.yaml").unlink()

    async def gone() -> bool:
        return await converse_status(running, "b") == 400

    await wait_for(gone)
    assert await converse_status(running, "a") == 200


async def test_broken_file_keeps_last_good_version(start_sidecar: StartSidecar,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    running = await start_sidecar({"a.yaml": ECHO.format(name="a")})
    caplog.set_level(logging.ERROR, "parley.loading")
    path = running.resources / "a.yaml"
    path.write_text("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: [unclosed\n")
    os.utime(path, (time.time() + 5, time.time() + 5))

    async def reported() -> bool:
        return any("a.yaml" in r.getMessage() and "not valid YAML" in r.getMessage() for r in caplog.records)

    await wait_for(reported)
    assert await converse_status(running, "a") == 200


async def test_bad_field_is_reported_with_file_component_and_field(start_sidecar: StartSidecar,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "parley.loading")
    running = await start_sidecar({
        "good.yaml": ECHO.format(name="good"),
        "bad.yaml": component_yaml("bad", metadata={"timeout": "forever"}),
    })
    assert await converse_status(running, "good") == 200
    assert await converse_status(running, "bad") == 400
    messages = [r.getMessage() for r in caplog.records]
    assert any("bad.yaml" in m and "'bad'" in m and "'timeout'" in m for m in messages), messages


async def test_change_swaps_without_dropping_in_flight(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar({"a.yaml": ECHO.format(name="a")})

    async def hammer() -> list[int]:
        return [await converse_status(running, "a") for _ in range(40)]

    task = asyncio.create_task(hammer())
    for i in range(5):
        (running.resources / "a.yaml").write_text(component_yaml("a", metadata={"timeout": f"{10 + i}s"}))
        await asyncio.sleep(0.06)
    assert set(await task) == {200}


async def test_non_conversation_components_are_skipped(start_sidecar: StartSidecar,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "parley.loading")
    running = await start_sidecar({"multi.yaml": "---\n".join([
        ECHO.format(name="echo"),
        component_yaml("statestore", "state.redis", {"redisHost": "localhost:6379"}),
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: cfg\nspec: {}\n",
    ])})
    assert await converse_status(running, "echo") == 200
    assert any("statestore" in r.getMessage() and "state.redis" in r.getMessage() for r in caplog.records)


async def test_unknown_pii_entity_fails_the_component_at_load(start_sidecar: StartSidecar,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "parley.loading")
    running = await start_sidecar({"p.yaml": component_yaml("p", metadata={"piiEntities": "EMAIL,SHOE_SIZE"})})
    assert await converse_status(running, "p") == 400
    assert any("'p'" in r.getMessage() and "piiEntities" in r.getMessage() and "SHOE_SIZE" in r.getMessage()
               for r in caplog.records), [r.getMessage() for r in caplog.records]
