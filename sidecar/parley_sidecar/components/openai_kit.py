"""OpenAI chat completions, shared by every OpenAI-compatible provider (langchaingokit's role).

``conversation.openai`` (also Azure OpenAI and any compatible server: vLLM, llama.cpp, LM Studio),
``googleai``, ``huggingface``, ``mistral``, ``ollama`` and ``deepseek`` all speak this wire format;
each of their modules only reads its metadata and calls :meth:`ChatCompletions.configure`. What
differs between those servers is data, a :class:`Dialect`, never a branch on a provider name.

The request matches what daprd's langchaingo client sends (daprd-oracle §1), where daprd is right:
``temperature`` always (0 when unset) except for reasoning models, one text part as a string and
several as a content array, assistant ``tool_calls`` with ``content: ""`` when there is no text,
tool results as ``{"role": "tool", "content", "tool_call_id"}``, alpha2 ``metadata`` as
``metadata`` with ``prompt_cache_retention`` folded in as a Go duration string. Where daprd is
lossy or wrong we do it right; each difference is listed in ``docs/providers.md``.

:meth:`ChatCompletions.stream` sends the same body with ``stream: true`` (and
``stream_options.include_usage`` where the dialect allows it) and relays each
``chat.completion.chunk`` as it arrives: text, tool-call argument fragments by index; the finish
reason and usage are held for the last piece, so a forced tool choice answered with nothing still
fails before anything reached the caller (and can be retried).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Literal

from parley_sidecar import durations, errors, records
from parley_sidecar.components import base, catalog, checks, http_kit, sse, structured
from parley_sidecar.records import set_field as _set

__all__ = ["ChatCompletions", "ChunkReader", "Dialect", "build_body", "parse_response", "parse_usage"]

_NAME_OK = re.compile(r"[^A-Za-z0-9_-]")


@records.frozen
class Dialect(records.Record):
    """How one OpenAI-compatible server differs from OpenAI's own API."""

    provider: str
    """Names the upstream in error messages ("openai returned 429 …")."""
    developer_role: str = "system"
    """Role sent for alpha2 ``ofDeveloper``: OpenAI's own API has ``developer``; servers that do
    not know it get ``system`` (daprd sends ``user`` everywhere)."""
    send_names: bool = False
    """Forward message ``name``s (OpenAI's API accepts them; strict servers reject the field)."""
    max_tokens_field: str = "max_tokens"
    """OpenAI wants ``max_completion_tokens``; most compatible servers still read ``max_tokens``."""
    structured_output: Literal["json_schema", "json_object"] = "json_schema"
    """DeepSeek only has JSON mode: the schema then travels in a system message."""
    auth: Literal["bearer", "api-key"] = "bearer"
    """Azure OpenAI reads the key from an ``api-key`` header."""
    forward_metadata: bool = True
    """Send alpha2 ``metadata`` (and ``prompt_cache_retention`` in it) as OpenAI's ``metadata``;
    off where the server rejects unknown fields and daprd never sent it (Mistral)."""
    stream_usage_option: bool = True
    """Ask for usage on a stream with ``stream_options.include_usage``; Mistral refuses the field
    (it refuses every field it does not know) and puts usage on its last chunk anyway."""
    seed_field: str | None = "seed"
    """Where the OpenAI API's ``seed`` goes: ``seed`` (OpenAI, Azure, Ollama, TGI, vLLM),
    ``random_seed`` (Mistral), or None where the API documents no seed (DeepSeek, Gemini's
    OpenAI layer): strict servers refuse a field they do not know."""
    send_user: bool = False
    """Forward ``user`` (OpenAI's and Azure's end-user id for abuse monitoring); the other servers
    document no such field."""
    stream_tool_stop: bool = False
    """A stream that called tools ends with ``stop`` where the same answer unstreamed says
    ``tool_calls`` (Gemini, googleapis/python-genai#2868): relayed as ``tool_calls``, as ``converse``
    would answer, since clients run the tools only on ``tool_calls``."""
    extra_content: bool = False
    """Carry a tool call's ``extra_content`` object from the answer to the caller and back upstream
    on the next request (Gemini 3 answers 400 when the ``thought_signature`` in it does not come
    back). Off elsewhere: OpenAI refuses properties it does not know inside a message."""

    def __init__(self, provider: str, developer_role: str = "system", send_names: bool = False,
                 max_tokens_field: str = "max_tokens",
                 structured_output: Literal["json_schema", "json_object"] = "json_schema",
                 auth: Literal["bearer", "api-key"] = "bearer", forward_metadata: bool = True,
                 stream_usage_option: bool = True, seed_field: str | None = "seed", send_user: bool = False,
                 stream_tool_stop: bool = False, extra_content: bool = False) -> None:
        _set(self, "provider", provider)
        _set(self, "developer_role", developer_role)
        _set(self, "send_names", send_names)
        _set(self, "max_tokens_field", max_tokens_field)
        _set(self, "structured_output", structured_output)
        _set(self, "auth", auth)
        _set(self, "forward_metadata", forward_metadata)
        _set(self, "stream_usage_option", stream_usage_option)
        _set(self, "seed_field", seed_field)
        _set(self, "send_user", send_user)
        _set(self, "stream_tool_stop", stream_tool_stop)
        _set(self, "extra_content", extra_content)


_REASONING = re.compile(r"^(o1-|o3$|o3-|gpt-5)")


def omits_temperature(model: str) -> bool:
    """langchaingo leaves ``temperature`` out for reasoning models, which accept only the default."""
    return _REASONING.match(model) is not None


def _content(texts: list[str]) -> str | list[dict[str, str]]:
    if len(texts) == 1:
        return texts[0]
    if not texts:
        return ""
    return [{"type": "text", "text": t} for t in texts]


def _name(name: str) -> str:
    return _NAME_OK.sub("_", name)[:64]


_ROLES = {
    base.Role.SYSTEM: "system",
    base.Role.USER: "user",
    base.Role.GENERIC: "user",
    base.Role.ASSISTANT: "assistant",
}


def _messages(message: base.Message, dialect: Dialect) -> list[dict[str, Any]]:
    texts = [p.text for p in message.parts if isinstance(p, base.TextPart)]
    calls = [p for p in message.parts if isinstance(p, base.ToolCall)]
    results = [p for p in message.parts if isinstance(p, base.ToolResult)]
    if results:
        # One tool message per tool call answered; several contents of one result travel as a
        # content array (daprd refuses a two-part tool result with a 500).
        out: list[dict[str, Any]] = []
        for result in results:
            if out and out[-1]["tool_call_id"] == result.tool_id:
                previous = out[-1]["content"]
                parts = previous if isinstance(previous, list) else [{"type": "text", "text": previous}]
                out[-1]["content"] = [*parts, {"type": "text", "text": result.content}]
            else:
                out.append({"role": "tool", "content": result.content, "tool_call_id": result.tool_id})
        return out
    role = dialect.developer_role if message.role is base.Role.DEVELOPER else _ROLES.get(message.role, "user")
    msg: dict[str, Any] = {"role": role, "content": _content(texts)}
    if dialect.send_names and message.name and role != "tool":
        msg["name"] = _name(message.name)
    if calls:
        msg["tool_calls"] = [_call(c, dialect) for c in calls]
    return [msg]


def _call(call: base.ToolCall, dialect: Dialect) -> dict[str, Any]:
    out: dict[str, Any] = {"id": call.id, "type": "function",
                           "function": {"name": call.name, "arguments": call.arguments}}
    if call.extra_content and dialect.extra_content:
        out["extra_content"] = dict(call.extra_content)
    return out


def _tool_choice(choice: str | None, has_tools: bool) -> Any:
    if not choice or not has_tools:
        # OpenAI rejects tool_choice without tools; daprd sends it anyway.
        return None
    if choice in ("auto", "none", "required"):
        return choice
    if choice == "any":
        return "required"
    return {"type": "function", "function": {"name": choice}}


def build_body(
    request: base.ConverseRequest, model: str, dialect: Dialect, *, max_tokens: int | None = None
) -> dict[str, Any]:
    """The chat-completions request body for one call (no I/O); ``max_tokens`` is the component's
    default, used when the request names none."""
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        messages.extend(_messages(message, dialect))
    body: dict[str, Any] = {"model": model, "messages": messages}
    if not omits_temperature(model):
        body["temperature"] = request.temperature
    if request.max_tokens or max_tokens:
        body[dialect.max_tokens_field] = request.max_tokens or max_tokens
    # top_p and stop (the OpenAI-compatible API's) are read by every server of this family; seed and
    # user only where the dialect says the server has them (docs/openai.md)
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop"] = list(request.stop)
    if request.seed is not None and dialect.seed_field:
        body[dialect.seed_field] = request.seed
    if request.user and dialect.send_user:
        body["user"] = request.user
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    **({"description": t.description} if t.description else {}),
                    "parameters": dict(t.parameters),
                },
            }
            for t in request.tools
        ]
    choice = _tool_choice(request.tool_choice, bool(request.tools))
    if choice is not None:
        body["tool_choice"] = choice
    if request.response_format is not None:
        defn = structured.definition(request.response_format)
        if dialect.structured_output == "json_schema":
            body["response_format"] = structured.openai_response_format(defn)
        else:
            body["response_format"] = {"type": "json_object"}
            instruction = (
                "Answer with a JSON object only, matching this JSON schema"
                f" (name {defn.name!r}): {json.dumps(defn.schema, ensure_ascii=False)}"
            )
            body["messages"] = [{"role": "system", "content": instruction}, *messages]
    metadata = dict(request.metadata) if dialect.forward_metadata else {}
    if request.prompt_cache_retention is not None and dialect.forward_metadata:
        metadata["prompt_cache_retention"] = durations.format_go_duration(request.prompt_cache_retention)
    if metadata:
        body["metadata"] = metadata
    return body


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) and value > 0 else 0


def parse_usage(usage: Any) -> base.Usage | None:
    """OpenAI's ``usage``; details only when one of them is > 0, None when every total is 0.
    (Field by field rather than in generator expressions: this runs on every answer.)"""
    if not isinstance(usage, Mapping):
        return None
    get = usage.get
    completion, prompt, total = _int(get("completion_tokens")), _int(get("prompt_tokens")), _int(get("total_tokens"))
    if not (completion or prompt or total):
        return None
    cd = get("completion_tokens_details")
    completion_details = None
    if isinstance(cd, Mapping) and cd:
        accepted, audio = _int(cd.get("accepted_prediction_tokens")), _int(cd.get("audio_tokens"))
        reasoning, rejected = _int(cd.get("reasoning_tokens")), _int(cd.get("rejected_prediction_tokens"))
        if accepted or audio or reasoning or rejected:
            completion_details = base.CompletionDetails(accepted, audio, reasoning, rejected)
    pd = get("prompt_tokens_details")
    prompt_details = None
    if isinstance(pd, Mapping) and pd:
        prompt_audio, cached = _int(pd.get("audio_tokens")), _int(pd.get("cached_tokens"))
        if prompt_audio or cached:
            prompt_details = base.PromptDetails(prompt_audio, cached)
    return base.Usage(completion_tokens=completion, prompt_tokens=prompt, total_tokens=total,
                      completion_details=completion_details, prompt_details=prompt_details)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # some servers answer with content parts
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return ""


def _extra(item: Mapping[str, Any], keep: bool) -> dict[str, Any] | None:
    """A call's ``extra_content`` when the dialect carries it and it is a non-empty object."""
    extra = item.get("extra_content") if keep else None
    return extra if isinstance(extra, dict) and extra else None


def _tool_calls(raw: Any, extra_content: bool) -> tuple[base.ToolCall, ...]:
    if not raw:  # most answers: no calls (absent, null or [])
        return ()
    calls: list[base.ToolCall] = []
    for item in raw if isinstance(raw, list) else ():
        if not isinstance(item, Mapping):
            continue
        function = item.get("function")
        function = function if isinstance(function, Mapping) else {}
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):  # Ollama has sent objects here
            arguments = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
        calls.append(base.ToolCall(id=str(item.get("id") or ""), name=str(function.get("name") or ""),
                                   arguments=arguments, extra_content=_extra(item, extra_content)))
    return tuple(calls)


def parse_response(data: Any, model: str, request: base.ConverseRequest, provider: str, *,
                   extra_content: bool = False) -> base.ConverseResponse:
    """Each upstream choice becomes its own output with one choice, indexed by position (daprd).
    ``extra_content``: keep each tool call's (``Dialect.extra_content``)."""
    if not isinstance(data, Mapping):
        raise errors.ProviderError(f"{provider} returned a malformed response (not a JSON object)", status=200)
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise errors.ProviderError(f"{provider} returned no choices", status=200)
    outputs: list[base.Output] = []
    for index, item in enumerate(choices):
        choice: Mapping[str, Any] = item if isinstance(item, Mapping) else {}
        message = choice.get("message")
        message = message if isinstance(message, Mapping) else {}
        outputs.append(base.Output((base.Choice(
            finish_reason=str(choice.get("finish_reason") or "unknown"),
            index=index,
            content=_text(message.get("content")) or _text(message.get("refusal")),
            tool_calls=_tool_calls(message.get("tool_calls"), extra_content),
        ),)))
    checks.useful_answer(outputs, request)
    return base.ConverseResponse(outputs=tuple(outputs), usage=parse_usage(data.get("usage")), model=model,
                                 served_model=checks.served_model(data))


_NO_EVENT = sse.Event("", "")
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
"""What ``json.loads`` runs: the C scanner, with the default decoder's settings (typeshed leaves
``scan_once`` out)."""


def _loads(text: str) -> Any:
    """``json.loads(text)`` for one streamed chunk, a third of its cost: the C scanner called
    directly, without the wrapper's type checks and its two whitespace matches. Anything but one
    JSON value filling the text exactly (whitespace around it, extra data, nothing to parse) goes
    through ``json.loads``, which answers it (or raises) as it always did."""
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:
        return json.loads(text)
    return value if end == len(text) else json.loads(text)


_STREAM = object()
"""``call_headers``' variant for a stream's headers (``Accept: text/event-stream``)."""


class ChunkReader:
    """The state of one streamed answer: each ``chat.completion.chunk`` in, a piece out (or None
    when the chunk carries nothing to relay: the role, an empty text). No I/O here. Slotted, as
    every per-stream object here: it lives as long as the stream stays open."""

    __slots__ = ("_calls", "_extra_content", "_extras", "_secrets", "_tool_stop", "called", "finish_reason", "model",
                 "provider", "served", "usage", "useful")

    def __init__(self, model: str, provider: str, secrets: tuple[str, ...], *, tool_stop: bool = False,
                 extra_content: bool = False) -> None:
        self.model = model
        self.provider = provider
        self._secrets = secrets
        self._tool_stop = tool_stop
        self._extra_content = extra_content
        self.called = False
        """Some tool call has been relayed."""
        self.finish_reason = ""
        self.served = ""
        """The model the server says answered (the chunks' ``model``): the closing piece's ``served_model``."""
        self.usage: base.Usage | None = None
        self.useful = False
        """Some text or a tool call has been relayed."""
        self._calls: dict[str, int] = {}
        """Tool call id → index, for servers whose calls carry no index (Gemini)."""
        self._extras: set[int] | None = None
        """Calls whose ``extra_content`` was relayed: once, as clients join a call's strings (made
        when the first is: nearly every stream has none)."""

    def _call(self, item: Any) -> base.ToolCallDelta | None:
        if not isinstance(item, Mapping):
            return None
        function = item.get("function")
        function = function if isinstance(function, Mapping) else {}
        arguments = function.get("arguments") or ""
        if not isinstance(arguments, str):  # Ollama has sent a whole call's arguments as an object
            arguments = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
        call_id = str(item.get("id") or "")
        name = str(function.get("name") or "")
        index = item.get("index")
        known = self._calls.get(call_id) if call_id else None
        if not isinstance(index, int) or index < 0:
            # No index: a new id is the next call, a piece without one continues the last call.
            index = (len(self._calls) if known is None else known) if call_id else max(len(self._calls) - 1, 0)
        if known is None and call_id:
            self._calls[call_id] = index
        elif known == index:
            # TGI repeats the id on every fragment; OpenAI's clients join a call's strings, so only
            # its first piece names it (the id once, not "000…").
            call_id = name = ""
        extra = _extra(item, self._extra_content)
        if extra is not None:
            if self._extras is None:
                self._extras = set()
            extra = None if index in self._extras else extra
            self._extras.add(index)
        return base.ToolCallDelta(index=index, id=call_id, name=name, arguments=arguments, extra_content=extra)

    def add(self, data: Any) -> base.Delta | None:
        # ``dict`` rather than ``Mapping`` in the checks below: the chunk comes from json.loads,
        # and an ABC's isinstance costs more than the rest of a text chunk's handling.
        if not isinstance(data, dict):
            raise errors.ProviderError(f"{self.provider} sent a malformed event (not a JSON object)", status=200)
        if data.get("error") is not None:
            # OpenAI and vLLM report a failure that happens mid-answer as a chunk of its own.
            detail = http_kit.redact(http_kit.upstream_message(json.dumps(data).encode()), self._secrets)
            raise errors.ProviderError(f"{self.provider} sent an error mid-stream: {detail or 'no message'}",
                                       status=200, retryable=True)
        if not self.served:  # every chunk names it; the first that does is kept
            self.served = checks.served_model(data)
        raw_usage = data.get("usage")
        usage = parse_usage(raw_usage) if raw_usage is not None else None
        if usage is not None:  # a server that sends it on several chunks: the last one counts
            self.usage = usage
        choices = data.get("choices")
        if not isinstance(choices, list):
            return None
        if len(choices) == 1 and isinstance(choices[0], dict) and choices[0].get("index", 0) == 0:
            choice: dict[str, Any] | None = choices[0]  # the usual chunk: one choice
        else:
            choice = next((c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0), None)
        if choice is None:
            return None
        if choice.get("finish_reason"):
            self.finish_reason = str(choice["finish_reason"])
        delta = choice.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        content = delta.get("content")
        if type(content) is not str:
            content = _text(content)
        content = content or _text(delta.get("refusal"))
        raw_calls = delta.get("tool_calls")
        calls = tuple(c for c in map(self._call, raw_calls) if c is not None) if isinstance(raw_calls, list) else ()
        if not content and not calls:
            return None
        if calls:
            self.called = True
        self.useful = True
        return base.Delta(content=content, tool_calls=calls, model=self.model)

    def last(self, request: base.ConverseRequest) -> base.Delta:
        """The closing piece: the finish reason (``unknown`` when the server sent none, as
        ``converse`` says; Ollama omits it for some models) and usage."""
        if not self.useful:
            checks.useful_answer((), request)
        finish = self.finish_reason or "unknown"
        if self._tool_stop and self.called and finish == "stop":
            finish = "tool_calls"
        return base.Delta(finish_reason=finish, usage=self.usage, model=self.model, served_model=self.served)


class ChatCompletions(http_kit.ComponentSession):
    """A ``base.Conversation`` over ``POST {base}/chat/completions``.

    The default :meth:`init` serves every provider whose metadata is just ``model``, ``key``,
    ``endpoint`` (defaults filled by the catalog) and optionally ``maxTokens``; providers with more
    (OpenAI's Azure mode) override it and call :meth:`configure`. ``{{model}}`` in the base URL is
    replaced by the model of each call (Hugging Face's router).
    """

    dialect: Dialect

    def __init__(self, context: base.ComponentContext, dialect: Dialect) -> None:
        self.context = context
        self.dialect = dialect
        self.model = ""
        self._key = ""
        self._base = ""
        self._azure_version: str | None = None
        self._max_tokens: int | None = None

    async def init(self, metadata: Mapping[str, Any]) -> None:
        endpoint = str(metadata["endpoint"])
        checks.base_url("endpoint", endpoint.replace("{{model}}", "model"))
        self.configure(model=metadata["model"], key=metadata["key"], base_url=endpoint,
                       max_tokens=metadata.get("maxTokens"))

    def configure(
        self, *, model: str, key: str, base_url: str, azure_api_version: str | None = None,
        max_tokens: int | None = None,
    ) -> None:
        if max_tokens is not None and max_tokens <= 0:
            raise catalog.MetadataError("maxTokens", "must be a positive integer")
        self.model = model
        self._max_tokens = max_tokens
        self._key = key
        self._base = base_url.rstrip("/")
        self._azure_version = azure_api_version

    def url(self, model: str) -> str:
        base_url = self._base.replace("{{model}}", model)
        if self._azure_version is not None:
            return (f"{base_url}/openai/deployments/{model}/chat/completions"
                    f"?api-version={self._azure_version}")
        return f"{base_url}/chat/completions"

    def headers(self, key: str) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.dialect.auth == "api-key":
            headers["api-key"] = key
        elif key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _stream_headers(self, key: str) -> dict[str, str]:
        return self.headers(key) | {"Accept": "text/event-stream"}

    async def converse(self, request: base.ConverseRequest, *, timeout: float | None) -> base.ConverseResponse:
        model = request.model or self.model
        key = request.api_key if request.api_key is not None else self._key
        body = build_body(request, model, self.dialect, max_tokens=self._max_tokens)
        url = self.url(model)
        data = await http_kit.post_json(
            self.upstream(url, self.dialect.provider, (key, self._key)), url, http_kit.encode(body),
            headers=self.call_headers(key, self._key, self.headers, self.dialect), timeout=timeout,
        )
        return parse_response(data, model, request, self.dialect.provider, extra_content=self.dialect.extra_content)

    async def stream(self, request: base.ConverseRequest, *, timeout: float | None) -> AsyncIterator[base.Delta]:
        model = request.model or self.model
        key = request.api_key if request.api_key is not None else self._key
        body = build_body(request, model, self.dialect, max_tokens=self._max_tokens)
        body["stream"] = True
        if self.dialect.stream_usage_option:
            body["stream_options"] = {"include_usage": True}
        url = self.url(model)
        secrets = (key, self._key)
        # The body, its bytes, the URL and the headers are handed to open_stream, not kept in this
        # frame: it lives as long as the answer streams (memory per open stream).
        opening = http_kit.open_stream(
            self.upstream(url, self.dialect.provider, secrets), url, http_kit.encode(body),
            headers=self.call_headers(key, self._key, self._stream_headers, _STREAM), timeout=timeout,
        )
        del body, url
        reader = ChunkReader(model, self.dialect.provider, secrets, tool_stop=self.dialect.stream_tool_stop,
                             extra_content=self.dialect.extra_content)
        async with opening as upstream:
            done = False
            # The parser is fed here rather than through sse.events: one generator less between
            # the socket and the client, on a path run once per token.
            parser = sse.Parser(provider=upstream.provider, max_event=upstream.max_bytes)
            loads = _loads
            while not done and (received := await upstream.read()):
                for event in parser.feed(received):
                    if event.data == "[DONE]":
                        done = True
                        break
                    try:
                        chunk = loads(event.data)
                    except ValueError:
                        raise errors.ProviderError(f"{self.dialect.provider} sent a malformed event (not JSON)",
                                                   status=200) from None
                    delta = reader.add(chunk)
                    del chunk  # not kept while the stream waits for the next piece (memory per open stream)
                    if delta is not None:
                        upstream.arrived()
                        yield delta
                # not kept while waiting for the next bytes (memory per open stream)
                received, event = b"", _NO_EVENT
            if not done:
                raise upstream.truncated("data: [DONE]")
            yield reader.last(request)

    async def aclose(self) -> None:
        await self.close_session()
