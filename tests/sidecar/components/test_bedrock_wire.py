"""Amazon Bedrock Converse, field by field, every request's SigV4 signature checked by the fake."""

from __future__ import annotations

import json
from typing import Any

import pytest

from parley_sidecar import errors
from parley_sidecar.components import base
from tests.fakes import BedrockFake, Reply
from tests.sidecar.components.conftest import AWS_ACCESS, AWS_SECRET, Build, text_request, user

CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"


@pytest.fixture(autouse=True)
def _no_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                "AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL_STS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


async def bedrock(build: Build, fake: BedrockFake, **metadata: str) -> base.Conversation:
    meta = {"endpoint": fake.url, "accessKey": AWS_ACCESS, "secretKey": AWS_SECRET, "model": CLAUDE}
    return (await build("conversation.aws.bedrock", {**meta, **metadata})).instance


async def test_full_conversation(build: Build, bedrock_fake: BedrockFake) -> None:
    component = await bedrock(build, bedrock_fake, maxTokens="300")
    weather = base.Tool("weather", "Weather of a city", {"type": "object", "properties": {"city": {"type": "string"}}})
    request = base.ConverseRequest(messages=(
        base.Message(base.Role.SYSTEM, (base.TextPart("Be brief."),)),
        user("Weather in Paris?"),
        base.Message(base.Role.ASSISTANT, (base.ToolCall("tu_1", "weather", '{"city":"Paris"}'),)),
        base.Message(base.Role.TOOL, (base.ToolResult("tu_1", "weather", "21C"),)),
        user("Thanks"),
    ), tools=(weather, base.Tool("now")), tool_choice="auto", temperature=0.5)
    await component.converse(request, timeout=5)
    recorded = bedrock_fake.last
    assert recorded.path == "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    assert recorded.headers["authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={AWS_ACCESS}/")
    assert "/us-east-1/bedrock/aws4_request" in recorded.headers["authorization"]
    assert recorded.body == {
        "system": [{"text": "Be brief."}],
        "messages": [
            {"role": "user", "content": [{"text": "Weather in Paris?"}]},
            {"role": "assistant", "content": [{"toolUse": {"toolUseId": "tu_1", "name": "weather",
                                                           "input": {"city": "Paris"}}}]},
            {"role": "user", "content": [{"toolResult": {"toolUseId": "tu_1", "content": [{"text": "21C"}]}},
                                         {"text": "Thanks"}]},
        ],
        "inferenceConfig": {"maxTokens": 300, "temperature": 0.5},
        "toolConfig": {"tools": [
            {"toolSpec": {"name": "weather", "description": "Weather of a city",
                          "inputSchema": {"json": {"type": "object", "properties": {"city": {"type": "string"}}}}}},
            {"toolSpec": {"name": "now", "inputSchema": {"json": {"type": "object", "properties": {}}}}},
        ]},
    }


@pytest.mark.parametrize(("choice", "sent"), [
    ("required", {"any": {}}),
    ("now", {"tool": {"name": "now"}}),
])
async def test_tool_choice(build: Build, bedrock_fake: BedrockFake, choice: str, sent: Any) -> None:
    component = await bedrock(build, bedrock_fake)
    await component.converse(text_request("Hi", tools=(base.Tool("now"),), tool_choice=choice), timeout=5)
    assert bedrock_fake.last.body["toolConfig"]["toolChoice"] == sent


async def test_tool_choice_none_leaves_tools_out(build: Build, bedrock_fake: BedrockFake) -> None:
    component = await bedrock(build, bedrock_fake)
    await component.converse(text_request("Hi", tools=(base.Tool("now"),), tool_choice="none"), timeout=5)
    assert "toolConfig" not in bedrock_fake.last.body
    # … unless the conversation already holds tool blocks, which Bedrock only accepts with toolConfig
    request = base.ConverseRequest(messages=(
        user("time?"),
        base.Message(base.Role.ASSISTANT, (base.ToolCall("t", "now", "{}"),)),
        base.Message(base.Role.TOOL, (base.ToolResult("t", "now", "noon"),)),
    ), tools=(base.Tool("now"),), tool_choice="none")
    await component.converse(request, timeout=5)
    assert bedrock_fake.last.body["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "now", "inputSchema": {"json": {"type": "object", "properties": {}}}}}]}


async def test_structured_output(build: Build, bedrock_fake: BedrockFake) -> None:
    component = await bedrock(build, bedrock_fake)
    bedrock_fake.reply(structured={"n": 3})
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    response = await component.converse(text_request("n?", response_format=schema), timeout=5)
    assert bedrock_fake.last.body["toolConfig"]["toolChoice"] == {"tool": {"name": "response"}}
    assert json.loads(response.outputs[0].choices[0].content) == {"n": 3}


async def test_model_arn_and_session_token(build: Build, bedrock_fake: BedrockFake) -> None:
    bedrock_fake.session_tokens[AWS_ACCESS] = "session-token-xyz"
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-v1:0"
    component = await bedrock(build, bedrock_fake, sessionToken="session-token-xyz", model=arn)
    response = await component.converse(text_request("Hi"), timeout=5)
    assert bedrock_fake.last.path == (
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic."
        "claude-3-haiku-v1%3A0/converse")
    assert bedrock_fake.last.headers["x-amz-security-token"] == "session-token-xyz"
    assert response.model == arn


async def test_wrong_secret_is_refused_by_the_signature_check(build: Build, bedrock_fake: BedrockFake) -> None:
    component = await bedrock(build, bedrock_fake, secretKey="not/the/right/secret")
    with pytest.raises(errors.ProviderError) as info:
        await component.converse(text_request("Hi"), timeout=5)
    assert info.value.status == 403
    assert info.value.reason == ("the provider rejected the AWS credentials (403): The request signature we "
                                 "calculated does not match the signature you provided.")
    assert "not/the/right/secret" not in info.value.reason


async def test_throttling(build: Build, bedrock_fake: BedrockFake) -> None:
    component = await bedrock(build, bedrock_fake)
    bedrock_fake.fail(429, "Too many requests, please wait before trying again.")
    with pytest.raises(errors.ProviderError) as info:
        await component.converse(text_request("Hi"), timeout=5)
    assert info.value.retryable
    assert info.value.reason == ("aws bedrock returned 429 Too Many Requests: "
                                 "Too many requests, please wait before trying again.")


async def test_response_shapes(build: Build, bedrock_fake: BedrockFake) -> None:
    component = await bedrock(build, bedrock_fake)
    bedrock_fake.reply(Reply(raw={"output": {"message": {"role": "assistant", "content": [
        {"reasoningContent": {"reasoningText": {"text": "hmm"}}}, {"text": "a"}, {"text": "b"}]}},
        "stopReason": "max_tokens", "usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7}}))
    response = await component.converse(text_request("Hi"), timeout=5)
    assert response.outputs[0].choices[0] == base.Choice("max_tokens", 0, "a\nb")
    assert response.usage == base.Usage(4, 3, 7)
    bedrock_fake.reply(Reply(raw={"output": {}}))
    with pytest.raises(errors.ProviderError, match="malformed response"):
        await component.converse(text_request("Hi"), timeout=5)
