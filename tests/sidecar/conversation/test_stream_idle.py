"""``streamIdleTimeout`` over many pieces: one timer per stream, re-armed lazily (``resiliency._IdleWatch``).

The timer is not rescheduled on every piece, so what must hold is what a user sees: a stream whose
pieces keep coming is never cut however long it lasts, one that stalls after many pieces is cut
(and its upstream closed), and a client who leaves while the stream waits is a cancellation, not a
stall. In-test components as in ``test_stream_pipeline``; nothing is patched.
"""

from __future__ import annotations

import asyncio

import pytest

from parley_sidecar import errors
from parley_sidecar.conversation import pipeline
from tests.sidecar.conftest import Build
from tests.sidecar.conversation.test_stream_pipeline import Planned, Step, ask, collect, loaded, pipe, store, text_of

__all__ = ["pipe", "store"]  # fixtures, shared with test_stream_pipeline


async def test_pieces_that_keep_coming_are_never_cut_however_long_the_stream(
        build: Build, pipe: pipeline.Pipeline) -> None:
    plan: list[Step] = ["w0 "]
    for index in range(1, 9):  # 8 gaps of a fifth of the idle timeout: the stream lasts 1.6 idle periods
        plan += [0.1, f"w{index} "]
    entry = await loaded(build, Planned(plan), streamIdleTimeout="500ms")
    assert text_of(await collect(pipe.stream("c", entry, ask("x")))) == "".join(f"w{i} " for i in range(9))


async def test_a_stream_that_stalls_after_many_pieces_is_cut_and_its_upstream_closed(
        build: Build, pipe: pipeline.Pipeline) -> None:
    plan: list[Step] = []
    for index in range(6):
        plan += [f"p{index} ", 0.03]
    component = Planned([*plan, None])
    entry = await loaded(build, component, streamIdleTimeout="150ms")
    received: list[str] = []
    with pytest.raises(errors.InvokeError, match=r"stalled: no piece for 0\.15s \(streamIdleTimeout\)"):
        async for delta in pipe.stream("c", entry, ask("x")):
            received.append(delta.content)
    assert received == [f"p{index} " for index in range(6)]
    assert component.closed == 1 and entry.in_flight == 0


async def test_a_client_leaving_while_the_stream_waits_is_a_cancellation_not_a_stall(
        build: Build, pipe: pipeline.Pipeline) -> None:
    component = Planned(["first ", None])
    entry = await loaded(build, component, streamIdleTimeout="30s")
    got_first = asyncio.Event()

    async def client() -> None:
        async for _ in pipe.stream("c", entry, ask("x")):
            got_first.set()

    task = asyncio.create_task(client())
    await got_first.wait()
    await asyncio.sleep(0.01)  # the client is now waiting for the second piece
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert component.closed == 1 and entry.in_flight == 0


async def test_after_a_stall_the_next_stream_on_the_component_works(build: Build, pipe: pipeline.Pipeline) -> None:
    component = Planned(["a ", None], ["b ", 0.02, "c"])
    entry = await loaded(build, component, streamIdleTimeout="100ms")
    with pytest.raises(errors.InvokeError, match="stalled"):
        await collect(pipe.stream("c", entry, ask("x")))
    assert text_of(await collect(pipe.stream("c", entry, ask("x")))) == "b c"
