"""``Pipeline.stream``'s steps on the assembled answer: cache, memory, output scrubbing, metrics."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from parley_sidecar import errors
from parley_sidecar.components import base
from parley_sidecar.conversation import pipeline
from tests.sidecar.conftest import Build
from tests.sidecar.conversation.test_stream_pipeline import Planned, ask, collect, loaded, pipe, store, text_of

__all__ = ["pipe", "store"]  # fixtures, shared with test_stream_pipeline


CUT = errors.ProviderError("connection cut", retryable=True)


def samples(pipe: pipeline.Pipeline) -> dict[str, float]:
    """Sample values by name, as a user scraping /metrics reads them (labels dropped)."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(pipe.metrics.render().decode()):
        for sample in family.samples:
            out[sample.name] = out.get(sample.name, 0.0) + sample.value
    return out


# -- cache -----------------------------------------------------------------------------------------


async def test_a_completed_stream_is_cached_and_a_hit_replays_as_a_stream(build: Build,
                                                                          pipe: pipeline.Pipeline) -> None:
    component = Planned(["cached ", "answer"])
    entry = await loaded(build, component, cacheTTL="10m")
    first = await collect(pipe.stream("c", entry, ask("x")))
    second = await collect(pipe.stream("c", entry, ask("x")))
    assert text_of(first) == text_of(second) == "cached answer"
    assert len([d for d in second if d.content]) == 2  # in pieces, not one block
    assert second[-1].usage == first[-1].usage  # the original usage, as a hit of a call
    assert component.opened == 1
    assert pipe.metrics.cache.values == {("c", "miss"): 1.0, ("c", "hit"): 1.0}


async def test_a_stream_and_a_call_share_the_cache(build: Build, pipe: pipeline.Pipeline) -> None:
    entry = await loaded(build, cacheTTL="10m")
    await collect(pipe.stream("c", entry, ask("same question")))
    answer = await pipe.call("c", entry, ask("same question"))
    assert answer.outputs[0].choices[0].content == "same question"
    assert pipe.metrics.cache.values[("c", "hit")] == 1.0


async def test_an_interrupted_or_failed_stream_is_not_cached(build: Build, pipe: pipeline.Pipeline) -> None:
    component = Planned(["partial ", CUT], ["whole ", "answer"])
    entry = await loaded(build, component, cacheTTL="10m", maxRetries="0")
    with pytest.raises(errors.InvokeError):
        await collect(pipe.stream("c", entry, ask("x")))
    left = pipe.stream("c", entry, ask("x"))
    await anext(left)
    await left.aclose()  # the client left after one piece
    assert text_of(await collect(pipe.stream("c", entry, ask("x")))) == "whole answer"
    assert component.opened == 3


# -- memory ----------------------------------------------------------------------------------------


async def test_memory_keeps_only_completed_streams(build: Build, pipe: pipeline.Pipeline) -> None:
    entry = await loaded(build, memory="true")
    left = pipe.stream("c", entry, ask("forgotten turn"), context_id="room")
    await anext(left)
    await left.aclose()
    await collect(pipe.stream("c", entry, ask("kept turn"), context_id="room"))
    third = await collect(pipe.stream("c", entry, ask("now"), context_id="room"))
    assert text_of(third) == "kept turn\nkept turn\nnow"


# -- output scrubbing ------------------------------------------------------------------------------


async def test_scrubbed_stream_never_shows_an_entity_split_across_pieces(build: Build,
                                                                        pipe: pipeline.Pipeline) -> None:
    entry = await loaded(build, Planned(["write to jane.d", "oe@exam", "ple.com or call +1 41", "5 555 2671 today"]),
                         memory="true", cacheTTL="10m")
    pieces = await collect(pipe.stream("c", entry, ask("x"), scrub_output=True, context_id="room"))
    assert text_of(pieces) == "write to <EMAIL_ADDRESS> or call <PHONE_NUMBER> today"
    assert pieces[-1].finish_reason == "stop"
    assert pipe.metrics.redactions.values == {("EMAIL", "output"): 1.0, ("PHONE", "output"): 1.0}
    # memory keeps what the client saw; the cache keeps the provider's answer (as for a call)
    remembered = await pipe.memory.history("c", "room", entry.settings.memory)
    assert remembered[-1].parts == (base.TextPart("write to <EMAIL_ADDRESS> or call <PHONE_NUMBER> today"),)
    again = await collect(pipe.stream("c", entry, ask("x"), scrub_output=True))
    assert text_of(again) == text_of(pieces)


# -- metrics ---------------------------------------------------------------------------------------


async def test_streams_record_time_to_first_token_time_per_token_and_usage(build: Build,
                                                                          pipe: pipeline.Pipeline) -> None:
    entry = await loaded(build)
    await collect(pipe.stream("c", entry, ask("one two three four")))
    got = samples(pipe)
    assert got["gen_ai_server_time_to_first_token_seconds_count"] == 1
    assert got["gen_ai_server_time_per_output_token_seconds_count"] == 1
    assert got["gen_ai_client_token_usage_sum"] == 8  # echo: 4 words in, 4 out
    assert got["gen_ai_client_operation_duration_seconds_count"] == 1
    assert pipe.metrics.conversations.values == {("test-app", "c", "", "true"): 1.0}


async def test_a_failed_stream_counts_as_a_failed_call(build: Build, pipe: pipeline.Pipeline) -> None:
    entry = await loaded(build, Planned([CUT]), maxRetries="0")
    with pytest.raises(errors.InvokeError):
        await collect(pipe.stream("c", entry, ask("x")))
    assert pipe.metrics.conversations.values == {("test-app", "c", "", "false"): 1.0}
    assert [labels[-1] for labels in pipe.metrics.operation_duration.values] == ["ProviderError"]
    assert "gen_ai_server_time_to_first_token_seconds_count" not in samples(pipe)


async def test_a_piece_too_large_for_the_loop_is_scrubbed_the_same(build: Build, pipe: pipeline.Pipeline) -> None:
    filler = "nothing to see here " * 1000
    entry = await loaded(build, Planned([filler + "mail jane@exa", "mple.com " + filler]))
    pieces = await collect(pipe.stream("c", entry, ask("x"), scrub_output=True))
    assert text_of(pieces) == filler + "mail <EMAIL_ADDRESS> " + filler
