"""``conversation.anthropic``: Anthropic's Messages API (``POST {endpoint}/messages``).

Metadata as daprd: ``key``, ``model`` (``ANTHROPIC_MODEL`` wins), ``endpoint``, ``apiType``
(``anthropic`` | ``foundry``, which requires ``endpoint``), plus ``maxTokens`` (the API requires
``max_tokens``; 2048 as langchaingo sends). Headers ``x-api-key`` and ``anthropic-version``.

Mapping: system (and developer) text becomes the top-level ``system`` field; user text and tool
results become ``user`` turns (``text`` and ``tool_result`` blocks); assistant text and tool
calls become ``assistant`` turns (``text`` and ``tool_use`` blocks, the arguments parsed as the
JSON object Anthropic wants). Consecutive turns of one role are merged, so the results of
parallel tool calls travel in one user turn as the API requires. ``toolChoice`` is Anthropic's
object form (``auto`` omitted, ``required`` → ``{"type": "any"}``, a name → ``{"type": "tool"}``),
never sent without tools (components-contrib ``translateToolChoice``). A ``responseFormat``
becomes a forced tool whose input is the answer, as langchaingo does.

Where daprd's langchaingo client loses data (only the first part of an assistant message, usage
always absent, ``temperature: 0`` sent when unset, an error on unknown content blocks), parley
keeps it; see ``docs/providers.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parley_sidecar import errors
from parley_sidecar.components import base, catalog, checks, http_kit, structured, tool_blocks

__all__ = ["API_VERSION", "DEFAULT_ENDPOINT", "Anthropic", "build_body", "create", "parse_response"]

DEFAULT_ENDPOINT = "https://api.anthropic.com/v1"
API_VERSION = "2023-06-01"
PROVIDER = "anthropic"


_BLOCKS = tool_blocks.Blocks(
    provider=PROVIDER,
    text=lambda text: {"type": "text", "text": text},
    tool_use=lambda call, arguments: {"type": "tool_use", "id": call.id, "name": call.name, "input": arguments},
    tool_result=lambda result: {"type": "tool_result", "tool_use_id": result.tool_id, "content": result.content},
)


def _tool_choice(choice: str | None) -> dict[str, Any] | None:
    if not choice or choice == "auto":
        return None
    if choice in ("required", "any"):
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    return {"type": "tool", "name": choice}


def build_body(
    request: base.ConverseRequest, model: str, max_tokens: int
) -> tuple[dict[str, Any], structured.Definition | None]:
    """The Messages request body, and the structured-output definition when one was asked for."""
    merged = tool_blocks.turns(request.messages, _BLOCKS)
    system, turns = "\n".join(merged.system), merged.turns
    body: dict[str, Any] = {"model": model, "messages": turns, "max_tokens": request.max_tokens or max_tokens}
    if system:
        body["system"] = system
    if request.temperature > 0:
        body["temperature"] = request.temperature
    tools = [
        {
            "name": t.name,
            **({"description": t.description} if t.description else {}),
            "input_schema": dict(t.parameters) or {"type": "object", "properties": {}},
        }
        for t in request.tools
    ]
    choice = _tool_choice(request.tool_choice) if tools else None
    defn = structured.definition(request.response_format) if request.response_format is not None else None
    if defn is not None:
        tools.append({
            "name": defn.name,
            **({"description": defn.description} if defn.description else {}),
            "input_schema": defn.schema,
        })
        choice = {"type": "tool", "name": defn.name}
    if tools:
        body["tools"] = tools
    if choice is not None:
        body["tool_choice"] = choice
    return body, defn


def parse_response(
    data: Any, model: str, request: base.ConverseRequest, defn: structured.Definition | None
) -> base.ConverseResponse:
    if not isinstance(data, Mapping) or not isinstance(data.get("content"), list):
        raise errors.ProviderError(f"{PROVIDER} returned a malformed response (no content list)", status=200)
    blocks = [b for b in data["content"] if isinstance(b, Mapping)]
    # thinking, redacted_thinking, server tool blocks: not part of the conversation API
    return tool_blocks.response(
        texts=[b["text"] for b in blocks if b.get("type") == "text" and isinstance(b.get("text"), str)],
        uses=[(str(b.get("id") or ""), str(b.get("name") or ""), b.get("input"))
              for b in blocks if b.get("type") == "tool_use"],
        defn=defn, finish=str(data.get("stop_reason") or "unknown"), request=request, model=model,
        provider=PROVIDER, usage=tool_blocks.usage(data.get("usage"), input="input_tokens", output="output_tokens",
                                                    cache_read="cache_read_input_tokens",
                                                    cache_write="cache_creation_input_tokens"),
    )


class Anthropic(http_kit.ComponentSession):
    def __init__(self, context: base.ComponentContext) -> None:
        self.context = context
        self.model = ""
        self._key = ""
        self._url = ""
        self._max_tokens = 2048

    async def init(self, metadata: Mapping[str, Any]) -> None:
        # apiType, maxTokens and model come with their defaults and checks from the catalog.
        api_type = str(metadata["apiType"]).lower()
        endpoint = metadata.get("endpoint")
        if api_type == "foundry" and not endpoint:
            raise catalog.MetadataError("endpoint", "is required when apiType is foundry")
        base_url = checks.base_url("endpoint", endpoint) if endpoint else DEFAULT_ENDPOINT
        if metadata["maxTokens"] <= 0:
            raise catalog.MetadataError("maxTokens", "must be a positive integer")
        self.model = metadata["model"]
        self._key = metadata["key"]
        self._url = f"{base_url}/messages"
        self._max_tokens = metadata["maxTokens"]

    async def converse(self, request: base.ConverseRequest, *, timeout: float | None) -> base.ConverseResponse:
        model = request.model or self.model
        key = request.api_key if request.api_key is not None else self._key
        body, defn = build_body(request, model, self._max_tokens)
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "x-api-key": key,
            "anthropic-version": API_VERSION,
        }
        data = await http_kit.post_json(self.session, self._url, http_kit.encode(body), headers=headers,
                                        timeout=timeout, provider=PROVIDER, secrets=(key, self._key),
                                        max_bytes=self.context.max_response_bytes, proxy=self.proxy(self._url))
        return parse_response(data, model, request, defn)

    async def aclose(self) -> None:
        await self.close_session()


def create(context: base.ComponentContext) -> base.Conversation:
    return Anthropic(context)
