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
becomes a forced tool whose input is the answer, as langchaingo does. The OpenAI-compatible API's
``user`` goes as ``metadata.user_id``.

Where daprd's langchaingo client loses data (only the first part of an assistant message, usage
always absent, ``temperature: 0`` sent when unset, an error on unknown content blocks), parley
keeps it; see ``docs/providers.md``.

:meth:`Anthropic.stream` sends the same body with ``stream: true`` and reads Anthropic's SSE
events: ``message_start`` (input usage), ``content_block_start``/``_delta``/``_stop`` (``text_delta``
relayed as text, ``input_json_delta`` as tool-call argument fragments), ``message_delta`` (stop
reason, output usage), ``message_stop`` (the end; a stream without it was cut short), ``ping``
(ignored) and ``error`` (a ProviderError with Anthropic's own message). Event types Anthropic may
add later are ignored, as its documentation asks.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from parley_sidecar import errors
from parley_sidecar.components import (
    base,
    block_stream,
    catalog,
    checks,
    http_kit,
    sse,
    structured,
    tool_blocks,
)

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
    if request.user:
        # OpenAI's ``user`` (the OpenAI-compatible API's; alpha2 has none) is Anthropic's
        # ``metadata.user_id``, its end-user id for abuse detection. alpha2's own ``metadata`` is not
        # sent: the object Anthropic documents has ``user_id`` only.
        body["metadata"] = {"user_id": request.user}
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
        provider=PROVIDER, usage=_usage(data.get("usage")),
        served_model=checks.served_model(data),
    )


_ERROR_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "permission_error": 403,
                 "not_found_error": 404, "request_too_large": 413, "rate_limit_error": 429, "api_error": 500,
                 "overloaded_error": 529}
"""An ``error`` event's type → the HTTP status the same error has before a stream starts."""


def _usage(raw: Any) -> base.Usage | None:
    """Usage fields by Anthropic's names, of a whole answer or of a stream."""
    return tool_blocks.usage(raw, input="input_tokens", output="output_tokens",
                             cache_read="cache_read_input_tokens", cache_write="cache_creation_input_tokens")


def stream_event(blocks: block_stream.Blocks, event: sse.Event, secrets: tuple[str, ...]) -> base.Delta | None:
    """One SSE event of a Messages stream: the piece it carries, if any."""
    try:
        data = json.loads(event.data)
    except ValueError:
        data = None
    if not isinstance(data, Mapping):
        raise errors.ProviderError(f"{PROVIDER} sent a malformed event (not a JSON object)", status=200)
    kind = data.get("type") or event.event
    raw_index = data.get("index")
    index = raw_index if isinstance(raw_index, int) else -1
    if kind == "message_start":
        message = data.get("message")
        blocks.add_usage(message.get("usage") if isinstance(message, Mapping) else None)
    elif kind == "content_block_start":
        block = data.get("content_block")
        block = block if isinstance(block, Mapping) else {}
        if block.get("type") == "text":
            return blocks.start_text(index, str(block.get("text") or ""))
        if block.get("type") == "tool_use":
            return blocks.start_tool(index, str(block.get("id") or ""), str(block.get("name") or ""))
        blocks.start_other(index)  # thinking, server tool use: not part of the conversation API
    elif kind == "content_block_delta":
        delta = data.get("delta")
        delta = delta if isinstance(delta, Mapping) else {}
        if delta.get("type") == "text_delta":
            return blocks.text(index, str(delta.get("text") or ""))
        if delta.get("type") == "input_json_delta":
            return blocks.tool_input(index, str(delta.get("partial_json") or ""))
    elif kind == "content_block_stop":
        return blocks.stop(index)
    elif kind == "message_delta":
        delta = data.get("delta")
        if isinstance(delta, Mapping) and delta.get("stop_reason"):
            blocks.finish_reason = str(delta["stop_reason"])
        blocks.add_usage(data.get("usage"))
    elif kind == "message_stop":
        blocks.done = True
    elif kind == "error":
        error = data.get("error")
        error = error if isinstance(error, Mapping) else {}
        status = _ERROR_STATUS.get(str(error.get("type")), 500)
        detail = http_kit.one_line(str(error.get("message") or error.get("type") or ""), secrets)
        raise errors.ProviderError(f"{PROVIDER} sent an error mid-stream: {detail or 'no message'}", status=status,
                                   retryable=status in http_kit.RETRYABLE_STATUSES)
    return None


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
        self._sent_headers = None

    async def converse(self, request: base.ConverseRequest, *, timeout: float | None) -> base.ConverseResponse:
        model = request.model or self.model
        key = request.api_key if request.api_key is not None else self._key
        body, defn = build_body(request, model, self._max_tokens)
        data = await http_kit.post_json(self.upstream(self._url, PROVIDER, (key, self._key)), self._url,
                                        http_kit.encode(body), headers=self.call_headers(key, self._key, _headers),
                                        timeout=timeout)
        return parse_response(data, model, request, defn)

    async def stream(self, request: base.ConverseRequest, *, timeout: float | None) -> AsyncIterator[base.Delta]:
        model = request.model or self.model
        key = request.api_key if request.api_key is not None else self._key
        body, defn = build_body(request, model, self._max_tokens)
        body["stream"] = True
        data = http_kit.encode(body)
        del body  # only the bytes travel; the stream's frame holds neither for the answer's length
        blocks = block_stream.Blocks(model=model, provider=PROVIDER, defn=defn)
        secrets = (key, self._key)
        async with http_kit.open_stream(
            self.upstream(self._url, PROVIDER, secrets), self._url, data,
            headers=self.call_headers(key, self._key, _stream_headers, _stream_headers), timeout=timeout,
        ) as upstream:
            del data
            async with contextlib.aclosing(sse.events(upstream)) as events:
                async for event in events:
                    delta = stream_event(blocks, event, secrets)
                    if delta is not None:
                        upstream.arrived()
                        yield delta
                    if blocks.done:
                        break
            if not blocks.done:
                raise upstream.truncated("message_stop")
            yield blocks.last(request, _usage(blocks.usage))

    async def aclose(self) -> None:
        await self.close_session()


def _headers(key: str) -> dict[str, str]:
    return {"Content-Type": "application/json", "Accept": "application/json", "x-api-key": key,
            "anthropic-version": API_VERSION}


def _stream_headers(key: str) -> dict[str, str]:
    return _headers(key) | {"Accept": "text/event-stream"}


def create(context: base.ComponentContext) -> base.Conversation:
    return Anthropic(context)
