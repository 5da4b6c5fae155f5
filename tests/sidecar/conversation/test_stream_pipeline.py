"""``Pipeline.stream``: the pipeline's steps on a streamed answer, with echo and in-test components.

In-test components are plain classes implementing ``base.Streaming``, loaded in place of the
instance of a real echo entry built by the store (the entry, its settings and lease are the real
ones); nothing of the library is patched.
"""

from __future__ import annotations

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


class Scripted:
    """Streams the given pieces; raises ``fail_after`` pieces when told; counts opens and closes."""

    def __init__(self, pieces: Sequence[str], *, error: errors.ProviderError | None = None,
                 fail_after: int = 0) -> None:
        self.pieces = list(pieces)
        self.error = error
        self.fail_after = fail_after
        self.opened = 0
        self.closed = 0

    async def init(self, metadata: object) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def converse(self, request: base.ConverseRequest, *, timeout: float | None) -> base.ConverseResponse:
        raise AssertionError("a streaming component is streamed")

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
