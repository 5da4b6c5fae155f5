"""Conversation memory through the real sidecar (opt-in): turns remembered per context id, bounded
in turns, in UTF-8 bytes per conversation and per component (LRU), in count and in idle time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import StartSidecar, component_yaml

A1 = "/v1.0-alpha1/conversation/chat/converse"
A2 = "/v1.0-alpha2/conversation/chat/converse"


def turn(text: str, context: str) -> dict[str, Any]:
    return {"contextId": context, "inputs": [{"messages": [{"ofUser": {"content": [{"text": text}]}}]}]}


def content(reply: Any) -> str:
    return str(reply["outputs"][0]["choices"][0]["message"]["content"])


async def test_three_turns_send_the_history(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar({"c.yaml": component_yaml("chat", metadata={"memory": "true"})})
    # echo answers with every message it was sent, so its reply shows what history reached it
    _, first = await running.post(A2, turn("hello", "room-1"))
    assert content(first) == "hello"
    assert first["contextId"] == "room-1"
    _, second = await running.post(A2, turn("how are you", "room-1"))
    assert content(second) == "hello\nhello\nhow are you"
    _, third = await running.post(A2, turn("bye", "room-1"))
    assert content(third) == "hello\nhello\nhow are you\nhello\nhello\nhow are you\nbye"


async def test_contexts_never_mix_and_no_context_means_stateless(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar({"c.yaml": component_yaml("chat", metadata={"memory": "true"})})
    await running.post(A2, turn("secret of A", "a"))
    _, other = await running.post(A2, turn("question of B", "b"))
    assert content(other) == "question of B"
    _, plain = await running.post(A2, {"inputs": [{"messages": [{"ofUser": {"content": [{"text": "alone"}]}}]}]})
    assert content(plain) == "alone"


async def test_memory_is_off_by_default_as_in_daprd(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar({"c.yaml": component_yaml("chat")})
    await running.post(A2, turn("first", "r"))
    _, second = await running.post(A2, turn("second", "r"))
    assert content(second) == "second"


async def test_bounded_by_turns(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar({"c.yaml": component_yaml("chat", metadata={"memory": "true",
                                                                              "memoryMaxTurns": "2"})})
    for text in ("one", "two", "three"):
        _, reply = await running.post(A2, turn(text, "r"))
    # only the last two remembered messages come back: the previous user turn and echo's reply to it
    assert content(reply) == "two\none\none\ntwo\nthree"


EMOJI = "\U0001F600" * 10  # 10 characters, 40 bytes in memory (4 each): a bound in characters keeps 4x too much


@pytest.mark.parametrize("setting", ["memoryMaxBytes", "memoryMaxChars"])
async def test_bounded_in_bytes_per_conversation(start_sidecar: StartSidecar, setting: str) -> None:
    """400 bytes hold one remembered emoji message (332 bytes of memory: 116 for the string, 216 for
    its objects), not two; a bound in characters would have kept both. ``memoryMaxChars``, the
    former name, is read as bytes."""
    running = await start_sidecar({"c.yaml": component_yaml("chat", metadata={"memory": "true", setting: "400"})})
    await running.post(A2, turn(EMOJI, "r"))  # remembered: the user's message and echo's: over 400
    _, second = await running.post(A2, turn("hi", "r"))
    assert content(second) == f"{EMOJI}\nhi"  # only the most recent message that fits came back
    assert running.sidecar.pipeline.memory.size("chat") <= 400


async def test_bounded_in_bytes_per_component_least_recent_forgotten(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar({
        "c.yaml": component_yaml("chat", metadata={"memory": "true", "memoryMaxTotalBytes": "1400"}),
        "o.yaml": component_yaml("other", metadata={"memory": "true"}),
    })
    await running.post("/v1.0-alpha2/conversation/other/converse", turn(EMOJI, "kept"))
    for room in ("r1", "r2", "r3"):  # 664 bytes each (two emoji messages): the third goes over 1400
        await running.post(A2, turn(EMOJI, room))
    _, oldest = await running.post(A2, turn("x", "r1"))
    assert content(oldest) == "x"  # the least recently used conversation was forgotten
    _, newest = await running.post(A2, turn("y", "r3"))
    assert content(newest) == f"{EMOJI}\n{EMOJI}\ny"
    assert running.sidecar.pipeline.memory.size("chat") <= 1400
    # another component's history has its own budget: untouched
    _, other = await running.post("/v1.0-alpha2/conversation/other/converse", turn("z", "kept"))
    assert content(other) == f"{EMOJI}\n{EMOJI}\nz"


async def test_bounded_in_conversations_least_recent_forgotten(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar({"c.yaml": component_yaml("chat", metadata={"memory": "true",
                                                                              "memoryMaxConversations": "2"})})
    for room in ("r1", "r2", "r3"):
        await running.post(A2, turn(room, room))
    _, forgotten = await running.post(A2, turn("again", "r1"))
    assert content(forgotten) == "again"
    _, kept = await running.post(A2, turn("again", "r3"))
    assert content(kept) == "r3\nr3\nagain"


async def test_forgotten_after_the_idle_ttl(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar({"c.yaml": component_yaml("chat", metadata={"memory": "true",
                                                                              "memoryTTL": "100ms"})})
    await running.post(A2, turn("hello", "r"))
    await asyncio.sleep(0.3)  # idle longer than memoryTTL
    _, reply = await running.post(A2, turn("still there?", "r"))
    assert content(reply) == "still there?"


async def test_history_is_stored_after_scrubbing(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar({"c.yaml": component_yaml("chat", metadata={"memory": "true"})})
    first = {"contextId": "p", "inputs": [{"scrubPii": True, "messages": [
        {"ofUser": {"content": [{"text": "mail me at test@test.com"}]}}]}]}
    await running.post(A2, first)
    _, second = await running.post(A2, turn("thanks", "p"))
    assert "test@test.com" not in content(second)
    assert "<EMAIL_ADDRESS>" in content(second)


async def test_alpha1_seed_conversation_context(start_sidecar: StartSidecar) -> None:
    running = await start_sidecar({"c.yaml": component_yaml("chat", metadata={"memory": "true"})})
    await running.post(A1, {"conversationContext": "seed-room", "inputs": ["what is Dapr"]})
    status, reply = await running.post(A1, {"conversationContext": "seed-room", "inputs": ["Why use Dapr"]})
    assert status == 200
    assert reply == {"contextID": "seed-room",
                     "outputs": [{"result": "what is Dapr\nwhat is Dapr\nWhy use Dapr"}]}


async def test_three_turns_over_the_dapr_sdk(start_sidecar: StartSidecar) -> None:
    """A user's app with the real Dapr Python SDK, context_id set, three calls in one process."""
    import asyncio
    import json
    import os
    import sys

    running = await start_sidecar({"c.yaml": component_yaml("chat", metadata={"memory": "true"})})
    app = (
        "import json\n"
        "from dapr.clients import DaprClient\n"
        "from dapr.clients.grpc import conversation as c\n"
        "out = []\n"
        "with DaprClient() as d:\n"
        "    for text in ('hello', 'how are you', 'bye'):\n"
        "        r = d.converse_alpha1(name='chat', inputs=[c.ConversationInput(content=text)], context_id='sdk-room')\n"
        "        out.append([r.context_id, r.outputs[0].result])\n"
        "print(json.dumps(out))\n"
    )
    env = {**os.environ, "DAPR_HTTP_PORT": str(running.sidecar.bound["http"]),
           "DAPR_GRPC_PORT": str(running.sidecar.bound["grpc"]), "DAPR_HEALTH_TIMEOUT": "10"}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", app, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert json.loads(out.decode().strip().splitlines()[-1]) == [
        ["sdk-room", "hello"],
        ["sdk-room", "hello\nhello\nhow are you"],
        ["sdk-room", "hello\nhello\nhow are you\nhello\nhello\nhow are you\nbye"],
    ]


async def test_history_in_redis_survives_a_restart_and_is_shared(start_sidecar: StartSidecar, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from tests.redis_server import redis_available, redis_server

    if not redis_available():
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    with redis_server(tmp_path) as url:
        component = {"c.yaml": component_yaml("chat", metadata={"memory": "true", "memoryStore": url})}
        first = await start_sidecar(component)
        await first.post(A2, turn("remember me", "r"))
        await first.sidecar.stop()  # the pod restarts …
        second = await start_sidecar(component)  # … or another replica answers
        _, reply = await second.post(A2, turn("still there?", "r"))
        assert content(reply) == "remember me\nremember me\nstill there?"


async def test_memory_redis_down_answers_without_history(start_sidecar: StartSidecar, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from tests.redis_server import redis_available, redis_server

    if not redis_available():
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    with redis_server(tmp_path) as url:
        running = await start_sidecar({"c.yaml": component_yaml("chat", metadata={"memory": "true",
                                                                                  "memoryStore": url})})
    status, reply = await running.post(A2, turn("anyone?", "r"))
    assert (status, content(reply)) == (200, "anyone?")
