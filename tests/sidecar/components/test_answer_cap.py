"""A provider answer over ``maxResponseBytes`` fails the call clearly and is not read further.

Through a real sidecar and the OpenAI fake: the answer is 64 MiB, sent with a Content-Length or
chunked (no length known in advance), or gzipped (a small Content-Length, 64 MiB once inflated). The call fails with ERR_CONVERSATION_INVOKE naming the
setting, is not retried (the next attempt would be as large), the sidecar stops reading (the fake
could not write the whole body), and the next request is answered normally.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import StartSidecar, component_yaml
from tests.fakes import OpenAIFake

KEY = "sk-cap-0123456789"
HUGE = 64 << 20
PATH = "/v1.0-alpha1/conversation/capped/converse"


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    server = await OpenAIFake(expected_key=KEY).start()
    yield server
    await server.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_an_answer_over_the_cap_fails_clearly_and_the_next_one_works(
        start_sidecar: StartSidecar, fake: OpenAIFake, chunked: bool) -> None:
    running = await start_sidecar({"c.yaml": component_yaml("capped", "conversation.openai", {
        "key": KEY, "endpoint": f"{fake.url}/v1", "model": "gpt-test", "maxResponseBytes": "64Ki"})})
    fake.big(HUGE, chunked=chunked)
    status, reply = await running.post(PATH, {"inputs": ["tell me everything"]})
    assert status == 500
    assert reply == {
        "errorCode": "ERR_CONVERSATION_INVOKE",
        "message": "failed conversing with component capped: openai-compatible server answer is larger than "
                   "maxResponseBytes (65536 bytes); not read further",
    }
    assert len(fake.requests) == 1  # not retried: the next answer would be as large
    await fake.wait_until(lambda: len(fake.big_sent) == 1)
    assert fake.big_sent[0] < HUGE  # the sidecar hung up instead of reading (and keeping) 64 MiB

    status, reply = await running.post(PATH, {"inputs": ["a short one"]})
    assert (status, reply["outputs"][0]["result"]) == (200, "echo: a short one")


async def test_the_default_cap_admits_ordinary_answers_and_refuses_huge_ones(
        start_sidecar: StartSidecar, fake: OpenAIFake) -> None:
    running = await start_sidecar({"c.yaml": component_yaml("capped", "conversation.openai", {
        "key": KEY, "endpoint": f"{fake.url}/v1", "model": "gpt-test"})})
    fake.reply(text="x" * (1 << 20))  # a 1 MiB answer: under the default 4Mi
    status, reply = await running.post(PATH, {"inputs": ["long"]})
    assert (status, len(reply["outputs"][0]["result"])) == (200, 1 << 20)
    fake.big(HUGE, chunked=True)
    status, reply = await running.post(PATH, {"inputs": ["longer"]})
    assert status == 500 and "maxResponseBytes (4194304 bytes)" in reply["message"]


async def test_a_compressed_answer_is_capped_by_what_it_inflates_to(
        start_sidecar: StartSidecar, fake: OpenAIFake) -> None:
    """A gzip body of 64 KiB, its Content-Length well under the cap, inflating to 64 MiB: the cap
    counts the inflated bytes, so the call fails instead of holding 64 MiB."""
    running = await start_sidecar({"c.yaml": component_yaml("capped", "conversation.openai", {
        "key": KEY, "endpoint": f"{fake.url}/v1", "model": "gpt-test", "maxResponseBytes": "1Mi"})})
    fake.big(HUGE, gzipped=True)
    status, reply = await running.post(PATH, {"inputs": ["zipped"]})
    assert status == 500 and "maxResponseBytes (1048576 bytes)" in reply["message"]
    assert fake.big_sent[0] < 1 << 20  # what came on the wire was under the cap: only inflating passed it
