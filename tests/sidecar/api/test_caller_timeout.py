"""A caller's own budget for one conversation: the ``parley-timeout`` header on HTTP (a gRPC caller's
deadline does the same: see test_caller_gone.py). It can only lower the component's ``callTimeout``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.conftest import StartSidecar, component_yaml
from tests.fakes import OpenAIFake

KEY = "sk-caller-timeout-key-42"
CONVERSE = "/v1.0-alpha2/conversation/slow/converse"
BODY = {"inputs": [{"messages": [{"ofUser": {"content": [{"text": "anyone?"}]}}]}]}


@pytest.fixture
async def fake() -> AsyncIterator[OpenAIFake]:
    started = await OpenAIFake().start()
    yield started
    started.release()
    await started.close()


async def test_the_header_ends_the_call_and_its_upstream_request(start_sidecar: StartSidecar,
                                                                 fake: OpenAIFake) -> None:
    fake.hold(times=4)
    running = await start_sidecar({"c.yaml": component_yaml("slow", "conversation.openai", {
        "key": KEY, "endpoint": f"{fake.url}/v1", "model": "m"})})  # callTimeout: the default 120s
    status, reply = await asyncio.wait_for(
        running.post(CONVERSE, BODY, headers={"parley-timeout": "300ms"}), 30)
    assert (status, reply) == (500, {
        "errorCode": "ERR_CONVERSATION_INVOKE",
        "message": "failed conversing with component slow: no answer within the caller's timeout of 0.3s "
                   "(parley-timeout header)",
    })
    await fake.wait_until(lambda: fake.dropped == 1)  # the held upstream request was given up, not left running


async def test_seconds_are_accepted_and_a_shorter_call_timeout_still_wins(start_sidecar: StartSidecar,
                                                                          fake: OpenAIFake) -> None:
    fake.hold(times=4)
    running = await start_sidecar({"c.yaml": component_yaml("slow", "conversation.openai", {
        "key": KEY, "endpoint": f"{fake.url}/v1", "model": "m", "callTimeout": "300ms"})})
    status, reply = await asyncio.wait_for(running.post(CONVERSE, BODY, headers={"parley-timeout": "600"}), 30)
    assert status == 500
    assert reply["message"].endswith("no answer within the call deadline of 0.3s (callTimeout)")


@pytest.mark.parametrize("value", ["soon", "0", "-5s", ""])
async def test_a_bad_header_is_the_callers_error(start_sidecar: StartSidecar, value: str) -> None:
    running = await start_sidecar({"c.yaml": component_yaml("slow")})
    status, reply = await running.post(CONVERSE, BODY, headers={"parley-timeout": value})
    assert (status, reply) == (400, {
        "errorCode": "ERR_CONVERSATION_INVALID_PARMS",
        "message": "failed conversing with component slow: invalid params: the parley-timeout header must be "
                   "a positive duration such as 30s",
    })


async def test_a_call_within_the_budget_is_answered(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar({"c.yaml": component_yaml("slow")})
    status, reply = await running.post(CONVERSE, BODY, headers={"parley-timeout": "1m30s"})
    assert status == 200
    assert reply["outputs"][0]["choices"][0]["message"]["content"] == "anyone?"
