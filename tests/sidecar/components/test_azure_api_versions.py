"""Azure OpenAI sends only the fields its ``apiVersion`` has (Azure/azure-rest-api-specs' inference
spec of each version): the GA ``2024-10-21`` has ``stream_options``, ``json_schema`` and ``seed`` but
``max_tokens`` and no ``developer`` role; ``2024-06-01`` and older lack ``stream_options`` and
``json_schema`` too; the previews add ``max_completion_tokens`` (2024-09-01) and ``developer``
(2024-12-01). Against the Azure-flavoured fake, which refuses nothing: each body is checked field by
field, and a stream from an old version is answered without usage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from parley_sidecar.components import base
from parley_sidecar.components.openai import azure_dialect
from tests.fakes import OpenAIFake, Reply
from tests.sidecar.components.conftest import OPENAI_KEY, Build, text_request, user
from tests.sidecar.components.streams import assembled, collect, stream

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

# version → (max tokens field, developer role, stream_options, structured output, seed sent)
VERSIONS: dict[str, tuple[str, str, bool, str, bool]] = {
    "2023-05-15": ("max_tokens", "system", False, "json_object", False),
    "2024-02-01": ("max_tokens", "system", False, "json_object", True),
    "2024-06-01": ("max_tokens", "system", False, "json_object", True),
    "2024-08-01-preview": ("max_tokens", "system", False, "json_schema", True),
    "2024-09-01-preview": ("max_completion_tokens", "system", True, "json_schema", True),
    "2024-10-21": ("max_tokens", "system", True, "json_schema", True),
    "2024-12-01-preview": ("max_completion_tokens", "developer", True, "json_schema", True),
    "2025-04-01-preview": ("max_completion_tokens", "developer", True, "json_schema", True),
    "preview": ("max_completion_tokens", "developer", True, "json_schema", True),
}


@pytest.fixture
async def azure_fake() -> AsyncIterator[OpenAIFake]:
    fake = await OpenAIFake(flavor="azure").start()
    yield fake
    await fake.close()


async def _azure(build: Build, fake: OpenAIFake, version: str) -> base.Conversation:
    entry = await build("conversation.openai", {
        "key": OPENAI_KEY, "apiType": "azure", "endpoint": f"http://res.openai.azure.com:{fake.port}",
        "apiVersion": version, "model": "my-gpt4o"})
    return entry.instance


def _request(**fields: Any) -> base.ConverseRequest:
    developer = base.Message(base.Role.DEVELOPER, (base.TextPart("Answer in French."),))
    return base.ConverseRequest(messages=(developer, user("Weather?")), max_tokens=50, seed=7, **fields)


@pytest.mark.parametrize("version", list(VERSIONS))
async def test_each_version_gets_only_the_fields_it_has(build: Build, azure_fake: OpenAIFake, version: str) -> None:
    tokens, role, stream_options, structured, seed = VERSIONS[version]
    component = await _azure(build, azure_fake, version)
    azure_fake.stream(Reply(text='{"city": "Paris"}'))
    await collect(stream(component, _request(response_format=SCHEMA)))
    body = azure_fake.last.body
    assert azure_fake.last.query == {"api-version": version}
    assert body[tokens] == 50 and ({"max_tokens", "max_completion_tokens"} - {tokens}).isdisjoint(body)
    developer = [m for m in body["messages"] if m["content"] == "Answer in French."]
    assert [m["role"] for m in developer] == [role]
    assert ("stream_options" in body) is stream_options
    assert body["response_format"]["type"] == structured
    if structured == "json_object":  # JSON mode needs the prompt to ask for JSON: the schema rides along
        assert body["messages"][0]["role"] == "system" and '"city"' in body["messages"][0]["content"]
    assert ("seed" in body) is seed


async def test_an_old_version_streams_without_asking_for_usage(build: Build, azure_fake: OpenAIFake) -> None:
    component = await _azure(build, azure_fake, "2024-06-01")
    azure_fake.stream(Reply(text="Bonjour tout le monde"))
    answer = assembled(await collect(stream(component)))
    assert answer.outputs[0].choices[0].content == "Bonjour tout le monde"
    assert answer.usage is None  # the version has no stream_options: Azure sends none, none is made up
    assert "stream_options" not in azure_fake.last.body


async def test_the_current_version_streams_usage(build: Build, azure_fake: OpenAIFake) -> None:
    component = await _azure(build, azure_fake, "2024-10-21")
    azure_fake.stream(Reply(text="Bonjour", prompt_tokens=4, completion_tokens=2))
    answer = assembled(await collect(stream(component, text_request("Hi"))))
    assert answer.usage == base.Usage(2, 4, 6)


@pytest.mark.parametrize("version", [" 2024-10-21 ", "latest", "v1", "2024-13"])
def test_an_undated_or_odd_version_is_read_sensibly(version: str) -> None:
    dialect = azure_dialect(version)
    expected = ("max_tokens", "system") if version.strip() == "2024-10-21" else ("max_completion_tokens", "developer")
    assert (dialect.max_tokens_field, dialect.developer_role) == expected
    assert dialect.auth == "api-key" and dialect.send_user
