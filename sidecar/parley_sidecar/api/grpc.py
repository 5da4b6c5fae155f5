"""The Dapr gRPC API on ``--dapr-grpc-port``, Dapr's messages from ``dapr_proto``, served by a generic handler.

Registered: ``ConverseAlpha1`` and ``ConverseAlpha2``, parley's server-streaming extension
``ConverseStreamAlpha2`` (``stream_pb``; the shape Dapr proposed in dapr/dapr PR #8790), and the
methods clients call to find and manage the sidecar, answered as daprd 1.18.3 answers them:
``GetMetadata`` (the description ``GET /v1.0/metadata`` writes too, see ``metadata``),
``SetMetadata`` (the same bounded store as ``PUT /v1.0/metadata/{key}``; beyond its bounds
RESOURCE_EXHAUSTED ``ERR_METADATA_LIMIT``'s message) and ``Shutdown`` (Empty, then a graceful
shutdown; ``dapr-force-shutdown: true`` exits 1 at once). Every other method of
``dapr.proto.runtime.v1.Dapr`` answers grpc's UNIMPLEMENTED ``Method not found!``. The API token
is checked for every method, as daprd does, with daprd's messages.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf import empty_pb2
from google.protobuf.message import DecodeError, Message

from parley_sidecar import errors, tracing
from parley_sidecar.api import dapr_stream, metadata
from parley_sidecar.conversation import alpha1, alpha2
from parley_sidecar.conversation.pipeline import Pipeline
from parley_sidecar.dapr_proto import ai_pb2, dapr_pb2, metadata_pb2
from parley_sidecar.metrics import Metrics

if TYPE_CHECKING:
    from parley_sidecar import tracing_otel

__all__ = ["ConversationServicer", "RuntimeServicer", "TokenInterceptor", "add_to_server", "connection_options"]

log = logging.getLogger("parley.grpc")

_SERVICE = "/dapr.proto.runtime.v1.Dapr/"


class TokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    """Rejects calls without the right ``dapr-api-token`` metadata with UNAUTHENTICATED ``Unauthorized``,
    for every method, as daprd does (checked against the real daprd in tests/conformance)."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        given = next((v for k, v in details.invocation_metadata or () if k == "dapr-api-token"), None)
        value = b"" if given is None else given.encode() if isinstance(given, str) else given
        if not hmac.compare_digest(value, self._token):
            return _deny("Unauthorized")  # daprd 1.18.3's answer, missing or wrong alike
        return await continuation(details)


def _deny(message: str) -> grpc.RpcMethodHandler[Any, Any]:
    async def abort(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return grpc.unary_unary_rpc_method_handler(abort)


class ConversationServicer:
    def __init__(self, pipeline: Pipeline, metrics: Metrics) -> None:
        self._pipeline = pipeline
        self._metrics = metrics

    async def _run(self, method: str, name: str, call: Awaitable[Any],
                   context: grpc.aio.ServicerContext[Any, Any], what: str = "conversation") -> Any:
        """Await the conversation; every outcome is counted with the status the caller gets, before
        the caller has it (so a scrape right after the answer sees the call)."""
        started = time.perf_counter()
        try:
            response = await call
        except errors.ParleyError as exc:
            _count(self._metrics, method, _code(exc).name, started)
            await context.abort(_code(exc), exc.message)
        except asyncio.CancelledError:
            # grpc.aio cancels this task when the caller cancels or its deadline passes.
            _count(self._metrics, method, _cancelled_status(context), started)
            raise
        except Exception:
            # Not grpc's UNKNOWN "Unexpected <class …>: text": daprd's invoke error, the traceback logged once.
            log.exception("%s with component %r failed unexpectedly", what, name)
            _count(self._metrics, method, "INTERNAL", started)
            await context.abort(grpc.StatusCode.INTERNAL,
                                errors.InvokeError(name, "internal error (see the sidecar log)").message)
        _count(self._metrics, method, "OK", started)
        return response

    async def ConverseAlpha1(
        self, request: ai_pb2.ConversationRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ai_pb2.ConversationResponse:
        return await self._run("ConverseAlpha1", request.name, alpha1.converse(self._pipeline, request), context)  # type: ignore[no-any-return]

    async def ConverseAlpha2(
        self, request: ai_pb2.ConversationRequestAlpha2, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ai_pb2.ConversationResponseAlpha2:
        return await self._run("ConverseAlpha2", request.name, alpha2.converse(self._pipeline, request), context)  # type: ignore[no-any-return]


    async def ConverseStreamAlpha2(
        self, request: ai_pb2.ConversationRequestAlpha2, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        """Each message written as it comes. Before the first: the status ``ConverseAlpha2`` would
        answer; after it, an error ends the stream with its status. A caller that cancels (or whose
        deadline passes) cancels this task, and closing the stream cancels the upstream call."""
        stream = dapr_stream.responses(self._pipeline, request)

        async def write_all() -> None:
            try:
                async for message in stream:
                    await context.write(message)
            finally:
                await stream.aclose()

        await self._run("ConverseStreamAlpha2", request.name, write_all(), context, "streaming conversation")


class RuntimeServicer:
    """``GetMetadata``, ``SetMetadata`` and ``Shutdown``, each counted with the status the caller gets."""

    def __init__(self, describe: Callable[[], metadata_pb2.GetMetadataResponse], extended: metadata.ExtendedMetadata,
                 shutdown: Callable[[bool], None], metrics: Metrics) -> None:
        self._describe = describe
        self._extended = extended
        self._shutdown = shutdown
        self._metrics = metrics

    async def GetMetadata(self, request: metadata_pb2.GetMetadataRequest,
                          context: grpc.aio.ServicerContext[Any, Any]) -> metadata_pb2.GetMetadataResponse:
        started = time.perf_counter()
        response = self._describe()
        _count(self._metrics, "GetMetadata", "OK", started)
        return response

    async def SetMetadata(self, request: metadata_pb2.SetMetadataRequest,
                          context: grpc.aio.ServicerContext[Any, Any]) -> empty_pb2.Empty:
        started = time.perf_counter()
        try:
            self._extended.set(request.key, request.value)
        except errors.MetadataFull as exc:
            _count(self._metrics, "SetMetadata", _code(exc).name, started)
            await context.abort(_code(exc), exc.message)
        _count(self._metrics, "SetMetadata", "OK", started)
        return empty_pb2.Empty()

    async def Shutdown(self, request: dapr_pb2.ShutdownRequest,
                       context: grpc.aio.ServicerContext[Any, Any]) -> empty_pb2.Empty:
        force = any(k == "dapr-force-shutdown" and str(v).lower() == "true"
                    for k, v in context.invocation_metadata() or ())
        _count(self._metrics, "Shutdown", "OK", time.perf_counter())
        # After this answer is on its way: the server's graceful stop lets this call complete.
        asyncio.get_running_loop().call_soon(self._shutdown, force)
        return empty_pb2.Empty()


def connection_options(max_idle: float) -> list[tuple[str, int]]:
    """Server options so dead and idle connections do not pile up: daprd's keepalive settings
    (``pkg/api/grpc/server.go``). ``max_idle`` seconds without a call: GOAWAY (0: never)."""
    options = [
        # Ping a quiet connection after 10 s and drop it if no ack comes in 5 s: a caller that
        # vanished mid-call (no FIN) is noticed, and its call, with the upstream request, cancelled.
        ("grpc.keepalive_time_ms", 10_000),
        ("grpc.keepalive_timeout_ms", 5_000),
        ("grpc.keepalive_permit_without_calls", 1),
        # Accept a client's pings every 8 s, even with no call in flight (daprd's enforcement policy;
        # grpc's default of 5 minutes would GOAWAY a client that keeps its channel warm).
        ("grpc.http2.min_ping_interval_without_data_ms", 8_000),
    ]
    if max_idle > 0:
        options.append(("grpc.max_connection_idle_ms", int(max_idle * 1000)))
    return options


_CODES = {code.value[0]: code for code in grpc.StatusCode}


_DEADLINE_SLACK = 0.25
"""Seconds: the server's deadline is the caller's plus the time the call took to arrive, and a
caller whose deadline passes cancels at once, so the server sees the cancel slightly before its
own deadline (tens of ms on a busy machine)."""


def _cancelled_status(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """How a cancelled call is counted: the caller's deadline, or the caller leaving."""
    remaining = context.time_remaining()
    return "DEADLINE_EXCEEDED" if remaining is not None and remaining <= _DEADLINE_SLACK else "CANCELLED"


def _count(metrics: Metrics, method: str, status: str, started: float) -> None:
    elapsed = (time.perf_counter() - started) * 1000
    metrics.grpc(_SERVICE + method, status, elapsed)
    if metrics.api_log is not None:
        metrics.api_log.grpc(_SERVICE + method, status, elapsed)


def _code(exc: errors.ParleyError) -> grpc.StatusCode:
    return _CODES[int(exc.wire.grpc_code)]


class _Undecodable:
    """A request whose bytes are not the method's message (grpc.aio would answer UNKNOWN with the
    exception's text; grpc-go, daprd's, answers INTERNAL)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


async def _traced(tracer: tracing_otel.OtelTracer,
                  behaviour: Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]], method: str,
                  request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    """``behaviour`` inside a server span named as daprd names it (the full method), joined to the
    caller's ``traceparent``; the span's ``traceparent`` is answered in the headers (daprd answers
    ``grpc-trace-bin``, which grpcio cannot send: docs/tracing.md). A stream's span ends with it."""
    scope = tracer.grpc_server(_SERVICE + method, context.invocation_metadata() or ())
    try:  # a call cancelled while its headers go out still ends its span
        await context.send_initial_metadata(tuple(scope.headers().items()))
        return await behaviour(request, context)
    finally:
        # the status is read only for a sampled span: ``close`` calls these only then
        scope.close(lambda: {"rpc.grpc.status_code": _status_name(context.code())}, lambda: _span_error(context))


def _status_name(code: Any) -> str:
    """The name of a call's status (``context.code()``: a ``StatusCode``, its number, or None for OK)."""
    return code.name if isinstance(code, grpc.StatusCode) else _CODES.get(int(code or 0), grpc.StatusCode.OK).name


def _span_error(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    """A failed call's status description for its span; None for a call that succeeded."""
    code = context.code()
    if code is None or code in (grpc.StatusCode.OK, 0):
        return None
    return str(context.details() or _status_name(code))


def _decoder(request_type: Any) -> Callable[[bytes], Any]:
    """The request's message, or :class:`_Undecodable` for bytes that are not one, so the handler
    answers them (a deserializer that raised would leave the answer to grpc.aio)."""

    def decode(data: bytes) -> Any:
        try:
            return request_type.FromString(data)
        except DecodeError as exc:
            return _Undecodable(str(exc))

    return decode


def _unary(behaviour: Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]], method: str,
           request_type: Any, response_type: Any, metrics: Metrics) -> grpc.RpcMethodHandler[Any, Any]:
    """A unary method whose undecodable requests get grpc-go's INTERNAL answer, counted."""
    return grpc.unary_unary_rpc_method_handler(_call(behaviour, method, metrics),
                                               request_deserializer=_decoder(request_type),
                                               response_serializer=response_type.SerializeToString)


def _call(behaviour: Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]], method: str,
          metrics: Metrics) -> Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]:
    """``behaviour`` with undecodable requests refused and, with tracing on, in a server span."""

    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if type(request) is _Undecodable:
            # grpc-go's answer to bytes that are not the method's request message, counted
            _count(metrics, method, "INTERNAL", time.perf_counter())
            await context.abort(grpc.StatusCode.INTERNAL, f"grpc: error unmarshalling request: {request.reason}")
        tracer = tracing.current()
        if tracer is not None:
            return await _traced(tracer, behaviour, method, request, context)
        return await behaviour(request, context)

    return call


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


def _server_stream(behaviour: Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[None]], method: str,
                   request_type: Any, metrics: Metrics) -> grpc.RpcMethodHandler[Any, Any]:
    """A server-streaming method, its undecodable requests answered as :func:`_unary`'s are. Its
    messages serialize themselves (``stream_pb``'s classes are built on the first stream, not here)."""
    return grpc.unary_stream_rpc_method_handler(_call(behaviour, method, metrics),
                                                request_deserializer=_decoder(request_type),
                                                response_serializer=_serialize)


def add_to_server(server: grpc.aio.Server, pipeline: Pipeline, metrics: Metrics, *,
                  runtime: RuntimeServicer | None = None) -> None:
    """Registers the conversation methods (and, with ``runtime``, GetMetadata, SetMetadata and
    Shutdown) only: any other method of the Dapr service gets grpc's own UNIMPLEMENTED ``Method not
    found!`` (not a Python exception text)."""
    servicer = ConversationServicer(pipeline, metrics)
    handlers = {
        "ConverseAlpha1": _unary(servicer.ConverseAlpha1, "ConverseAlpha1", ai_pb2.ConversationRequest,
                                 ai_pb2.ConversationResponse, metrics),
        "ConverseAlpha2": _unary(servicer.ConverseAlpha2, "ConverseAlpha2", ai_pb2.ConversationRequestAlpha2,
                                 ai_pb2.ConversationResponseAlpha2, metrics),
        "ConverseStreamAlpha2": _server_stream(servicer.ConverseStreamAlpha2, "ConverseStreamAlpha2",
                                               ai_pb2.ConversationRequestAlpha2, metrics),
    }
    if runtime is not None:
        handlers.update({
            "GetMetadata": _unary(runtime.GetMetadata, "GetMetadata", metadata_pb2.GetMetadataRequest,
                                  metadata_pb2.GetMetadataResponse, metrics),
            "SetMetadata": _unary(runtime.SetMetadata, "SetMetadata", metadata_pb2.SetMetadataRequest,
                                  empty_pb2.Empty, metrics),
            "Shutdown": _unary(runtime.Shutdown, "Shutdown", dapr_pb2.ShutdownRequest, empty_pb2.Empty, metrics),
        })
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_SERVICE.strip("/"), handlers),))
