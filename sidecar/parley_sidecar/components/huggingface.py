"""``conversation.huggingface``: Hugging Face's OpenAI-compatible router.

The endpoint is a template: ``{{model}}`` is replaced by the model of each call, so a per-request
model override reaches the right URL. daprd substitutes only its default template, once, at init.
"""

from __future__ import annotations

from parley_sidecar.components import base, openai_kit

__all__ = ["DIALECT", "create"]

DIALECT = openai_kit.Dialect(provider="huggingface")


def create(context: base.ComponentContext) -> base.Conversation:
    """Model, key and endpoint come from the catalog's resolved metadata (defaults included)."""
    return openai_kit.ChatCompletions(context, DIALECT)
