"""Provider components against local fakes: real HTTP on loopback, nothing patched.

Components are built the way the runtime builds them (``ComponentStore``: catalog metadata
resolution, the lazy factory, ``init``), and handed an ``aiohttp.ClientSession`` whose resolver
sends every host name to 127.0.0.1. That lets a component configured with a real provider host
name (``http://api.openai.com:PORT/v1``) pick that provider's dialect while the bytes still go to
the fake on loopback.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from parley_sidecar.components import base
from parley_sidecar.components.store import ComponentStore, Entry
from tests.fakes import AnthropicFake, BedrockFake, FakeServer, OpenAIFake
from tests.sidecar.conftest import Build

OPENAI_KEY = "sk-test-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-test-0123456789"
AWS_ACCESS = "AKIDTESTFAKE"
AWS_SECRET = "test/secret+key/0123456789"


class LoopbackResolver(AbstractResolver):
    """Every name resolves to 127.0.0.1: provider host names, but only loopback traffic."""

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host="127.0.0.1", port=port, family=socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        pass


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(resolver=LoopbackResolver(), use_dns_cache=False)
    async with aiohttp.ClientSession(connector=connector) as s:
        yield s


@pytest.fixture
async def openai_fake() -> AsyncIterator[OpenAIFake]:
    fake = await OpenAIFake().start()
    yield fake
    await fake.close()


@pytest.fixture
async def anthropic_fake() -> AsyncIterator[AnthropicFake]:
    fake = await AnthropicFake(expected_key=ANTHROPIC_KEY).start()
    yield fake
    await fake.close()


@pytest.fixture
async def bedrock_fake() -> AsyncIterator[BedrockFake]:
    fake = await BedrockFake(credentials={AWS_ACCESS: AWS_SECRET}).start()
    yield fake
    await fake.close()


@pytest.fixture
async def store(session: aiohttp.ClientSession) -> AsyncIterator[ComponentStore]:
    s = ComponentStore(session_factory=lambda: session)
    yield s
    await s.aclose()


@dataclasses.dataclass(frozen=True)
class Provider:
    """One provider under test: its type, its wire format and its metadata against a fake."""

    id: str
    type: str
    wire: str
    """openai, anthropic or bedrock: which fake serves it."""
    metadata: Callable[[int], dict[str, str]]
    model: str
    """The model the component is configured with (and must report)."""
    key: str | None = None
    """The API key the request must carry (None: AWS signing)."""
    path: str = ""
    """The path the request must go to (``{model}`` filled in)."""
    query: dict[str, str] = dataclasses.field(default_factory=dict)
    stop: str = "stop"
    """The upstream's word for a natural stop, passed through."""
    tool_stop: str = "tool_calls"


def _openai(key: str = OPENAI_KEY) -> dict[str, str]:
    return {"key": key}


PROVIDERS = [
    Provider("openai", "conversation.openai", "openai",
             lambda p: {**_openai(), "model": "gpt-4o-mini", "endpoint": f"http://api.openai.com:{p}/v1"},
             "gpt-4o-mini", OPENAI_KEY, "/v1/chat/completions"),
    Provider("azure", "conversation.openai", "openai",
             lambda p: {**_openai(), "apiType": "azure", "endpoint": f"http://res.openai.azure.com:{p}",
                        "apiVersion": "2024-10-21", "model": "my-gpt4o"},
             "my-gpt4o", OPENAI_KEY, "/openai/deployments/{model}/chat/completions", {"api-version": "2024-10-21"}),
    Provider("vllm", "conversation.openai", "openai",
             lambda p: {**_openai("token-abc123"), "model": "Qwen/Qwen2.5-7B", "endpoint": f"http://vllm:{p}/v1/"},
             "Qwen/Qwen2.5-7B", "token-abc123", "/v1/chat/completions"),
    Provider("googleai", "conversation.googleai", "openai",
             lambda p: {**_openai("AIza-test-key"), "endpoint": f"http://127.0.0.1:{p}/v1beta/openai/"},
             "gemini-2.5-flash-lite", "AIza-test-key", "/v1beta/openai/chat/completions"),
    Provider("huggingface", "conversation.huggingface", "openai",
             lambda p: {**_openai("hf_testtoken"), "model": "org/model-7b",
                        "endpoint": f"http://127.0.0.1:{p}/hf-inference/models/{{{{model}}}}/v1"},
             "org/model-7b", "hf_testtoken", "/hf-inference/models/{model}/v1/chat/completions"),
    Provider("mistral", "conversation.mistral", "openai",
             lambda p: {**_openai("mistral-key"), "endpoint": f"http://127.0.0.1:{p}/v1"},
             "open-mistral-7b", "mistral-key", "/v1/chat/completions"),
    Provider("ollama", "conversation.ollama", "openai",
             lambda p: {"endpoint": f"http://127.0.0.1:{p}/v1", "model": "llama3.2:latest"},
             "llama3.2:latest", "ollama", "/v1/chat/completions"),
    Provider("deepseek", "conversation.deepseek", "openai",
             lambda p: {**_openai("ds-key"), "endpoint": f"http://127.0.0.1:{p}"},
             "deepseek-chat", "ds-key", "/chat/completions"),
    Provider("anthropic", "conversation.anthropic", "anthropic",
             lambda p: {"key": ANTHROPIC_KEY, "endpoint": f"http://127.0.0.1:{p}/v1"},
             "claude-sonnet-4-20250514", ANTHROPIC_KEY, "/v1/messages", stop="end_turn", tool_stop="tool_use"),
    Provider("bedrock", "conversation.aws.bedrock", "bedrock",
             lambda p: {"endpoint": f"http://127.0.0.1:{p}", "accessKey": AWS_ACCESS, "secretKey": AWS_SECRET,
                        "model": "anthropic.claude-3-haiku-20240307-v1:0"},
             "anthropic.claude-3-haiku-20240307-v1:0", None, "/model/{model}/converse",
             stop="end_turn", tool_stop="tool_use"),
]


@dataclasses.dataclass
class Harness:
    provider: Provider
    fake: FakeServer
    entry: Entry

    @property
    def component(self) -> base.Conversation:
        return self.entry.instance

    async def converse(self, request: base.ConverseRequest, timeout: float | None = 5.0) -> base.ConverseResponse:
        return await self.component.converse(request, timeout=timeout)


@pytest.fixture(params=PROVIDERS, ids=[p.id for p in PROVIDERS])
async def harness(request: pytest.FixtureRequest, build: Build, monkeypatch: pytest.MonkeyPatch
                  ) -> AsyncIterator[Harness]:
    """Every provider, each against a fresh fake of its wire format."""
    provider: Provider = request.param
    for var in MODEL_ENV:
        monkeypatch.delenv(var, raising=False)
    fake: FakeServer
    if provider.wire == "openai":
        fake = OpenAIFake(expected_key=provider.key)
    elif provider.wire == "anthropic":
        fake = AnthropicFake(expected_key=provider.key)
    else:
        fake = BedrockFake(credentials={AWS_ACCESS: AWS_SECRET})
    await fake.start()
    try:
        yield Harness(provider, fake, await build(provider.type, provider.metadata(fake.port)))
    finally:
        await fake.close()


MODEL_ENV = ("OPENAI_MODEL", "AZURE_OPENAI_MODEL", "ANTHROPIC_MODEL", "GOOGLEAI_MODEL", "MISTRAL_MODEL",
             "HUGGINGFACE_MODEL", "OLLAMA_MODEL")


def user(text: str) -> base.Message:
    return base.Message(base.Role.USER, (base.TextPart(text),))


def text_request(*texts: str, **fields: Any) -> base.ConverseRequest:
    return base.ConverseRequest(messages=tuple(user(t) for t in texts), **fields)
