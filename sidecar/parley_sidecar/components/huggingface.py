"""``conversation.huggingface``: Hugging Face's OpenAI-compatible router.

The endpoint is a template: ``{{model}}`` is replaced by the model of each call, so a per-request
model override reaches the right URL. daprd substitutes only its default template, once, at init.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parley_sidecar.components import base, http_kit, openai_kit

__all__ = ["DEFAULT_ENDPOINT", "create"]

DEFAULT_ENDPOINT = "https://router.huggingface.co/hf-inference/models/{{model}}/v1"
DIALECT = openai_kit.Dialect(provider="huggingface")


class HuggingFace(openai_kit.ChatCompletions):
    async def init(self, metadata: Mapping[str, Any]) -> None:
        http_kit.check_policy(metadata)
        endpoint = metadata.get("endpoint") or DEFAULT_ENDPOINT
        openai_kit.check_endpoint("endpoint", endpoint.replace("{{model}}", "m"))
        self.configure(model=metadata["model"], key=metadata["key"], base_url=endpoint)


def create(context: base.ComponentContext) -> base.Conversation:
    return HuggingFace(context, DIALECT)
