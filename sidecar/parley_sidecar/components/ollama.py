"""``conversation.ollama``: a local Ollama server through its OpenAI-compatible API.

Defaults as daprd: endpoint ``http://localhost:11434/v1``, key ``ollama`` (Ollama ignores it).
Ollama reports no finish reason for some models; that becomes ``unknown``, as in daprd (a
stream's last piece too). Streaming: each tool call comes whole in one chunk.
"""

from __future__ import annotations

from parley_sidecar.components import base, openai_kit

__all__ = ["DIALECT", "create"]

DIALECT = openai_kit.Dialect(provider="ollama")


def create(context: base.ComponentContext) -> base.Conversation:
    """Model, key and endpoint come from the catalog's resolved metadata (defaults included)."""
    return openai_kit.ChatCompletions(context, DIALECT)
