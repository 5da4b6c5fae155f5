"""``conversation.mistral``: Mistral's chat completions API (OpenAI-compatible).

daprd uses langchaingo's Mistral client, which cannot carry tool calls, so it rewrites assistant
tool calls and tool results into text ("Tool call [ID: x]: f(args)"). Mistral's API has native
tool calls in OpenAI's shape; parley sends those (a documented difference). The key is required,
as in daprd ("mistral api key is required"). Like daprd's client, no ``metadata`` is sent: Mistral
refuses fields it does not know; for the same reason a stream asks for no ``stream_options`` (Mistral
puts usage on its last chunk anyway). A request's ``seed`` travels as Mistral's ``random_seed``.
"""

from __future__ import annotations

from parley_sidecar.components import base, openai_kit

__all__ = ["DIALECT", "create"]

DIALECT = openai_kit.Dialect(provider="mistral", forward_metadata=False, stream_usage_option=False,
                             seed_field="random_seed")


def create(context: base.ComponentContext) -> base.Conversation:
    """Model, key and endpoint come from the catalog's resolved metadata (defaults included)."""
    return openai_kit.ChatCompletions(context, DIALECT)
