"""``conversation.aws.bedrock``: Amazon Bedrock's Converse API, signed with SigV4.

``POST {endpoint}/model/{modelId}/converse`` on ``https://bedrock-runtime.{region}.amazonaws.com``
unless metadata ``endpoint`` says otherwise. daprd goes through langchaingo's Bedrock client,
which uses ``InvokeModel`` with a different body per model vendor and supports only some
vendors; Converse is one format for every model Bedrock serves, with tool use, so parley uses it.

Mapping: system and developer text → ``system`` blocks; user text and tool results → ``user``
turns (``text`` and ``toolResult`` blocks); assistant text and tool calls → ``assistant`` turns
(``text`` and ``toolUse``); consecutive turns of one role are merged, as Converse requires
alternation. ``temperature`` (only when set) and ``maxTokens`` go in ``inferenceConfig``; tools
in ``toolConfig`` with ``toolChoice`` ``auto`` / ``any`` / ``tool``. Converse has no ``none``
choice: tools are then left out, unless the conversation already holds tool blocks (Bedrock
requires ``toolConfig`` then). A ``responseFormat`` becomes a forced tool, as for Anthropic.

Credentials: ``aws_auth`` (metadata keys, environment, IRSA, EKS Pod Identity, shared file;
``assumeRoleArn``). Signing: ``sigv4``.

:meth:`Bedrock.stream` calls ``ConverseStream`` (``POST {endpoint}/model/{modelId}/converse-stream``,
the same body, signed the same way) and decodes its AWS event-stream answer (``eventstream``, both
CRCs checked): ``messageStart``, ``contentBlockStart`` (a tool use's id and name),
``contentBlockDelta`` (``text``, or ``toolUse.input`` fragments), ``contentBlockStop``,
``messageStop`` (the stop reason; a stream without it was cut short) and ``metadata`` (usage,
after the stop), and ``:message-type: exception`` events (a ProviderError with Bedrock's message
and the status the same exception has before a stream starts).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import yarl

from parley_sidecar import errors
from parley_sidecar.components import (
    aws_auth,
    base,
    block_stream,
    catalog,
    checks,
    eventstream,
    http_kit,
    sigv4,
    structured,
    tool_blocks,
)

__all__ = ["Bedrock", "build_body", "create", "parse_response"]

PROVIDER = "aws bedrock"
SERVICE = "bedrock"


_BLOCKS = tool_blocks.Blocks(
    provider=PROVIDER,
    text=lambda text: {"text": text},
    tool_use=lambda call, arguments: {"toolUse": {"toolUseId": call.id, "name": call.name, "input": arguments}},
    tool_result=lambda result: {"toolResult": {"toolUseId": result.tool_id, "content": [{"text": result.content}]}},
)


def _spec(name: str, description: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name}
    if description:
        spec["description"] = description
    spec["inputSchema"] = {"json": dict(schema) or {"type": "object", "properties": {}}}
    return {"toolSpec": spec}


def build_body(
    request: base.ConverseRequest, max_tokens: int | None
) -> tuple[dict[str, Any], structured.Definition | None]:
    merged = tool_blocks.turns(request.messages, _BLOCKS)
    system = [{"text": text} for text in merged.system]
    turns, has_tool_blocks = merged.turns, merged.has_tool_blocks
    body: dict[str, Any] = {"messages": turns}
    if system:
        body["system"] = system
    inference: dict[str, Any] = {}
    if request.max_tokens or max_tokens:
        inference["maxTokens"] = request.max_tokens or max_tokens
    if request.temperature > 0:
        inference["temperature"] = request.temperature
    if inference:
        body["inferenceConfig"] = inference
    choice = request.tool_choice or "auto"
    tools = [_spec(t.name, t.description, t.parameters) for t in request.tools]
    tool_choice: dict[str, Any] | None = None
    if tools:
        if choice == "none":
            tools = tools if has_tool_blocks else []
        elif choice in ("required", "any"):
            tool_choice = {"any": {}}
        elif choice != "auto":
            tool_choice = {"tool": {"name": choice}}
    defn = structured.definition(request.response_format) if request.response_format is not None else None
    if defn is not None:
        tools.append(_spec(defn.name, defn.description, defn.schema))
        tool_choice = {"tool": {"name": defn.name}}
    if tools:
        body["toolConfig"] = {"tools": tools, **({"toolChoice": tool_choice} if tool_choice else {})}
    return body, defn


def parse_response(
    data: Any, model: str, request: base.ConverseRequest, defn: structured.Definition | None
) -> base.ConverseResponse:
    output = data.get("output") if isinstance(data, Mapping) else None
    message = output.get("message") if isinstance(output, Mapping) else None
    content = message.get("content") if isinstance(message, Mapping) else None
    if not isinstance(content, list):
        raise errors.ProviderError(f"{PROVIDER} returned a malformed response (no output message)", status=200)
    blocks = [b for b in content if isinstance(b, Mapping)]
    texts = [b["text"] for b in blocks if isinstance(b.get("text"), str)]
    uses = [b["toolUse"] for b in blocks
            if not isinstance(b.get("text"), str) and isinstance(b.get("toolUse"), Mapping)]
    return tool_blocks.response(
        texts=texts,
        uses=[(str(u.get("toolUseId") or ""), str(u.get("name") or ""), u.get("input")) for u in uses],
        defn=defn, finish=str(data.get("stopReason") or "unknown"), request=request, model=model,
        provider=PROVIDER, usage=_usage(data.get("usage")),
    )


_EXCEPTION_STATUS = {"validationexception": 400, "accessdeniedexception": 403, "resourcenotfoundexception": 404,
                     "modeltimeoutexception": 408, "modelstreamerrorexception": 424, "modelerrorexception": 424,
                     "throttlingexception": 429, "internalserverexception": 500,
                     "serviceunavailableexception": 503}
"""A stream's exception event → the HTTP status the same exception has before a stream starts."""


def _usage(raw: Any) -> base.Usage | None:
    """Usage fields by Bedrock's names, of a whole answer or of a stream."""
    return tool_blocks.usage(raw, input="inputTokens", output="outputTokens", cache_read="cacheReadInputTokens",
                             cache_write="cacheWriteInputTokens", total="totalTokens")


def _exception(message: eventstream.Message, secrets: tuple[str, ...]) -> errors.ProviderError:
    kind = message.headers.get(":exception-type") or message.headers.get(":error-code") or "exception"
    try:
        data = json.loads(message.payload)
    except ValueError:
        data = None
    text = data.get("message") or data.get("Message") if isinstance(data, Mapping) else None
    text = text if isinstance(text, str) else message.headers.get(":error-message", "")
    status = _EXCEPTION_STATUS.get(kind.lower(), 500)
    detail = http_kit.one_line(text, secrets)
    return errors.ProviderError(f"{PROVIDER} sent {kind} mid-stream" + (f": {detail}" if detail else ""),
                                status=status, retryable=status in http_kit.RETRYABLE_STATUSES)


def stream_message(blocks: block_stream.Blocks, message: eventstream.Message,
                   secrets: tuple[str, ...]) -> base.Delta | None:
    """One event-stream message of a ConverseStream answer: the piece it carries, if any."""
    if message.headers.get(":message-type", "event") != "event":
        raise _exception(message, secrets)
    try:
        data = json.loads(message.payload)
    except ValueError:
        data = None
    if not isinstance(data, Mapping):
        raise errors.ProviderError(f"{PROVIDER} sent a malformed event (not a JSON object)", status=200)
    kind = message.headers.get(":event-type", "")
    raw_index = data.get("contentBlockIndex")
    index = raw_index if isinstance(raw_index, int) else 0
    if kind == "contentBlockStart":
        start = data.get("start")
        use = start.get("toolUse") if isinstance(start, Mapping) else None
        if isinstance(use, Mapping):
            return blocks.start_tool(index, str(use.get("toolUseId") or ""), str(use.get("name") or ""))
        blocks.start_other(index)
    elif kind == "contentBlockDelta":
        delta = data.get("delta")
        delta = delta if isinstance(delta, Mapping) else {}
        if isinstance(delta.get("text"), str):
            return blocks.text(index, delta["text"])
        use = delta.get("toolUse")
        if isinstance(use, Mapping):
            return blocks.tool_input(index, str(use.get("input") or ""))
        # reasoningContent, citations: not part of the conversation API
    elif kind == "contentBlockStop":
        return blocks.stop(index)
    elif kind == "messageStop":
        blocks.finish_reason = str(data.get("stopReason") or "")
        blocks.done = True
    elif kind == "metadata":
        blocks.add_usage(data.get("usage"))
    return None


class Bedrock(http_kit.ComponentSession):
    def __init__(self, context: base.ComponentContext) -> None:
        self.context = context
        self.model = ""
        self.region = ""
        self._endpoint = yarl.URL()
        self._credentials: aws_auth.CredentialProvider | None = None
        self._max_tokens: int | None = None

    async def init(self, metadata: Mapping[str, Any]) -> None:
        self.region = str(metadata.get("region") or "us-east-1")
        endpoint = metadata.get("endpoint") or f"https://bedrock-runtime.{self.region}.amazonaws.com"
        self._endpoint = yarl.URL(checks.base_url("endpoint", endpoint))
        self.model = str(metadata.get("model") or "amazon.titan-text-lite-v1")
        max_tokens = metadata.get("maxTokens")
        if max_tokens is not None and max_tokens <= 0:
            raise catalog.MetadataError("maxTokens", "must be a positive integer")
        self._max_tokens = max_tokens
        self._credentials = aws_auth.provider_for(metadata, self.region)

    def url(self, model: str, operation: str = "converse") -> yarl.URL:
        # The model id may be an ARN ("arn:aws:bedrock:…/…"): every reserved character is encoded.
        path = self._endpoint.raw_path.rstrip("/") + f"/model/{quote(model, safe='')}/{operation}"
        return self._endpoint.with_path(path, encoded=True)

    def _upstream(self, url: yarl.URL, secrets: tuple[str, ...]) -> http_kit.Upstream:
        return self.upstream(url, PROVIDER, secrets, auth_detail=True, credential="AWS credentials")

    async def _signed(self, url: yarl.URL, data: bytes, accept: str) -> tuple[dict[str, str], tuple[str, ...]]:
        """The signed headers of one call, and the secrets no message may show."""
        assert self._credentials is not None, "init() first"
        credentials = await self._credentials.get(self.session)
        signed = sigv4.sign(
            method="POST", host=url.host_port_subcomponent or "", path=url.raw_path,
            headers={"content-type": "application/json"}, payload_hash=hashlib.sha256(data).hexdigest(),
            credentials=credentials, region=self.region, service=SERVICE,
        )
        headers = {"Content-Type": "application/json", "Accept": accept, **signed.headers}
        return headers, (credentials.secret_key, credentials.session_token or "")

    async def converse(self, request: base.ConverseRequest, *, timeout: float | None) -> base.ConverseResponse:
        model = request.model or self.model
        body, defn = build_body(request, self._max_tokens)
        data = http_kit.encode(body)
        url = self.url(model)
        headers, secrets = await self._signed(url, data, "application/json")
        answer = await http_kit.post_json(self._upstream(url, secrets), url, data, headers=headers, timeout=timeout)
        return parse_response(answer, model, request, defn)

    async def stream(self, request: base.ConverseRequest, *, timeout: float | None) -> AsyncIterator[base.Delta]:
        model = request.model or self.model
        body, defn = build_body(request, self._max_tokens)
        data = http_kit.encode(body)
        del body  # only the bytes travel; the stream's frame holds neither for the answer's length
        url = self.url(model, "converse-stream")
        headers, secrets = await self._signed(url, data, "application/vnd.amazon.eventstream")
        blocks = block_stream.Blocks(model=model, provider=PROVIDER, defn=defn)
        async with http_kit.open_stream(self._upstream(url, secrets), url, data, headers=headers,
                                        timeout=timeout) as upstream:
            del data
            decoder = eventstream.Decoder(provider=PROVIDER, max_message=upstream.max_bytes)
            # Read to the end, not to messageStop: the usage (metadata) comes after it.
            while chunk := await upstream.read():
                for message in decoder.feed(chunk):
                    delta = stream_message(blocks, message, secrets)
                    if delta is not None:
                        upstream.arrived()
                        yield delta
            if not blocks.done or not decoder.idle:
                raise upstream.truncated("messageStop")
            yield blocks.last(request, _usage(blocks.usage))

    async def aclose(self) -> None:
        await self.close_session()


def create(context: base.ComponentContext) -> base.Conversation:
    return Bedrock(context)
