"""``conversation.deepseek``: DeepSeek's OpenAI-compatible API.

Defaults as daprd: endpoint ``https://api.deepseek.com``, model ``deepseek-chat`` (no env var).
daprd parses ``maxTokens`` and never sends it; parley sends it as ``max_tokens`` when set.
DeepSeek has JSON mode but no ``json_schema``: a ``responseFormat`` becomes
``{"type": "json_object"}`` plus a system message carrying the schema (JSON mode needs the prompt
to ask for JSON). daprd has no response cache for it; parley's pipeline caches it like every type.
Streaming: ``: keep-alive`` SSE comments come while a request is queued (skipped by ``sse``);
``reasoning_content`` deltas are not relayed, as ``converse`` drops them. DeepSeek's API documents
no ``seed``, so a request's is not sent.
"""

from __future__ import annotations

from parley_sidecar.components import base, openai_kit

__all__ = ["DIALECT", "create"]

DIALECT = openai_kit.Dialect(provider="deepseek", structured_output="json_object", seed_field=None)


def create(context: base.ComponentContext) -> base.Conversation:
    """Model, key and endpoint come from the catalog's resolved metadata (defaults included)."""
    return openai_kit.ChatCompletions(context, DIALECT)
