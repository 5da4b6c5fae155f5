"""``conversation.deepseek``: DeepSeek's OpenAI-compatible API.

Defaults as daprd: endpoint ``https://api.deepseek.com``, model ``deepseek-chat`` (no env var).
daprd parses ``maxTokens`` and never sends it; parley sends it as ``max_tokens`` when set.
DeepSeek has JSON mode but no ``json_schema``: a ``responseFormat`` becomes
``{"type": "json_object"}`` plus a system message carrying the schema (JSON mode needs the prompt
to ask for JSON). No response cache, as daprd (``supports_cache=False`` in the catalog).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parley_sidecar.components import base, http_kit, openai_kit

__all__ = ["create"]

DIALECT = openai_kit.Dialect(provider="deepseek", structured_output="json_object")


class DeepSeek(openai_kit.ChatCompletions):
    async def init(self, metadata: Mapping[str, Any]) -> None:
        http_kit.check_policy(metadata)
        self.configure(model=metadata["model"], key=metadata["key"],
                       base_url=openai_kit.check_endpoint("endpoint", metadata["endpoint"]),
                       max_tokens=metadata.get("maxTokens"))


def create(context: base.ComponentContext) -> base.Conversation:
    return DeepSeek(context, DIALECT)
