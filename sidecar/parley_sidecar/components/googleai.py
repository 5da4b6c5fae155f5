"""``conversation.googleai``: Gemini through Google's OpenAI-compatible endpoint, as daprd does.

daprd fixes the endpoint to ``https://generativelanguage.googleapis.com/v1beta/openai/``; parley
uses that as the default of ``endpoint`` and lets metadata override it (a proxy, a test fake).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parley_sidecar.components import base, http_kit, openai_kit

__all__ = ["DEFAULT_ENDPOINT", "create"]

DEFAULT_ENDPOINT = "https://generativelanguage.googleapis.com/v1beta/openai/"
DIALECT = openai_kit.Dialect(provider="googleai")


class GoogleAI(openai_kit.ChatCompletions):
    async def init(self, metadata: Mapping[str, Any]) -> None:
        http_kit.check_policy(metadata)
        endpoint = metadata.get("endpoint") or DEFAULT_ENDPOINT
        self.configure(model=metadata["model"], key=metadata["key"],
                       base_url=openai_kit.check_endpoint("endpoint", endpoint))


def create(context: base.ComponentContext) -> base.Conversation:
    return GoogleAI(context, DIALECT)
