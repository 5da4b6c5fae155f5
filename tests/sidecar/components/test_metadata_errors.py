"""A Component whose metadata is wrong fails to load, and says which component and which field,
never echoing a value (the store keeps the others serving)."""

from __future__ import annotations

import pytest

from parley_sidecar.components.store import LoadError
from tests.sidecar.components.conftest import Build

SECRET = "sk-do-not-print-me-123"


@pytest.mark.parametrize(("type_", "metadata", "field", "reason"), [
    ("conversation.openai", {}, "key", "is required"),
    ("conversation.openai", {"key": SECRET, "endpoint": "not a url"}, "endpoint", "URL"),
    ("conversation.openai", {"key": SECRET, "endpoint": "ftp://files.example.com/v1"}, "endpoint", "http"),
    ("conversation.openai", {"key": SECRET, "apiType": "bedrock"}, "apiType", "open_ai, azure"),
    ("conversation.openai", {"key": SECRET, "apiType": "azure", "apiVersion": "2024-10-21"}, "endpoint",
     "required when apiType is azure"),
    ("conversation.openai", {"key": SECRET, "apiType": "azure", "endpoint": "https://x.openai.azure.com"},
     "apiVersion", "required when apiType is azure"),
    ("conversation.openai", {"key": SECRET, "timeout": "soon"}, "timeout", "duration"),
    ("conversation.anthropic", {"key": SECRET, "apiType": "foundry"}, "endpoint", "required when apiType is foundry"),
    ("conversation.anthropic", {"key": SECRET, "maxTokens": "0"}, "maxTokens", "positive"),
    ("conversation.anthropic", {"key": SECRET, "maxTokens": "many"}, "maxTokens", "integer"),
    ("conversation.mistral", {}, "key", "is required"),
    ("conversation.deepseek", {"key": SECRET, "maxTokens": "-5"}, "maxTokens", "positive"),
    ("conversation.googleai", {"key": SECRET, "maxRetries": "-1"}, "maxRetries", "0 or more"),
    ("conversation.huggingface", {"key": SECRET, "retryBackoff": "fast"}, "retryBackoff", "duration"),
    ("conversation.ollama", {"endpoint": "localhost:11434"}, "endpoint", "URL"),
])
async def test_bad_metadata(build: Build, type_: str, metadata: dict[str, str], field: str, reason: str) -> None:
    with pytest.raises(LoadError) as info:
        await build(type_, metadata, name="broken")
    message = str(info.value)
    assert f"component 'broken' ({type_})" in message
    assert f"metadata field '{field}'" in message
    assert reason in message
    assert SECRET not in message
