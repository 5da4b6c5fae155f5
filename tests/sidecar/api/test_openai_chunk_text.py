"""Streamed text chunks on the OpenAI API, byte for byte: text pieces are spliced into bytes
encoded once per stream (``api/openai_http._Chunks``), so every chunk must still be exactly what
encoding the whole chunk as compact JSON gives, whatever the text holds, and the text must come
back whole. A real sidecar in-process with echo (which streams its input back word by word)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import ECHO, Running, StartSidecar

CHAT = "/v1/chat/completions"
KEYS = ["id", "object", "created", "model", "system_fingerprint", "choices"]


@pytest.fixture
async def running(start_sidecar: StartSidecar) -> Running:
    return await start_sidecar({"echo.yaml": ECHO.format(name="echo")})


async def blocks(running: Running, text: str, *, usage: bool) -> list[str]:
    body: dict[str, Any] = {"model": "echo", "messages": [{"role": "user", "content": text}], "stream": True}
    if usage:
        body["stream_options"] = {"include_usage": True}
    # sent as ASCII JSON, so a lone surrogate travels as the escape a client would send
    async with running.session.post(running.http + CHAT, data=json.dumps(body),
                                    headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 200, await resp.text()
        raw = (await resp.read()).decode()
    return [block.removeprefix("data: ") for block in raw.split("\n\n") if block]


@pytest.mark.parametrize("usage", [True, False], ids=["usage", "no-usage"])
@pytest.mark.parametrize("text", [
    pytest.param('say "hi" \\ back\\slash', id="quotes-backslashes"),
    pytest.param("line one\nline two\ttab \x01 ctrl", id="controls"),
    pytest.param("café naïve 中文 😀 \u2028 sep", id="non-ascii"),
], )
async def test_text_chunks_are_the_whole_chunk_encoded_and_the_text_comes_back(
        running: Running, text: str, usage: bool) -> None:
    got = await blocks(running, text, usage=usage)
    assert got[-1] == "[DONE]"
    chunks = [json.loads(block) for block in got[:-1]]
    for block, chunk in zip(got, chunks, strict=False):
        assert block == json.dumps(chunk, separators=(",", ":"), ensure_ascii=False)
    content = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(content) > 1  # several pieces, so the per-stream bytes were reused
    assert "".join(c["choices"][0]["delta"]["content"] for c in content) == text
    assert content[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all("role" not in c["choices"][0]["delta"] for c in content[1:])
    for chunk in content:
        assert list(chunk) == KEYS + (["usage"] if usage else [])
        assert (chunk["id"], chunk["created"], chunk["model"]) == (chunks[0]["id"], chunks[0]["created"],
                                                                   chunks[0]["model"])
        assert chunk["choices"][0]["finish_reason"] is None and chunk["choices"][0]["logprobs"] is None
        assert chunk.get("usage", None) is None


async def test_a_lone_surrogate_in_the_text_is_escaped_and_the_stream_stays_valid(running: Running) -> None:
    text = "before \ud800 after"
    got = await blocks(running, text, usage=True)
    chunks = [json.loads(block) for block in got[:-1]]
    pieces = [c["choices"][0]["delta"]["content"] for c in chunks if c["choices"] and
              c["choices"][0]["delta"].get("content")]
    assert "".join(pieces) == text
    surrogate = next(block for block, c in zip(got, chunks, strict=False) if c["choices"]
                     and "\ud800" in c["choices"][0]["delta"].get("content", ""))
    assert "\\ud800" in surrogate  # escaped: the bytes sent are valid UTF-8
