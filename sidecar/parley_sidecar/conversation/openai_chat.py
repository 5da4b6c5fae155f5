"""OpenAI Chat Completions → the shared pipeline: a request body checked and turned into a call.

:func:`parse` reads an OpenAI ``POST /v1/chat/completions`` body (already JSON-decoded) into a
:class:`ChatCall`, refusing what OpenAI refuses with a :class:`ChatError` that names the field
(``param``) as OpenAI's errors do. Unknown fields are ignored, as OpenAI ignores them; fields parley
accepts but no component uses are listed in ``docs/openai.md``. :func:`complete` and :func:`stream`
then run the call through :class:`Pipeline` exactly as alpha2 does (input scrubbing, overrides,
memory, cache, resiliency, output scrubbing): one pipeline, never a second copy of it.

No HTTP here: ``api/openai_http.py`` decodes bodies and encodes answers and chunks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, Mapping
from typing import Any, Final

from parley_sidecar import errors
from parley_sidecar.components import base
from parley_sidecar.components.store import Entry
from parley_sidecar.conversation import scrubbing
from parley_sidecar.conversation.pipeline import Overrides, Pipeline

__all__ = ["ChatCall", "ChatError", "complete", "model_not_found", "parse", "stream"]

_ROLES = {
    "system": base.Role.SYSTEM,
    "developer": base.Role.DEVELOPER,
    "user": base.Role.USER,
    "assistant": base.Role.ASSISTANT,
    "tool": base.Role.TOOL,
    "function": base.Role.FUNCTION,
}
_CHOICES = ("none", "auto", "required")
_MAX_STOP = 4
"""OpenAI's limit on stop sequences."""


class ChatError(errors.ParleyError):
    """A request refused in OpenAI's terms: ``status``, ``type``, ``param`` (the field), ``code``."""

    wire = errors.InvalidParams.wire  # how a Dapr surface would show it (none does today)

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 status: int = 400, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.param = param
        self.code = code
        self.status = status
        self.kind = kind


class ChatCall:
    """One checked Chat Completions request. ``request`` carries no model override and is not
    scrubbed yet: :func:`complete` and :func:`stream` do both, as alpha2 does.

    A plain class, as ``_Prepared`` below and ``alpha2.Prepared`` (see there for why)."""

    __slots__ = ("component", "include_usage", "model", "model_override", "request", "stream")

    def __init__(self, model: str, component: str, model_override: str | None, request: base.ConverseRequest,
                 stream: bool = False, include_usage: bool = False) -> None:
        self.model: Final = model
        """As the client sent it (``component`` or ``component/model``): what the answer reports."""
        self.component: Final = component
        self.model_override: Final = model_override
        self.request: Final = request
        self.stream: Final = stream
        self.include_usage: Final = include_usage


# -- field readers: each names the field it refuses ------------------------------------------------

def _got(value: Any) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "a boolean"
        case str():
            return "a string"
        case int():
            return "an integer"
        case float():
            return "a number"
        case list():
            return "an array"
        case dict():
            return "an object"
    return type(value).__name__


def _wrong_type(param: str, want: str, value: Any) -> ChatError:
    return ChatError(f"Invalid type for '{param}': expected {want}, but got {_got(value)} instead.",
                     param=param, code="invalid_type")


def _invalid(param: str, message: str, code: str = "invalid_value") -> ChatError:
    return ChatError(f"Invalid '{param}': {message}", param=param, code=code)


def _str(value: Any, param: str) -> str:
    if not isinstance(value, str):
        raise _wrong_type(param, "a string", value)
    return value


def _obj(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _wrong_type(param, "an object", value)
    return value


def _list(value: Any, param: str) -> list[Any]:
    if not isinstance(value, list):
        raise _wrong_type(param, "an array", value)
    return value


def _number(body: Mapping[str, Any], key: str, low: float, high: float) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _wrong_type(key, "a number", value)
    if not low <= value <= high:
        raise _invalid(key, f"expected a value between {low:g} and {high:g}, but got {value} instead.")
    return float(value)


def _int(body: Mapping[str, Any], key: str, low: int | None = None) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong_type(key, "an integer", value)
    if low is not None and value < low:
        raise _invalid(key, f"expected a value >= {low}, but got {value} instead.")
    return value


def _bool(body: Mapping[str, Any], key: str, param: str | None = None) -> bool:
    value = body.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _wrong_type(param or key, "a boolean", value)
    return value


# -- messages --------------------------------------------------------------------------------------

def _texts(content: Any, param: str, *, allow_none: bool = False) -> list[str]:
    """A message's content: a string, or an array of text parts (an assistant's refusal parts count
    as text). Images, audio and files have no place in a conversation component: refused."""
    if content is None:
        if allow_none:
            return []
        raise ChatError(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")
    if isinstance(content, str):
        return [content]
    texts: list[str] = []
    for j, item in enumerate(_list(content, param)):
        where = f"{param}[{j}]"
        part = _obj(item, where)
        kind = part.get("type")
        if kind == "text":
            texts.append(_str(part.get("text"), f"{where}.text"))
        elif kind == "refusal" and allow_none:
            texts.append(_str(part.get("refusal"), f"{where}.refusal"))
        else:
            raise ChatError(f"Invalid value: {kind!r}. parley's conversation components take text parts only "
                            "(type 'text').", param=f"{where}.type", code="invalid_value")
    return texts


def _calls(raw: Any, param: str) -> list[base.ToolCall]:
    calls: list[base.ToolCall] = []
    for j, item in enumerate(_list(raw, param)):
        where = f"{param}[{j}]"
        call = _obj(item, where)
        if call.get("type", "function") != "function":
            raise _invalid(f"{where}.type", f"only 'function' tool calls are supported, got {call.get('type')!r}.")
        function = _obj(call.get("function"), f"{where}.function")
        # Gemini's thought signature comes back here (``{"google": {"thought_signature": …}}``),
        # as the answer gave it: carried opaque, to the providers whose dialect sends it back.
        extra = call.get("extra_content")
        if extra is not None:
            extra = _obj(extra, f"{where}.extra_content") or None
        calls.append(base.ToolCall(id=_str(call.get("id"), f"{where}.id"),
                                   name=_str(function.get("name"), f"{where}.function.name"),
                                   arguments=_str(function.get("arguments", ""), f"{where}.function.arguments"),
                                   extra_content=extra))
    return calls


def _unanswered(pending: dict[str, str], index: int) -> ChatError:
    return ChatError("An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                     f"'tool_call_id'. The following tool_call_ids did not have response messages: "
                     f"{', '.join(pending)}", param=f"messages[{index}].role", code="invalid_value")


def _messages(raw: Any) -> tuple[base.Message, ...]:
    """Every message, and OpenAI's pairing rule: tool messages answer the tool calls of the
    assistant message right before them, each call once, all of them."""
    items = _list(raw, "messages")
    if not items:
        raise _invalid("messages", "empty array. Expected an array with minimum length 1, but got an empty "
                                   "array instead.", code="empty_array")
    out: list[base.Message] = []
    pending: dict[str, str] = {}  # tool_call_id → name, of the last assistant message's calls
    answering = False  # the previous message was an assistant's with calls, or a tool message
    for i, item in enumerate(items):
        where = f"messages[{i}]"
        message = _obj(item, where)
        role_name = message.get("role")
        if role_name not in _ROLES:
            raise ChatError(f"Invalid value: {role_name!r}. Supported values are: 'system', 'developer', 'user', "
                            "'assistant', 'tool' and 'function'.", param=f"{where}.role", code="invalid_value")
        role = _ROLES[role_name]
        name = _str(message.get("name") or "", f"{where}.name")
        if role is base.Role.TOOL:
            if not answering:
                raise ChatError("Invalid parameter: messages with role 'tool' must be a response to a preceding "
                                "message with 'tool_calls'.", param=f"{where}.role", code="invalid_value")
            call_id = _str(message.get("tool_call_id"), f"{where}.tool_call_id")
            if call_id not in pending:
                raise ChatError(f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in 'tool_calls' of "
                                "the previous assistant message (or already answered).",
                                param=f"{where}.tool_call_id", code="invalid_value")
            tool_name = pending.pop(call_id)
            content = "".join(_texts(message.get("content"), f"{where}.content"))
            out.append(base.Message(role, (base.ToolResult(call_id, tool_name, content),), tool_name))
            continue
        if pending:
            raise _unanswered(pending, i)
        answering = False
        if role is base.Role.ASSISTANT:
            calls = _calls(message["tool_calls"], f"{where}.tool_calls") if message.get("tool_calls") else []
            texts = _texts(message.get("content"), f"{where}.content", allow_none=True)
            parts: tuple[base.Part, ...] = (*(base.TextPart(t) for t in texts), *calls)
            pending = {call.id: call.name for call in calls}
            answering = bool(calls)
        else:
            parts = tuple(base.TextPart(t) for t in _texts(message.get("content"), f"{where}.content"))
        out.append(base.Message(role, parts, name))
    if pending:
        raise _unanswered(pending, len(items) - 1)
    return tuple(out)


# -- tools and formats -----------------------------------------------------------------------------

def _tools(raw: Any) -> tuple[base.Tool, ...]:
    tools: list[base.Tool] = []
    for i, item in enumerate(_list(raw, "tools")):
        where = f"tools[{i}]"
        tool = _obj(item, where)
        if tool.get("type") != "function":
            raise _invalid(f"{where}.type", f"only 'function' tools are supported, got {tool.get('type')!r}.")
        function = _obj(tool.get("function"), f"{where}.function")
        name = _str(function.get("name"), f"{where}.function.name")
        if not name:
            raise _invalid(f"{where}.function.name", "empty string. Expected a function name.")
        parameters = function.get("parameters")
        tools.append(base.Tool(name=name,
                               description=_str(function.get("description") or "", f"{where}.function.description"),
                               parameters=_obj(parameters, f"{where}.function.parameters") if parameters else {}))
    return tuple(tools)


def _tool_choice(raw: Any, tools: tuple[base.Tool, ...]) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        if raw not in _CHOICES:
            raise ChatError(f"Invalid value: {raw!r}. Supported values are: 'none', 'auto' and 'required'.",
                            param="tool_choice", code="invalid_value")
        choice = raw
    else:
        function = _obj(_obj(raw, "tool_choice").get("function"), "tool_choice.function")
        choice = _str(function.get("name"), "tool_choice.function.name")
    if choice in ("none", "auto"):
        return choice
    if not tools:
        raise _invalid("tool_choice", "'tool_choice' is only allowed when 'tools' are specified.")
    if choice != "required" and not any(t.name == choice for t in tools):
        raise _invalid("tool_choice", f"the function {choice!r} is not one of 'tools'.")
    return choice


def _response_format(raw: Any) -> Mapping[str, Any] | None:
    """OpenAI's ``response_format`` as the pipeline's: a JSON schema with alpha2's top-level
    ``name``/``strict`` keys. ``json_object`` is any object (a schema that allows every property)."""
    if raw is None:
        return None
    fmt = _obj(raw, "response_format")
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "object", "additionalProperties": True, "name": "json_object"}
    if kind != "json_schema":
        raise ChatError(f"Invalid value: {kind!r}. Supported values are: 'text', 'json_object' and 'json_schema'.",
                        param="response_format.type", code="invalid_value")
    spec = _obj(fmt.get("json_schema"), "response_format.json_schema")
    name = _str(spec.get("name"), "response_format.json_schema.name")
    schema = dict(_obj(spec.get("schema") or {"type": "object"}, "response_format.json_schema.schema"))
    if not isinstance(schema.get("type"), str):
        raise _invalid("response_format.json_schema.schema", "the schema needs a string 'type'.")
    schema["name"] = name
    if isinstance(spec.get("strict"), bool):
        schema["strict"] = spec["strict"]
    if isinstance(spec.get("description"), str) and "description" not in schema:
        schema["description"] = spec["description"]
    return schema


def _stop(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        return (raw,)
    items = tuple(_str(s, f"stop[{i}]") for i, s in enumerate(_list(raw, "stop")))
    if len(items) > _MAX_STOP:
        raise _invalid("stop", f"array too long. Expected an array with maximum length {_MAX_STOP}, but got "
                               f"an array with length {len(items)} instead.", code="array_above_max_length")
    return items


def parse(body: Any) -> ChatCall:
    """Check an OpenAI Chat Completions body; raise :class:`ChatError` naming the first bad field."""
    if not isinstance(body, dict):
        raise ChatError(f"The request body must be a JSON object, got {_got(body)}.", code="invalid_type")
    if body.get("model") is None:
        raise ChatError("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    model = _str(body["model"], "model")
    component, _, override = model.partition("/")
    if not component:
        raise _invalid("model", "expected a conversation component's name, or 'component/model'.")
    if body.get("messages") is None:
        raise ChatError("Missing required parameter: 'messages'.", param="messages",
                        code="missing_required_parameter")
    messages = _messages(body["messages"])
    n = _int(body, "n")
    if n is not None and n != 1:
        raise ChatError(f"Invalid 'n': parley answers one choice per request, so 'n' must be 1 (got {n}).",
                        param="n", code="unsupported_value")
    streamed = _bool(body, "stream")
    include_usage = False
    if body.get("stream_options") is not None:
        if not streamed:
            raise _invalid("stream_options", "'stream_options' is only allowed when 'stream' is enabled.")
        include_usage = _bool(_obj(body["stream_options"], "stream_options"), "include_usage",
                              "stream_options.include_usage")
    tools = _tools(body["tools"]) if body.get("tools") is not None else ()
    max_tokens = _int(body, "max_completion_tokens", 1)
    if max_tokens is None:
        max_tokens = _int(body, "max_tokens", 1)
    request = base.ConverseRequest(
        messages=messages,
        tools=tools,
        tool_choice=_tool_choice(body.get("tool_choice"), tools),
        temperature=_number(body, "temperature", 0, 2) or 0.0,
        response_format=_response_format(body.get("response_format")),
        max_tokens=max_tokens,
        top_p=_number(body, "top_p", 0, 1),
        stop=_stop(body.get("stop")),
        seed=_int(body, "seed"),
        user=_str(body.get("user") or "", "user"),
    )
    return ChatCall(model=model, component=component, model_override=override or None, request=request,
                    stream=streamed, include_usage=include_usage)


def model_not_found(component: str) -> ChatError:
    """OpenAI's 404 for an unknown model: here, no conversation component of that name."""
    return ChatError(f"The model '{component}' does not exist: no conversation component of that name is loaded "
                     "(GET /v1/models lists them).", param="model", code="model_not_found", status=404)


# -- the pipeline ----------------------------------------------------------------------------------

class _Prepared:
    __slots__ = ("entry", "overrides", "request")

    def __init__(self, entry: Entry, request: base.ConverseRequest, overrides: Overrides) -> None:
        self.entry: Final = entry
        self.request: Final = request
        self.overrides: Final = overrides


async def _prepare(pipeline: Pipeline, call: ChatCall, scrub: bool) -> _Prepared:
    """What alpha2 does before the call: the component, the overrides, input scrubbing."""
    name = call.component
    entry = pipeline.store.get(name)
    if entry is None:
        raise model_not_found(name)
    overrides = pipeline.overrides(name, {"model": call.model_override} if call.model_override else {})
    request = call.request
    if request.model != overrides.model:  # only with an override: a copy of the request costs ~2 % of a stream
        request = dataclasses.replace(request, model=overrides.model)
    if scrub:
        messages = request.messages
        size = scrubbing.size_of_messages(messages)
        request = await pipeline.scrubbing.run(
            name, entry, overrides.pii_entities, "input",
            lambda s: s.request(dataclasses.replace(request, messages=s.messages(messages))), size)
    return _Prepared(entry, request, overrides)


async def complete(pipeline: Pipeline, call: ChatCall, *, scrub: bool = False,
                   context_id: str = "") -> base.ConverseResponse:
    """The whole answer. ``scrub``: inputs, memory's history and the answer are PII-scrubbed (as an
    alpha2 request with ``scrubPii`` on its inputs and on itself); ``context_id`` keys memory."""
    prepared = await _prepare(pipeline, call, scrub)
    return await pipeline.call(call.component, prepared.entry, prepared.request, overrides=prepared.overrides,
                               scrub_output=scrub, scrub_history=scrub, context_id=context_id)


async def stream(pipeline: Pipeline, call: ChatCall, *, scrub: bool = False,
                 context_id: str = "") -> AsyncGenerator[base.Delta, None]:
    """The answer piece by piece (same options as :func:`complete`): a refusal of the request
    raises here, a failure before the first piece from the first ``__anext__``; closing the
    generator cancels the upstream call. The pipeline's own generator, not one wrapped around it:
    a layer costs its frame for as long as the stream stays open, and a call per piece."""
    prepared = await _prepare(pipeline, call, scrub)
    return pipeline.stream(call.component, prepared.entry, prepared.request, overrides=prepared.overrides,
                           scrub_output=scrub, scrub_history=scrub, context_id=context_id)
