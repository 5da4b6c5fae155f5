"""``Pipeline.stream``: the pipeline's steps on a streamed answer, with echo and in-test components.

In-test components are plain classes implementing ``base.Streaming``, loaded in place of the
instance of a real echo entry built by the store (the entry, its settings and lease are the real
ones); nothing of the library is patched.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from parley_sidecar import errors
from parley_sidecar.components import base, streaming
from parley_sidecar.components.store import ComponentStore, Entry
from parley_sidecar.conversation import pipeline
from parley_sidecar.metrics import Metrics
from tests.sidecar.conftest import Build


@pytest.fixture
async def store() -> AsyncIterator[ComponentStore]:
    components = ComponentStore()
    yield components
    await components.aclose()


@pytest.fixture
async def pipe(store: ComponentStore) -> AsyncIterator[pipeline.Pipeline]:
    made = pipeline.Pipeline(store, Metrics("test-app"))
    yield made
    await made.aclose()


def ask(text: str) -> base.ConverseRequest:
    return base.ConverseRequest(messages=(base.Message(base.Role.USER, (base.TextPart(text),)),))


async def collect(pieces: AsyncIterator[base.Delta]) -> list[base.Delta]:
    return [delta async for delta in pieces]


def text_of(pieces: Sequence[base.Delta]) -> str:
    return "".join(delta.content for delta in pieces)


class _Streamer:
    """What an in-test streaming component needs besides ``stream``: nothing to set up or close,
    and no ``converse`` (the pipeline must stream it)."""

    async def init(self, metadata: object) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def converse(self, request: base.ConverseRequest, *, timeout: float | None) -> base.ConverseResponse:
        raise AssertionError("a streaming component is streamed")


class Scripted(_Streamer):
    """Streams the given pieces; raises ``fail_after`` pieces when told; counts opens and closes."""

    def __init__(self, pieces: Sequence[str], *, error: errors.ProviderError | None = None,
                 fail_after: int = 0) -> None:
        self.pieces = list(pieces)
        self.error = error
        self.fail_after = fail_after
        self.opened = 0
        self.closed = 0

    async def stream(self, request: base.ConverseRequest, *, timeout: float | None) -> AsyncIterator[base.Delta]:
        self.opened += 1
        try:
            for index, piece in enumerate(self.pieces):
                if self.error is not None and index == self.fail_after:
                    raise self.error
                yield base.Delta(content=piece)
            if self.error is not None and self.fail_after >= len(self.pieces):
                raise self.error
            yield base.Delta(finish_reason="stop", usage=base.Usage(len(self.pieces), 2, len(self.pieces) + 2))
        finally:
            self.closed += 1


Step = str | errors.ProviderError | float | None
"""What a planned stream does next: yield a piece of text, raise, sleep that many seconds, or
(None) wait forever."""


class Planned(_Streamer):
    """A stream per plan, one plan per opening (the last plan repeats); records what it did."""

    def __init__(self, *plans: list[Step]) -> None:
        self.plans = plans
        self.opened = 0
        self.closed = 0
        self.produced = 0

    async def stream(self, request: base.ConverseRequest, *, timeout: float | None) -> AsyncIterator[base.Delta]:
        plan = self.plans[min(self.opened, len(self.plans) - 1)]
        self.opened += 1
        try:
            for step in plan:
                if step is None:
                    await asyncio.Event().wait()
                elif isinstance(step, float):
                    await asyncio.sleep(step)
                elif isinstance(step, errors.ProviderError):
                    raise step
                else:
                    self.produced += 1
                    yield base.Delta(content=step)
            yield base.Delta(finish_reason="stop", usage=base.Usage(self.produced, 1, self.produced + 1))
        finally:
            self.closed += 1


async def loaded(build: Build, component: object | None = None, name: str = "c", **metadata: str) -> Entry:
    entry = await build("conversation.echo", metadata, name=name)
    if component is not None:
        entry.instance = component  # type: ignore[assignment]
    return entry


async def test_echo_streams_its_answer_in_pieces(build: Build, pipe: pipeline.Pipeline) -> None:
    entry = await loaded(build)
    pieces = await collect(pipe.stream("c", entry, ask("one two three")))
    assert [delta.content for delta in pieces if delta.content] == ["one ", "two ", "three"]
    assert pieces[-1].finish_reason == "stop" and pieces[-1].usage == base.Usage(3, 3, 6)


async def test_a_failure_before_the_first_piece_raises_from_the_first_anext(
        build: Build, pipe: pipeline.Pipeline) -> None:
    entry = await loaded(build, Scripted(["a"], error=errors.ProviderError("upstream said no", status=400,
                                                                           retryable=False)))
    pieces = pipe.stream("c", entry, ask("x"))
    with pytest.raises(errors.InvokeError, match="upstream said no"):
        await anext(pieces)


async def test_a_failure_after_the_first_piece_raises_invoke_error_mid_stream(
        build: Build, pipe: pipeline.Pipeline) -> None:
    component = Scripted(["a ", "b "], error=errors.ProviderError("connection cut", retryable=True), fail_after=1)
    entry = await loaded(build, component, maxRetries="0")
    received: list[str] = []
    with pytest.raises(errors.InvokeError, match="connection cut"):
        async for delta in pipe.stream("c", entry, ask("x")):
            received.append(delta.content)
    assert received == ["a "]
    assert component.opened == 1 and component.closed == 1


async def test_memory_remembers_the_assembled_reply(build: Build, pipe: pipeline.Pipeline) -> None:
    entry = await loaded(build, memory="true")
    await collect(pipe.stream("c", entry, ask("first words"), context_id="room"))
    second = await collect(pipe.stream("c", entry, ask("then"), context_id="room"))
    # echo answers with every message it was sent: the first turn, its reply, the new one
    assert text_of(second) == "first words\nfirst words\nthen"


async def test_closing_the_stream_closes_the_components_stream(build: Build, pipe: pipeline.Pipeline) -> None:
    component = Scripted(["a ", "b ", "c "])
    entry = await loaded(build, component)
    pieces = pipe.stream("c", entry, ask("x"))
    assert (await anext(pieces)).content == "a "
    await pieces.aclose()
    assert component.closed == 1
    assert entry.in_flight == 0


async def test_streams_of_every_shape_rebuild_the_same_answer_as_call(build: Build, pipe: pipeline.Pipeline) -> None:
    entry = await loaded(build)
    request = base.ConverseRequest(messages=ask("where is it").messages,
                                   tools=(base.Tool("lookup", parameters={"properties": {"city": {}}}),))
    assembler = streaming.Assembler()
    for delta in await collect(pipe.stream("c", entry, request)):
        assembler.add(delta)
    assert assembler.response() == await pipe.call("c", entry, request)


# -- resiliency: only before the first piece -------------------------------------------------------

UNAVAILABLE = errors.ProviderError("upstream 503: overloaded", status=503, retryable=True)


async def test_a_failure_before_the_first_piece_is_retried(build: Build, pipe: pipeline.Pipeline) -> None:
    component = Planned([UNAVAILABLE], ["fine ", "answer"])
    entry = await loaded(build, component, retryBackoff="1ms")
    assert text_of(await collect(pipe.stream("c", entry, ask("x")))) == "fine answer"
    assert component.opened == 2 and component.closed == 2
    assert pipe.metrics.provider_retries.values == {("c", "503"): 1.0}


async def test_no_retry_once_a_piece_went_out(build: Build, pipe: pipeline.Pipeline) -> None:
    component = Planned(["half ", UNAVAILABLE], ["never"])
    entry = await loaded(build, component, retryBackoff="1ms")
    received: list[str] = []
    with pytest.raises(errors.InvokeError, match="overloaded"):
        async for delta in pipe.stream("c", entry, ask("x")):
            received.append(delta.content)
    assert received == ["half "] and component.opened == 1


async def test_empty_pieces_do_not_count_as_the_first(build: Build, pipe: pipeline.Pipeline) -> None:
    component = Planned(["", UNAVAILABLE], ["after ", "retry"])
    entry = await loaded(build, component, retryBackoff="1ms")
    assert text_of(await collect(pipe.stream("c", entry, ask("x")))) == "after retry"
    assert component.opened == 2


async def test_a_fallback_answers_a_stream_that_could_not_start(build: Build, pipe: pipeline.Pipeline) -> None:
    await loaded(build, name="b")
    entry = await loaded(build, Planned([UNAVAILABLE]), maxRetries="0", fallback="b")
    assert text_of(await collect(pipe.stream("c", entry, ask("from the fallback")))) == "from the fallback"
    assert pipe.metrics.fallbacks.values == {("c", "b"): 1.0}


async def test_the_attempt_timeout_bounds_the_wait_for_the_first_piece(build: Build, pipe: pipeline.Pipeline) -> None:
    component = Planned([None], ["second ", "try"])
    entry = await loaded(build, component, timeout="100ms", retryBackoff="1ms")
    assert text_of(await collect(pipe.stream("c", entry, ask("x")))) == "second try"
    assert component.opened == 2 and component.closed == 2


async def test_no_first_piece_at_all_is_a_timeout_error(build: Build, pipe: pipeline.Pipeline) -> None:
    entry = await loaded(build, Planned([None]), timeout="100ms", maxRetries="0")
    with pytest.raises(errors.InvokeError, match=r"timed out after 0\.1s"):
        await anext(pipe.stream("c", entry, ask("x")))


async def test_call_timeout_does_not_cut_a_stream_that_keeps_coming(build: Build, pipe: pipeline.Pipeline) -> None:
    plan: list[Step] = []
    for word in ("a ", "long ", "answer ", "that ", "keeps ", "coming"):
        plan += [word, 0.05]
    entry = await loaded(build, Planned(plan), callTimeout="120ms")
    assert text_of(await collect(pipe.stream("c", entry, ask("x")))) == "a long answer that keeps coming"


async def test_a_stalled_stream_ends_after_the_idle_timeout(build: Build, pipe: pipeline.Pipeline) -> None:
    component = Planned(["start ", None])
    entry = await loaded(build, component, streamIdleTimeout="100ms")
    received: list[str] = []
    with pytest.raises(errors.InvokeError, match=r"stalled: no piece for 0\.1s \(streamIdleTimeout\)"):
        async for delta in pipe.stream("c", entry, ask("x")):
            received.append(delta.content)
    assert received == ["start "] and component.closed == 1 and entry.in_flight == 0


async def test_a_slow_reader_is_not_an_idle_upstream_and_nothing_is_read_ahead(
        build: Build, pipe: pipeline.Pipeline) -> None:
    component = Planned(["one ", "two ", "three ", "four"])
    entry = await loaded(build, component, streamIdleTimeout="50ms")
    received: list[str] = []
    async for delta in pipe.stream("c", entry, ask("x")):
        received.append(delta.content)
        assert component.produced <= len(received)  # pulled only when asked
        await asyncio.sleep(0.12)  # longer than the idle timeout between reads
    assert "".join(received) == "one two three four"


async def test_the_breaker_opens_on_streams_that_cannot_start(build: Build, pipe: pipeline.Pipeline) -> None:
    component = Planned([UNAVAILABLE])
    entry = await loaded(build, component, maxRetries="0", circuitBreakerFailures="1")
    with pytest.raises(errors.InvokeError, match="overloaded"):
        await anext(pipe.stream("c", entry, ask("x")))
    with pytest.raises(errors.InvokeError, match="circuit"):
        await anext(pipe.stream("c", entry, ask("x")))
    assert component.opened == 1


# -- client gone -----------------------------------------------------------------------------------


async def test_a_client_that_leaves_mid_wait_closes_a_hanging_upstream(build: Build, pipe: pipeline.Pipeline) -> None:
    component = Planned(["first ", None])
    entry = await loaded(build, component)
    pieces = pipe.stream("c", entry, ask("x"))
    assert (await anext(pieces)).content == "first "
    waiting = asyncio.ensure_future(anext(pieces))
    await asyncio.sleep(0.05)
    assert component.closed == 0
    waiting.cancel()  # the server cancels the handler of a client that disconnected
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await pieces.aclose()
    assert component.closed == 1 and entry.in_flight == 0


async def test_a_client_that_leaves_before_the_first_piece_closes_the_upstream(
        build: Build, pipe: pipeline.Pipeline) -> None:
    component = Planned([None])
    entry = await loaded(build, component, circuitBreakerFailures="1")
    pieces = pipe.stream("c", entry, ask("x"))
    waiting = asyncio.ensure_future(anext(pieces))
    await asyncio.sleep(0.05)
    assert component.opened == 1 and component.closed == 0
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert component.closed == 1 and entry.in_flight == 0
    assert entry.breaker is not None and not entry.breaker.is_open  # a client leaving says nothing of the upstream


async def test_stream_idle_timeout_defaults_to_60s_and_0_turns_it_off(build: Build) -> None:
    assert (await loaded(build)).settings.stream.idle_timeout == 60.0
    assert (await loaded(build, name="d", streamIdleTimeout="0")).settings.stream.idle_timeout is None
    assert (await loaded(build, name="e", streamIdleTimeout="2m")).settings.stream.idle_timeout == 120.0
