"""A stream the upstream fails after its first chunks, read by the official SDKs: the ``openai``
Python package (sync, its stream helper, async) and the ``openai`` npm package. Each raises its
``APIError`` with the failure's message once the chunks before it were read, and the next request
on the same client works. On the wire the stream ends with one ``event: error`` and no
``data: [DONE]`` (docs/openai.md says why)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.clients.conftest import HERE, INSTALL_HINT, OPENAI_TOKEN, OpenAISidecar, clients_dir, run_app
from tests.fakes.server import Reply

HELLO = [{"role": "user", "content": "hello"}]
CUT = Reply(text="one two three four five six")
CUT_MESSAGE = "failed conversing with component llm: openai-compatible server stream was cut off mid-answer"


@pytest.fixture
def cut(fake: OpenAISidecar) -> Iterator[OpenAISidecar]:
    """The ``llm`` fake's next stream stops after the role chunk and two words, dropping the connection;
    the request after it is answered normally."""
    fake.fake.fake.stream(CUT, cut_after=3)
    fake.fake.fake.reply(Reply(text="answered"))
    yield fake


def test_on_the_wire_an_error_event_ends_the_stream_without_done(cut: OpenAISidecar) -> None:
    with httpx.stream("POST", f"{cut.base_url}/chat/completions", timeout=30,
                      headers={"Authorization": f"Bearer {OPENAI_TOKEN}"},
                      json={"model": "llm", "messages": HELLO, "stream": True}) as response:
        text = response.read().decode()
    assert response.status_code == 200
    *chunks, last = [block for block in text.split("\n\n") if block]
    assert all(block.startswith("data: {") for block in chunks)
    name, data = last.split("\n")
    assert name == "event: error"
    error = json.loads(data.removeprefix("data: "))["error"]
    assert error["type"] == "server_error" and error["message"].startswith(CUT_MESSAGE)
    assert "[DONE]" not in text


def test_python_sdk_raises_api_error_then_the_next_request_works(cut: OpenAISidecar) -> None:
    with openai.OpenAI(base_url=cut.base_url, api_key=OPENAI_TOKEN, max_retries=0) as client:
        got: list[str] = []
        with pytest.raises(openai.APIError) as failed:
            for chunk in client.chat.completions.create(model="llm", messages=HELLO, stream=True):  # type: ignore[arg-type]
                got.append(chunk.choices[0].delta.content or "")
        assert "".join(got) == "one two"
        assert failed.value.message.startswith(CUT_MESSAGE)
        assert client.chat.completions.create(model="llm", messages=HELLO).choices[0].message.content == "answered"  # type: ignore[arg-type]


def test_python_stream_helper_raises_api_error(cut: OpenAISidecar) -> None:
    with openai.OpenAI(base_url=cut.base_url, api_key=OPENAI_TOKEN, max_retries=0) as client:
        with pytest.raises(openai.APIError) as failed:  # noqa: SIM117 (the helper's own context)
            with client.chat.completions.stream(model="llm", messages=HELLO) as stream:  # type: ignore[arg-type]
                stream.get_final_completion()
        assert failed.value.message.startswith(CUT_MESSAGE)
        assert client.chat.completions.create(model="llm", messages=HELLO).choices[0].message.content == "answered"  # type: ignore[arg-type]


async def test_async_python_sdk_raises_api_error_then_the_next_request_works(cut: OpenAISidecar) -> None:
    async with openai.AsyncOpenAI(base_url=cut.base_url, api_key=OPENAI_TOKEN, max_retries=0) as client:
        got: list[str] = []
        stream = await client.chat.completions.create(model="llm", messages=HELLO, stream=True)  # type: ignore[arg-type]
        with pytest.raises(openai.APIError) as failed:
            async for chunk in stream:
                got.append(chunk.choices[0].delta.content or "")
        assert "".join(got) == "one two"
        assert failed.value.message.startswith(CUT_MESSAGE)
        answer = await client.chat.completions.create(model="llm", messages=HELLO)  # type: ignore[arg-type]
        assert answer.choices[0].message.content == "answered"


def _npm_modules() -> tuple[Path | None, str]:
    version = "7.55.0"
    home = clients_dir() / f"openai-js-{version}"
    if shutil.which("node") is None:
        return None, "node is not on PATH (the openai npm package tests need Node.js)"
    package = home / "node_modules" / "openai" / "package.json"
    if not package.is_file() or json.loads(package.read_text()).get("version") != version:
        return None, f"openai (npm) {version} is not installed under {home}: {INSTALL_HINT}"
    return home, ""


def test_npm_sdk_raises_api_error_then_the_next_request_works(cut: OpenAISidecar) -> None:
    modules, missing = _npm_modules()
    if modules is None:
        pytest.skip(missing)
    result = run_app(["node", str(HERE / "openai_js" / "openai_js_errors.mjs")], cut.server,
                     env={"PARLEY_JS_MODULES": str(modules), "OPENAI_API_KEY": OPENAI_TOKEN,
                          "OPENAI_BASE_URL": cut.base_url})
    assert "".join(result["pieces"]) == "one two"
    error = result["error"]
    assert error["isAPIError"] and CUT_MESSAGE in error["message"]
    assert result["next"] == "answered"
