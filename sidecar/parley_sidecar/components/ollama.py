"""``conversation.ollama``: a local Ollama server through its OpenAI-compatible API.

Defaults as daprd: endpoint ``http://localhost:11434/v1``, key ``ollama`` (Ollama ignores it).
Ollama reports no finish reason for some models; that becomes ``unknown``, as in daprd.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parley_sidecar.components import base, http_kit, openai_kit

__all__ = ["create"]

DIALECT = openai_kit.Dialect(provider="ollama")


class Ollama(openai_kit.ChatCompletions):
    async def init(self, metadata: Mapping[str, Any]) -> None:
        http_kit.check_policy(metadata)
        self.configure(model=metadata["model"], key=metadata.get("key") or "ollama",
                       base_url=openai_kit.check_endpoint("endpoint", metadata["endpoint"]))


def create(context: base.ComponentContext) -> base.Conversation:
    return Ollama(context, DIALECT)
