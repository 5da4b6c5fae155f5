"""``conversation.openai``: OpenAI, Azure OpenAI, and any OpenAI-compatible server.

Metadata as daprd (components-contrib ``conversation/openai``): ``key``, ``model``, ``endpoint``,
``apiType`` (``open_ai`` | ``azure``), ``apiVersion``. With ``apiType: azure`` the call goes to
``{endpoint}/openai/deployments/{model}/chat/completions?api-version={apiVersion}`` with an
``api-key`` header, and both ``endpoint`` and ``apiVersion`` are required.

Model precedence is daprd's and depends on ``apiType``, so it is resolved here rather than in
the catalog: ``OPENAI_MODEL`` (``AZURE_OPENAI_MODEL`` for Azure), then metadata ``model``, then
``gpt-5-nano`` (``gpt-4.1-nano`` for Azure).

An ``endpoint`` other than OpenAI's own (vLLM, llama.cpp, LM Studio) gets the conservative
dialect: ``system`` for developer messages, no message names, ``max_tokens``.

Azure's request fields depend on ``apiVersion`` (Azure/azure-rest-api-specs, inference specs per
version): the GA ``2024-10-21`` has ``stream_options``, ``json_schema``, ``seed`` and ``user`` but
neither ``max_completion_tokens`` nor the ``developer`` role; ``2024-06-01`` and older lack
``stream_options`` and ``json_schema`` too. Azure refuses a field its version does not know
(``Unrecognized request argument supplied``), so :func:`azure_dialect` sends only what the version
has: ``max_tokens``, ``system``, JSON mode with the schema in a system message, and a stream that
asks for no usage (older versions send none).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from parley_sidecar.components import base, catalog, checks, openai_kit

__all__ = ["DEFAULT_ENDPOINT", "OpenAI", "azure_dialect", "create"]

DEFAULT_ENDPOINT = "https://api.openai.com/v1"

OPENAI = openai_kit.Dialect(
    provider="openai", developer_role="developer", send_names=True, max_tokens_field="max_completion_tokens",
    send_user=True,
)
AZURE = openai_kit.Dialect(
    provider="azure openai", developer_role="developer", send_names=True,
    max_tokens_field="max_completion_tokens", auth="api-key", send_user=True,
)
COMPATIBLE = openai_kit.Dialect(provider="openai-compatible server")

_API_VERSION = re.compile(r"(\d{4}-\d{2}-\d{2})(-preview)?")


def azure_dialect(api_version: str) -> openai_kit.Dialect:
    """What an Azure ``api-version`` accepts. Dates compare as text (ISO ``YYYY-MM-DD``); a version
    that is not dated (``preview``, ``latest``) is the current API."""
    match = _API_VERSION.fullmatch(api_version.strip())
    if match is None:
        return AZURE
    date, preview = match[1], match[2] is not None
    return dataclasses.replace(
        AZURE,
        # 2024-09-01-preview added both (o1); the GA 2024-10-21 still has only max_tokens
        max_tokens_field="max_completion_tokens" if date > "2024-10-21" or (preview and date >= "2024-09-01")
        else "max_tokens",
        developer_role="developer" if date >= "2024-12-01" else "system",
        stream_usage_option=date >= "2024-09-01",
        structured_output="json_schema" if date >= "2024-08-01" else "json_object",
        seed_field="seed" if date >= "2023-12-01" else None,
    )


class OpenAI(openai_kit.ChatCompletions):
    async def init(self, metadata: Mapping[str, Any]) -> None:
        api_type = str(metadata.get("apiType") or "open_ai").lower()
        endpoint = metadata.get("endpoint")
        if api_type == "azure":
            if not endpoint:
                raise catalog.MetadataError("endpoint", "is required when apiType is azure")
            if not metadata.get("apiVersion"):
                raise catalog.MetadataError("apiVersion", "is required when apiType is azure")
            model = os.environ.get("AZURE_OPENAI_MODEL") or metadata.get("model") or "gpt-4.1-nano"
            self.dialect = azure_dialect(str(metadata["apiVersion"]))
            self.configure(model=model, key=metadata["key"],
                           base_url=checks.base_url("endpoint", endpoint),
                           azure_api_version=str(metadata["apiVersion"]), max_tokens=metadata.get("maxTokens"))
            return
        if api_type != "open_ai":  # the catalog checks too; kept for direct use
            raise catalog.MetadataError("apiType", "must be one of open_ai, azure")
        model = os.environ.get("OPENAI_MODEL") or metadata.get("model") or "gpt-5-nano"
        base_url = checks.base_url("endpoint", endpoint) if endpoint else DEFAULT_ENDPOINT
        host = urlsplit(base_url).hostname or ""
        own = host == "api.openai.com" or host.endswith(".api.openai.com")  # eu.api.openai.com …
        self.dialect = OPENAI if own else COMPATIBLE
        self.configure(model=model, key=metadata["key"], base_url=base_url, max_tokens=metadata.get("maxTokens"))


def create(context: base.ComponentContext) -> base.Conversation:
    return OpenAI(context, OPENAI)
