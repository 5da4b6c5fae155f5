"""LangChain's ``ChatOpenAI`` (langchain-openai) against a parley process on loopback: ``invoke``,
``stream`` and ``bind_tools``, with ``echo`` and with ``conversation.openai`` on the OpenAI fake;
``stream`` with every other provider type on a fake streaming its own wire format."""

from __future__ import annotations

import pydantic
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage
from langchain_openai import ChatOpenAI

from tests.clients.conftest import OPENAI_TOKEN, PROVIDER_TYPES, OpenAISidecar
from tests.fakes.server import Reply


def chat(sidecar: OpenAISidecar, model: str, **kwargs: object) -> ChatOpenAI:
    return ChatOpenAI(model=model, base_url=sidecar.base_url, api_key=OPENAI_TOKEN,  # type: ignore[arg-type]
                      max_retries=0, **kwargs)


class GetWeather(pydantic.BaseModel):
    """The weather in a city."""

    city: str


class GetTime(pydantic.BaseModel):
    """The current time."""


def test_invoke_with_echo(openai_sidecar: OpenAISidecar) -> None:
    answer = chat(openai_sidecar, "echo").invoke([SystemMessage("be brief"), HumanMessage("hello langchain")])
    assert isinstance(answer, AIMessage)
    assert answer.content == "be brief\nhello langchain"
    assert answer.usage_metadata is not None and answer.usage_metadata["total_tokens"] == 8


def test_stream_with_echo(openai_sidecar: OpenAISidecar) -> None:
    chunks = list(chat(openai_sidecar, "echo", stream_usage=True).stream("one two three"))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert "".join(str(c.content) for c in chunks) == "one two three"
    assert sum(1 for c in chunks if c.content) == 3
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert total.usage_metadata is not None and total.usage_metadata["output_tokens"] == 3


def test_bind_tools_with_echo_then_answer_the_call(openai_sidecar: OpenAISidecar) -> None:
    # echo calls each declared tool with its parameter names as arguments (not JSON), so a tool
    # without parameters gets arguments LangChain can parse
    model = chat(openai_sidecar, "echo").bind_tools([GetTime, GetWeather])
    question = HumanMessage("what time is it?")
    asked = model.invoke([question])
    assert isinstance(asked, AIMessage)
    assert [(c["name"], c["args"]) for c in asked.tool_calls] == [("GetTime", {})]
    assert [c["name"] for c in asked.invalid_tool_calls] == ["GetWeather"]  # arguments "city"
    call = asked.tool_calls[0]
    # the tool loop's second turn: the call answered
    answered = chat(openai_sidecar, "echo").invoke(
        [question, AIMessage("", tool_calls=[call]), ToolMessage("noon", tool_call_id=str(call["id"]))])
    assert "Tool Response for tool ID '0' with name 'GetTime': noon" in str(answered.content)


def test_invoke_and_stream_with_llm(fake: OpenAISidecar) -> None:
    fake.fake.fake.reply(Reply(text="Bonjour."))
    assert chat(fake, "llm").invoke("say hello in French").content == "Bonjour."
    fake.fake.fake.stream(Reply(text="un deux trois quatre"))
    chunks = list(chat(fake, "llm").stream("count in French"))
    assert "".join(str(c.content) for c in chunks) == "un deux trois quatre"
    assert sum(1 for c in chunks if c.content) > 1


def test_bind_tools_stream_with_llm(fake: OpenAISidecar) -> None:
    fake.fake.fake.stream(Reply(text=None, tool_calls=(("call_9", "GetWeather", {"city": "Lyon"}),),
                                finish="tool_calls"))
    chunks = list(chat(fake, "llm").bind_tools([GetWeather]).stream("weather in Lyon?"))
    total = chunks[0]
    for chunk in chunks[1:]:
        total += chunk
    assert isinstance(total, AIMessageChunk)
    assert [(c["name"], c["args"], c["id"]) for c in total.tool_calls] == [("GetWeather", {"city": "Lyon"}, "call_9")]
    sent = fake.fake.take()[0].body
    assert sent["tools"][0]["function"]["name"] == "GetWeather"


@pytest.mark.parametrize("name", [p.name for p in PROVIDER_TYPES])
def test_stream_from_every_provider_type(openai_sidecar: OpenAISidecar, name: str) -> None:
    fake = openai_sidecar.providers[name].fake
    fake.clear()
    fake.stream(Reply(text="langchain hears every provider"))
    chunks = list(chat(openai_sidecar, f"p-{name}").stream("hello"))
    assert "".join(str(c.content) for c in chunks) == "langchain hears every provider"
    assert sum(1 for c in chunks if c.content) > 1
