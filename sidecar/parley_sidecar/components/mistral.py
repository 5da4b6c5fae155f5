"""``conversation.mistral``: Mistral's chat completions API (OpenAI-compatible).

daprd uses langchaingo's Mistral client, which cannot carry tool calls, so it rewrites assistant
tool calls and tool results into text ("Tool call [ID: x]: f(args)"). Mistral's API has native
tool calls in OpenAI's shape; parley sends those (a documented difference). The key is required,
as in daprd ("mistral api key is required"). Like daprd's client, no ``metadata`` is sent: Mistral
refuses fields it does not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parley_sidecar.components import base, http_kit, openai_kit

__all__ = ["DEFAULT_ENDPOINT", "create"]

DEFAULT_ENDPOINT = "https://api.mistral.ai/v1"
DIALECT = openai_kit.Dialect(provider="mistral", forward_metadata=False)


class Mistral(openai_kit.ChatCompletions):
    async def init(self, metadata: Mapping[str, Any]) -> None:
        http_kit.check_policy(metadata)
        endpoint = metadata.get("endpoint") or DEFAULT_ENDPOINT
        self.configure(model=metadata["model"], key=metadata["key"],
                       base_url=openai_kit.check_endpoint("endpoint", endpoint))


def create(context: base.ComponentContext) -> base.Conversation:
    return Mistral(context, DIALECT)
