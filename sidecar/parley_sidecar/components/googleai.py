"""``conversation.googleai``: Gemini through Google's OpenAI-compatible endpoint, as daprd does.

daprd fixes the endpoint to ``https://generativelanguage.googleapis.com/v1beta/openai/``; parley
uses that as the default of ``endpoint`` and lets metadata override it (a proxy, a test fake).
Streaming: Gemini's layer sends each tool call whole and without ``index`` (``ChunkReader`` numbers
calls by their ids), and ends a streamed tool call with ``finish_reason: stop`` where its unstreamed
answer says ``tool_calls`` (``Dialect.stream_tool_stop``; tests/fakes/recorded/googleai_stream_tools.txt).
No ``seed`` is sent: ``generationConfig.seed`` is the native API's, and the OpenAI layer's request
reference (https://ai.google.dev/api/compatibility) was not found to list one; an unknown field
there is a 400, so an unconfirmed one stays home.
Thought signatures: Gemini 3 puts ``extra_content: {"google": {"thought_signature": …}}`` on the
first tool call of an answer (unstreamed and streamed alike) and answers 400 when a call of the
current turn comes back without it (https://ai.google.dev/gemini-api/docs/thought-signatures,
"Signatures for OpenAI compatibility"): ``Dialect.extra_content`` carries it to the caller and back.
"""

from __future__ import annotations

from parley_sidecar.components import base, openai_kit

__all__ = ["DIALECT", "create"]

DIALECT = openai_kit.Dialect(provider="googleai", stream_tool_stop=True, seed_field=None, extra_content=True)


def create(context: base.ComponentContext) -> base.Conversation:
    """Model, key and endpoint come from the catalog's resolved metadata (defaults included)."""
    return openai_kit.ChatCompletions(context, DIALECT)
