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


@dataclasses.dataclass(frozen=True, slots=True)
class TextPart:
    text: str


@dataclasses.dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the assistant asked for; ``arguments`` is the JSON text the model produced."""

    id: str
    name: str
    arguments: str
    extra_content: Mapping[str, Any] | None = None
    """Provider data that must travel back with this call in the next request, as the provider
    sent it (Gemini's ``{"google": {"thought_signature": …}}``, the ``extra_content`` of its OpenAI
    layer). Opaque: never scrubbed, sent back only to a provider whose dialect carries it, and not
    part of the Dapr API (alpha2 has no field for it)."""


@dataclasses.dataclass(frozen=True, slots=True)
class ToolResult:
    """The result of a tool call, sent back to the model."""

    tool_id: str
    name: str
    content: str


Part = TextPart | ToolCall | ToolResult


@dataclasses.dataclass(frozen=True, slots=True)
class Message:
    role: Role
    parts: tuple[Part, ...]
    name: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call; ``parameters`` is a JSON-Schema object (may be empty)."""

    name: str
    description: str = ""
    parameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, slots=True)
class ConverseRequest:
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


@dataclasses.dataclass(frozen=True, slots=True)
class CompletionDetails:
    accepted_prediction_tokens: int = 0
    audio_tokens: int = 0
    reasoning_tokens: int = 0
    rejected_prediction_tokens: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class PromptDetails:
    audio_tokens: int = 0
    cached_tokens: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class Usage:
    completion_tokens: int = 0
    prompt_tokens: int = 0
    total_tokens: int = 0
    completion_details: CompletionDetails | None = None
    prompt_details: PromptDetails | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Choice:
    finish_reason: str
    index: int = 0
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class Output:
    choices: tuple[Choice, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class ConverseResponse:
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


@dataclasses.dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call. ``index`` says which call of the answer it belongs to;
    ``id`` and ``name`` come on the call's first piece, ``arguments`` is a fragment of its JSON."""

    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""
    extra_content: Mapping[str, Any] | None = None
    """``ToolCall.extra_content``, on the piece that brings it."""


@dataclasses.dataclass(frozen=True, slots=True)
class Delta:
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


@dataclasses.dataclass(frozen=True, slots=True)
class ComponentContext:
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
