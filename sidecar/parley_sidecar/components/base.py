"""The provider contract: plain request/response types and the ``Conversation`` protocol.

This is the whole interface between the pipeline and a provider (compare components-contrib's
``conversation/converse.go``). It knows nothing of protobuf, HTTP or gRPC: the API layer turns
alpha1/alpha2 messages into a :class:`ConverseRequest`, and a provider turns a request into its
upstream's wire format. No I/O here.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import aiohttp

from parley_sidecar import records
from parley_sidecar.records import FACTORY
from parley_sidecar.records import set_field as _set

__all__ = [
    "Choice",
    "CompletionDetails",
    "ComponentContext",
    "Conversation",
    "ConverseRequest",
    "ConverseResponse",
    "Delta",
    "Message",
    "Output",
    "Part",
    "PromptDetails",
    "Role",
    "Streaming",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "ToolResult",
    "Usage",
]


class Role(enum.StrEnum):
    """Who speaks. Kept finer than langchaingo's roles so providers can do better than daprd
    (OpenAI has a ``developer`` role; daprd folds it into ``user``)."""

    SYSTEM = "system"
    DEVELOPER = "developer"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"
    FUNCTION = "function"
    GENERIC = "generic"


# The types below are dataclasses (``records``): each writes the ``__init__`` that
# ``@dataclasses.dataclass`` would generate, fields in order; ``_set`` because they are frozen.


@records.frozen
class TextPart(records.Record):
    text: str

    def __init__(self, text: str) -> None:
        _set(self, "text", text)


@records.frozen
class ToolCall(records.Record):
    """A call the assistant asked for; ``arguments`` is the JSON text the model produced."""

    id: str
    name: str
    arguments: str
    extra_content: Mapping[str, Any] | None = None
    """Provider data that must travel back with this call in the next request, as the provider
    sent it (Gemini's ``{"google": {"thought_signature": …}}``, the ``extra_content`` of its OpenAI
    layer). Opaque: never scrubbed, sent back only to a provider whose dialect carries it, and not
    part of the Dapr API (alpha2 has no field for it)."""

    def __init__(self, id: str, name: str, arguments: str,
                 extra_content: Mapping[str, Any] | None = None) -> None:
        _set(self, "id", id)
        _set(self, "name", name)
        _set(self, "arguments", arguments)
        _set(self, "extra_content", extra_content)


@records.frozen
class ToolResult(records.Record):
    """The result of a tool call, sent back to the model."""

    tool_id: str
    name: str
    content: str

    def __init__(self, tool_id: str, name: str, content: str) -> None:
        _set(self, "tool_id", tool_id)
        _set(self, "name", name)
        _set(self, "content", content)


Part = TextPart | ToolCall | ToolResult


@records.frozen
class Message(records.Record):
    role: Role
    parts: tuple[Part, ...]
    name: str = ""

    def __init__(self, role: Role, parts: tuple[Part, ...], name: str = "") -> None:
        _set(self, "role", role)
        _set(self, "parts", parts)
        _set(self, "name", name)


@records.frozen
class Tool(records.Record):
    """A function the model may call; ``parameters`` is a JSON-Schema object (may be empty)."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __init__(self, name: str, description: str = "", parameters: Mapping[str, Any] = FACTORY) -> None:
        _set(self, "name", name)
        _set(self, "description", description)
        _set(self, "parameters", {} if parameters is FACTORY else parameters)


@records.frozen
class ConverseRequest(records.Record):
    """One call to a provider.

    ``temperature`` 0 means "not set" (daprd sends it only when > 0). ``model`` and ``api_key``
    are per-request overrides (the Dapr docs' ``metadata.model`` / ``metadata.key``); ``None`` means
    the component's own. ``metadata`` is what alpha2 forwards upstream (OpenAI ``metadata``).
    """

    messages: tuple[Message, ...]
    tools: tuple[Tool, ...] = ()
    tool_choice: str | None = None
    temperature: float = 0.0
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)
    response_format: Mapping[str, Any] | None = None
    prompt_cache_retention: float | None = None
    """Seconds of provider-side prompt caching (alpha2 ``promptCacheRetention``)."""
    max_tokens: int | None = None
    model: str | None = None
    api_key: str | None = dataclasses.field(default=None, repr=False)
    top_p: float | None = None
    """OpenAI-style sampling options (the OpenAI-compatible API sets them; ``None``/empty: not set).
    A provider that has no place for one ignores it (``docs/openai.md`` says which)."""
    stop: tuple[str, ...] = ()
    seed: int | None = None
    user: str = ""
    """The end user the caller names (OpenAI ``user``), for a provider's abuse monitoring."""

    def __init__(self, messages: tuple[Message, ...], tools: tuple[Tool, ...] = (), tool_choice: str | None = None,
                 temperature: float = 0.0, metadata: Mapping[str, str] = FACTORY,
                 response_format: Mapping[str, Any] | None = None, prompt_cache_retention: float | None = None,
                 max_tokens: int | None = None, model: str | None = None, api_key: str | None = None,
                 top_p: float | None = None, stop: tuple[str, ...] = (), seed: int | None = None,
                 user: str = "") -> None:
        _set(self, "messages", messages)
        _set(self, "tools", tools)
        _set(self, "tool_choice", tool_choice)
        _set(self, "temperature", temperature)
        _set(self, "metadata", {} if metadata is FACTORY else metadata)
        _set(self, "response_format", response_format)
        _set(self, "prompt_cache_retention", prompt_cache_retention)
        _set(self, "max_tokens", max_tokens)
        _set(self, "model", model)
        _set(self, "api_key", api_key)
        _set(self, "top_p", top_p)
        _set(self, "stop", stop)
        _set(self, "seed", seed)
        _set(self, "user", user)


@records.frozen
class CompletionDetails(records.Record):
    accepted_prediction_tokens: int = 0
    audio_tokens: int = 0
    reasoning_tokens: int = 0
    rejected_prediction_tokens: int = 0

    def __init__(self, accepted_prediction_tokens: int = 0, audio_tokens: int = 0, reasoning_tokens: int = 0,
                 rejected_prediction_tokens: int = 0) -> None:
        _set(self, "accepted_prediction_tokens", accepted_prediction_tokens)
        _set(self, "audio_tokens", audio_tokens)
        _set(self, "reasoning_tokens", reasoning_tokens)
        _set(self, "rejected_prediction_tokens", rejected_prediction_tokens)


@records.frozen
class PromptDetails(records.Record):
    audio_tokens: int = 0
    cached_tokens: int = 0

    def __init__(self, audio_tokens: int = 0, cached_tokens: int = 0) -> None:
        _set(self, "audio_tokens", audio_tokens)
        _set(self, "cached_tokens", cached_tokens)


@records.frozen
class Usage(records.Record):
    completion_tokens: int = 0
    prompt_tokens: int = 0
    total_tokens: int = 0
    completion_details: CompletionDetails | None = None
    prompt_details: PromptDetails | None = None

    def __init__(self, completion_tokens: int = 0, prompt_tokens: int = 0, total_tokens: int = 0,
                 completion_details: CompletionDetails | None = None,
                 prompt_details: PromptDetails | None = None) -> None:
        _set(self, "completion_tokens", completion_tokens)
        _set(self, "prompt_tokens", prompt_tokens)
        _set(self, "total_tokens", total_tokens)
        _set(self, "completion_details", completion_details)
        _set(self, "prompt_details", prompt_details)


@records.frozen
class Choice(records.Record):
    finish_reason: str
    index: int = 0
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()

    def __init__(self, finish_reason: str, index: int = 0, content: str = "",
                 tool_calls: tuple[ToolCall, ...] = ()) -> None:
        _set(self, "finish_reason", finish_reason)
        _set(self, "index", index)
        _set(self, "content", content)
        _set(self, "tool_calls", tool_calls)


@records.frozen
class Output(records.Record):
    choices: tuple[Choice, ...]

    def __init__(self, choices: tuple[Choice, ...]) -> None:
        _set(self, "choices", choices)


@records.frozen
class ConverseResponse(records.Record):
    """What a provider answered. ``usage`` and ``model`` apply to every output (as in daprd)."""

    outputs: tuple[Output, ...]
    usage: Usage | None = None
    model: str = ""
    served_model: str = dataclasses.field(default="", compare=False)
    """The model the provider says answered (OpenAI's ``model``, Anthropic's), "" when it does not
    say: often a dated version of ``model`` (``gpt-4o`` → ``gpt-4o-2024-08-06``). Only the attempt's
    span reports it (``gen_ai.response.model``); the answers and the metrics keep ``model``, as daprd's
    answer does and as the metrics' bounded model labels need. Not compared: it describes the
    answer, and a stream's assembled answer (which does not keep it) equals the unary one."""

    def __init__(self, outputs: tuple[Output, ...], usage: Usage | None = None, model: str = "",
                 served_model: str = "") -> None:
        _set(self, "outputs", outputs)
        _set(self, "usage", usage)
        _set(self, "model", model)
        _set(self, "served_model", served_model)


@records.frozen
class ToolCallDelta(records.Record):
    """A piece of a streamed tool call. ``index`` says which call of the answer it belongs to;
    ``id`` and ``name`` come on the call's first piece, ``arguments`` is a fragment of its JSON."""

    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""
    extra_content: Mapping[str, Any] | None = None
    """``ToolCall.extra_content``, on the piece that brings it."""

    def __init__(self, index: int, id: str = "", name: str = "", arguments: str = "",
                 extra_content: Mapping[str, Any] | None = None) -> None:
        _set(self, "index", index)
        _set(self, "id", id)
        _set(self, "name", name)
        _set(self, "arguments", arguments)
        _set(self, "extra_content", extra_content)


@records.frozen
class Delta(records.Record):
    """One piece of a streamed answer. A stream has one choice (streams are ``n`` = 1).

    ``finish_reason`` is set on the piece that ends the answer, ``usage`` on at most one piece
    (usually the last), ``model`` whenever the upstream names it. Concatenating every piece's
    ``content`` gives the answer's text; ``streaming.Assembler`` rebuilds the whole
    :class:`ConverseResponse`."""

    content: str = ""
    tool_calls: tuple[ToolCallDelta, ...] = ()
    finish_reason: str = ""
    usage: Usage | None = None
    model: str = ""
    served_model: str = dataclasses.field(default="", compare=False)
    """On the closing piece: ``ConverseResponse.served_model`` (what the server's chunks named)."""

    def __init__(self, content: str = "", tool_calls: tuple[ToolCallDelta, ...] = (), finish_reason: str = "",
                 usage: Usage | None = None, model: str = "", served_model: str = "") -> None:
        _set(self, "content", content)
        _set(self, "tool_calls", tool_calls)
        _set(self, "finish_reason", finish_reason)
        _set(self, "usage", usage)
        _set(self, "model", model)
        _set(self, "served_model", served_model)


@records.frozen
class ComponentContext(records.Record):
    """What a component receives from the runtime instead of reaching for globals.

    ``session`` is None in the sidecar: each component opens its own HTTP pool of at most
    ``max_connections`` (so one slow provider cannot hold the connections of another); tests may
    hand in a session pointed at a local fake of the provider.
    """

    name: str
    type: str
    session: aiohttp.ClientSession | None = None
    max_connections: int = dataclasses.field(kw_only=True)
    """``maxConnections``: the most connections of this component's own pool (default: the catalog's)."""
    max_response_bytes: int = dataclasses.field(kw_only=True)
    """``maxResponseBytes``: the largest provider answer read (default: the catalog's)."""

    def __init__(self, name: str, type: str, session: aiohttp.ClientSession | None = None, *,
                 max_connections: int, max_response_bytes: int) -> None:
        _set(self, "name", name)
        _set(self, "type", type)
        _set(self, "session", session)
        _set(self, "max_connections", max_connections)
        _set(self, "max_response_bytes", max_response_bytes)


class Conversation(Protocol):
    """A conversation component. Instances are created by the registry, one per Component."""

    async def init(self, metadata: Mapping[str, Any]) -> None:
        """Validate and keep the resolved metadata (see ``catalog``); raise ValueError on bad values."""

    async def converse(self, request: ConverseRequest, *, timeout: float | None) -> ConverseResponse:
        """Answer one request; raise ``errors.ProviderError`` for upstream failures."""

    async def aclose(self) -> None:
        """Release what ``init`` acquired."""


class Streaming(Protocol):
    """A conversation component that can answer piece by piece as its upstream produces them.

    Optional: ``streaming.open_stream`` replays ``converse`` for a component without it."""

    def stream(self, request: ConverseRequest, *, timeout: float | None) -> AsyncIterator[Delta]:
        """Send the request when iteration starts and yield each piece as it arrives.

        Raise ``errors.ProviderError`` for upstream failures, before the first piece (a status, a
        refused connection) or after it (a malformed event, a cut connection). ``timeout`` bounds
        the wait for the first piece. Closing the iterator early (``aclose``) must close the
        upstream connection, so a client that leaves stops the provider's work."""
        ...
