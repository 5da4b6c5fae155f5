"""Errors a client can see, and the one table that maps them to daprd's wire answers.

Every failure that reaches an API surface is a :class:`ParleyError`. Its subclass decides the
daprd ``errorCode``, the HTTP status and the gRPC status code (daprd's ``pkg/messages/predefined.go``
holds the same table): each subclass's ``wire`` is that row, and both API surfaces read it from
the exception, neither keeps a mapping of its own.

The hierarchy::

    ParleyError
    ├── MalformedRequest          the body is not valid protojson          400 ERR_MALFORMED_REQUEST
    ├── BodyTooLarge              the body exceeds --max-body-size         413 ERR_BODY_READ
    ├── ComponentNotFound         no component of that name                400 ERR_CONVERSATION_NOT_FOUND
    ├── MissingInputs             no inputs                                400 ERR_CONVERSATION_MISSING_INPUTS
    ├── InvalidParams             alpha2 validation, bad overrides          400 ERR_CONVERSATION_INVALID_PARMS
    ├── MetadataFull              extended metadata over its bounds         400 ERR_METADATA_LIMIT
    ├── Internal                  an unexpected exception, outside converse 500 ERR_INTERNAL
    └── InvokeError               the component or the pipeline failed      500 ERR_CONVERSATION_INVOKE

    ProviderError                 raised by components; the pipeline wraps it in InvokeError
    ├── ProviderTimeout
    └── ProviderUnavailable       (connection failure, open circuit)

Messages never carry a secret: provider errors are built from the upstream status and the
upstream's own error message, truncated (see :func:`truncate`). Every message is made encodable
here, once (see :func:`encodable`), so no surface can fail while writing an error.
"""

from __future__ import annotations

import enum
from typing import ClassVar, Final

__all__ = [
    "BodyTooLarge",
    "ComponentNotFound",
    "GrpcCode",
    "Internal",
    "InvalidParams",
    "InvokeError",
    "MalformedRequest",
    "MetadataFull",
    "MissingInputs",
    "ParleyError",
    "ProviderError",
    "ProviderTimeout",
    "ProviderUnavailable",
    "WireError",
    "encodable",
    "truncate",
]

_MAX_DETAIL = 512


def truncate(text: str, limit: int = _MAX_DETAIL) -> str:
    """Cut an upstream text before it can flood a log line or an error message."""
    return text if len(text) <= limit else text[:limit] + "…"


def encodable(text: str) -> str:
    """``text`` with each lone surrogate written as a ``\\udXXX`` escape, so it encodes as UTF-8.

    A JSON body may carry ``"\\ud800"``; Python decodes it to a lone surrogate, which then breaks
    ``str.encode`` wherever the text is echoed back (a parse error quoting the input, an upstream's
    error message). Escaping keeps the text readable and valid in every JSON parser and gRPC client.
    """
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


class GrpcCode(enum.IntEnum):
    """The gRPC status codes parley answers with (names and values as ``grpc.StatusCode``): the
    errors' own here, and every call's status in the gRPC server (``grpc_server.Status``)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    RESOURCE_EXHAUSTED = 8
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    UNAUTHENTICATED = 16


class WireError:
    """How one error class looks on the wire. A plain class: nothing compares or prints one, and
    a frozen dataclass costs ~0.4 ms of every start to create (docs/performance.md, round 7)."""

    __slots__ = ("code", "grpc_code", "http_status")

    def __init__(self, code: str, http_status: int, grpc_code: GrpcCode) -> None:
        self.code: Final = code
        self.http_status: Final = http_status
        self.grpc_code: Final = grpc_code


class ParleyError(Exception):
    """Base of every error a client may see; ``message`` is exactly what the client reads."""

    wire: ClassVar[WireError] = WireError("ERR_CONVERSATION_INVOKE", 500, GrpcCode.INTERNAL)

    def __init__(self, message: str) -> None:
        message = encodable(message)  # the one place a client-visible message is made
        super().__init__(message)
        self.message = message


class MalformedRequest(ParleyError):
    wire = WireError("ERR_MALFORMED_REQUEST", 400, GrpcCode.INVALID_ARGUMENT)

    def __init__(self, detail: str) -> None:
        super().__init__(f"failed deserializing HTTP body: {detail}")


class BodyTooLarge(ParleyError):
    wire = WireError("ERR_BODY_READ", 413, GrpcCode.RESOURCE_EXHAUSTED)

    def __init__(self, limit: int) -> None:
        super().__init__(f"failed to read request body: request body larger than {limit} bytes")


class ComponentNotFound(ParleyError):
    wire = WireError("ERR_CONVERSATION_NOT_FOUND", 400, GrpcCode.INVALID_ARGUMENT)

    def __init__(self, name: str) -> None:
        super().__init__(f"failed finding conversation component {name}")


class MissingInputs(ParleyError):
    wire = WireError("ERR_CONVERSATION_MISSING_INPUTS", 400, GrpcCode.INVALID_ARGUMENT)

    def __init__(self, name: str) -> None:
        super().__init__(f"failed conversing with component {name}: missing inputs in request")


class InvalidParams(ParleyError):
    wire = WireError("ERR_CONVERSATION_INVALID_PARMS", 400, GrpcCode.INVALID_ARGUMENT)

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"failed conversing with component {name}: invalid params: {reason}")
        self.reason = reason


class MetadataFull(ParleyError):
    """``PUT /v1.0/metadata/{key}`` beyond the bounds of extended metadata (daprd has none)."""

    wire = WireError("ERR_METADATA_LIMIT", 400, GrpcCode.RESOURCE_EXHAUSTED)

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"failed setting extended metadata {key!r}: {reason}")


class Internal(ParleyError):
    """An exception nobody expected, outside a conversation (daprd's ``ERR_INTERNAL``); the
    traceback goes to the sidecar log, never to the client."""

    wire = WireError("ERR_INTERNAL", 500, GrpcCode.INTERNAL)

    def __init__(self) -> None:
        super().__init__("internal error (see the sidecar log)")


class InvokeError(ParleyError):
    """The component call or the pipeline around it failed; ``reason`` is the bare cause."""

    wire = WireError("ERR_CONVERSATION_INVOKE", 500, GrpcCode.INTERNAL)

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"failed conversing with component {name}: {reason}")
        self.reason = reason


class ProviderError(Exception):
    """Raised by a component when its upstream fails; the pipeline wraps it in :class:`InvokeError`.

    ``status`` is the upstream HTTP status (0 when no answer came), ``retryable`` tells the
    resiliency layer whether another attempt may succeed, ``retry_after`` is the upstream's
    ``Retry-After`` in seconds when it sent one.
    """

    def __init__(
        self,
        reason: str,
        *,
        status: int = 0,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(truncate(reason))
        self.reason = truncate(reason)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class ProviderTimeout(ProviderError):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"request timed out after {seconds:g}s", retryable=True)


class ProviderUnavailable(ProviderError):
    def __init__(self, reason: str) -> None:
        super().__init__(reason, retryable=True)

