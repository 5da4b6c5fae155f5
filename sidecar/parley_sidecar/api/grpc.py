"""The Dapr gRPC API on ``--dapr-grpc-port``, Dapr's messages from ``dapr_proto``, served by ``grpc_server``.

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
import base64
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from google.protobuf import empty_pb2
from google.protobuf.message import DecodeError

from parley_sidecar import errors, tracing
from parley_sidecar.api import dapr_stream, metadata
from parley_sidecar.api.grpc_server import TRACE_BIN, Method, Server, Status
from parley_sidecar.conversation import alpha1, alpha2
from parley_sidecar.conversation.pipeline import Pipeline
from parley_sidecar.dapr_proto import ai_pb2, dapr_pb2, metadata_pb2
from parley_sidecar.metrics import Metrics

if TYPE_CHECKING:
    from parley_sidecar import tracing_otel
    from parley_sidecar.api.grpc_h2 import Call

__all__ = ["ConversationServicer", "RuntimeServicer", "server", "token_check"]

log = logging.getLogger("parley.grpc")

_SERVICE = "/dapr.proto.runtime.v1.Dapr/"


def token_check(token: str) -> Callable[[Sequence[tuple[str, str | bytes]]], bool]:
    """Whether a call carries the right ``dapr-api-token`` metadata; the server answers one that does
    not UNAUTHENTICATED ``Unauthorized`` for every method, as daprd does (tests/conformance)."""
    expected = token.encode()

    def check(metadata: Sequence[tuple[str, str | bytes]]) -> bool:
        given = next((v for k, v in metadata if k == "dapr-api-token"), None)
        value = b"" if given is None else given.encode() if isinstance(given, str) else given
        return hmac.compare_digest(value, expected)

    return check


class ConversationServicer:
    def __init__(self, pipeline: Pipeline, metrics: Metrics) -> None:
        self._pipeline = pipeline
        self._metrics = metrics

    async def _run(self, method: str, name: str, call: Awaitable[Any],
                   context: Call, what: str = "conversation") -> Any:
        """Await the conversation; every outcome is counted with the status the caller gets, before
        the caller has it (so a scrape right after the answer sees the call)."""
        started = time.perf_counter()
        try:
            response = await call
        except errors.ParleyError as exc:
            _count(self._metrics, method, exc.wire.grpc_code.name, started)
            context.abort(exc.wire.grpc_code, exc.message)
        except asyncio.CancelledError:
            # The server cancels this task when the caller cancels or its deadline passes.
            _count(self._metrics, method, _cancelled_status(context), started)
            raise
        except Exception:
            # Not grpc's UNKNOWN "Unexpected <class …>: text": daprd's invoke error, the traceback logged once.
            log.exception("%s with component %r failed unexpectedly", what, name)
            _count(self._metrics, method, "INTERNAL", started)
            context.abort(Status.INTERNAL, errors.InvokeError(name, "internal error (see the sidecar log)").message)
        _count(self._metrics, method, "OK", started)
        return response

    async def ConverseAlpha1(
        self, request: ai_pb2.ConversationRequest, context: Call
    ) -> ai_pb2.ConversationResponse:
        return await self._run("ConverseAlpha1", request.name, alpha1.converse(self._pipeline, request), context)  # type: ignore[no-any-return]

    async def ConverseAlpha2(
        self, request: ai_pb2.ConversationRequestAlpha2, context: Call
    ) -> ai_pb2.ConversationResponseAlpha2:
        return await self._run("ConverseAlpha2", request.name, alpha2.converse(self._pipeline, request), context)  # type: ignore[no-any-return]


    async def ConverseStreamAlpha2(
        self, request: ai_pb2.ConversationRequestAlpha2, context: Call
    ) -> None:
        """Each message written as it comes. Before the first: the status ``ConverseAlpha2`` would
        answer; after it, an error ends the stream with its status. A caller that cancels (or whose
        deadline passes) cancels this task, and closing the stream cancels the upstream call."""
        stream = dapr_stream.responses(self._pipeline, request)

        async def write_all() -> None:
            try:
                async for message in stream:
                    await context.write(message.SerializeToString())
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
                          context: Call) -> metadata_pb2.GetMetadataResponse:
        started = time.perf_counter()
        response = self._describe()
        _count(self._metrics, "GetMetadata", "OK", started)
        return response

    async def SetMetadata(self, request: metadata_pb2.SetMetadataRequest,
                          context: Call) -> empty_pb2.Empty:
        started = time.perf_counter()
        try:
            self._extended.set(request.key, request.value)
        except errors.MetadataFull as exc:
            _count(self._metrics, "SetMetadata", exc.wire.grpc_code.name, started)
            context.abort(exc.wire.grpc_code, exc.message)
        _count(self._metrics, "SetMetadata", "OK", started)
        return empty_pb2.Empty()

    async def Shutdown(self, request: dapr_pb2.ShutdownRequest,
                       context: Call) -> empty_pb2.Empty:
        force = any(k == "dapr-force-shutdown" and str(v).lower() == "true"
                    for k, v in context.metadata)
        _count(self._metrics, "Shutdown", "OK", time.perf_counter())
        # After this answer is on its way: the server's graceful stop lets this call complete.
        asyncio.get_running_loop().call_soon(self._shutdown, force)
        return empty_pb2.Empty()




_DEADLINE_SLACK = 0.25
"""Seconds: the server's deadline is the caller's plus the time the call took to arrive, and a
caller whose deadline passes cancels at once, so the server sees the cancel slightly before its
own deadline (tens of ms on a busy machine)."""


def _cancelled_status(context: Call) -> str:
    """How a cancelled call is counted: the caller's deadline, or the caller leaving."""
    remaining = context.time_remaining()
    return "DEADLINE_EXCEEDED" if remaining is not None and remaining <= _DEADLINE_SLACK else "CANCELLED"


def _count(metrics: Metrics, method: str, status: str, started: float) -> None:
    elapsed = (time.perf_counter() - started) * 1000
    metrics.grpc(_SERVICE + method, status, elapsed)
    if metrics.api_log is not None:
        metrics.api_log.grpc(_SERVICE + method, status, elapsed)


class _Undecodable:
    """A request whose bytes are not the method's message (grpc-go, daprd's, answers INTERNAL)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


async def _traced(tracer: tracing_otel.OtelTracer,
                  behaviour: Callable[[Any, Call], Awaitable[Any]], method: str,
                  request: Any, context: Call) -> Any:
    """``behaviour`` inside a server span named as daprd names it (the full method), joined to the
    caller's ``grpc-trace-bin`` or ``traceparent``; the span's ids are answered in the headers, as
    ``grpc-trace-bin`` (daprd's answer) and ``traceparent`` (which a grpcio client can read: its
    C core keeps ``grpc-trace-bin`` to itself). A stream's span ends with it."""
    scope = tracer.grpc_server(_SERVICE + method, context.metadata)
    try:  # a call cancelled while its headers go out still ends its span
        headers = scope.headers()
        # a -bin value: base64 without its padding, as grpclib's encode_bin_value (not imported at start)
        binary = base64.b64encode(tracing.binary_from_traceparent(headers["traceparent"])).rstrip(b"=").decode("ascii")
        await context.send_initial_metadata((*headers.items(), (TRACE_BIN, binary)))
        return await behaviour(request, context)
    finally:
        # the status is read only for a sampled span: ``close`` calls these only then
        scope.close(lambda: {"rpc.grpc.status_code": (context.code or Status.OK).name}, lambda: _span_error(context))


def _span_error(context: Call) -> str | None:
    """A failed call's status description for its span; None for a call that succeeded."""
    if context.code is None or context.code is Status.OK:
        return None
    return context.details or context.code.name


def _decoder(request_type: Any) -> Callable[[bytes], Any]:
    """The request's message, or :class:`_Undecodable` for bytes that are not one, so the handler
    answers them, counted."""

    def decode(data: bytes) -> Any:
        try:
            return request_type.FromString(data)
        except DecodeError as exc:
            return _Undecodable(str(exc))

    return decode


def _unary(behaviour: Callable[[Any, Call], Awaitable[Any]], method: str,
           request_type: Any, response_type: Any, metrics: Metrics) -> Method:
    """A unary method whose undecodable requests get grpc-go's INTERNAL answer, counted."""
    return Method(_call(behaviour, method, metrics), _decoder(request_type), response_type.SerializeToString)


def _call(behaviour: Callable[[Any, Call], Awaitable[Any]], method: str,
          metrics: Metrics) -> Callable[[Any, Call], Awaitable[Any]]:
    """``behaviour`` with undecodable requests refused and, with tracing on, in a server span."""

    async def call(request: Any, context: Call) -> Any:
        if type(request) is _Undecodable:
            # grpc-go's answer to bytes that are not the method's request message, counted
            _count(metrics, method, "INTERNAL", time.perf_counter())
            context.abort(Status.INTERNAL, f"grpc: error unmarshalling request: {request.reason}")
        tracer = tracing.current()
        if tracer is not None:
            return await _traced(tracer, behaviour, method, request, context)
        return await behaviour(request, context)

    return call


def _server_stream(behaviour: Callable[[Any, Call], Awaitable[None]], method: str,
                   request_type: Any, metrics: Metrics) -> Method:
    """A server-streaming method, its undecodable requests answered as :func:`_unary`'s are. Its
    messages serialize themselves (``stream_pb``'s classes are built on the first stream, not here)."""
    return Method(_call(behaviour, method, metrics), _decoder(request_type), None)


def server(pipeline: Pipeline, metrics: Metrics, *, runtime: RuntimeServicer | None = None,
           token: str | None = None, max_receive: int, max_idle: float = 0) -> Server:
    """The conversation methods (and, with ``runtime``, GetMetadata, SetMetadata and Shutdown)
    only: any other method of the Dapr service gets grpc's UNIMPLEMENTED ``Method not found!``.
    ``max_idle`` seconds without a call: GOAWAY (0: never)."""
    servicer = ConversationServicer(pipeline, metrics)
    methods = {
        "ConverseAlpha1": _unary(servicer.ConverseAlpha1, "ConverseAlpha1", ai_pb2.ConversationRequest,
                                 ai_pb2.ConversationResponse, metrics),
        "ConverseAlpha2": _unary(servicer.ConverseAlpha2, "ConverseAlpha2", ai_pb2.ConversationRequestAlpha2,
                                 ai_pb2.ConversationResponseAlpha2, metrics),
        "ConverseStreamAlpha2": _server_stream(servicer.ConverseStreamAlpha2, "ConverseStreamAlpha2",
                                               ai_pb2.ConversationRequestAlpha2, metrics),
    }
    if runtime is not None:
        methods.update({
            "GetMetadata": _unary(runtime.GetMetadata, "GetMetadata", metadata_pb2.GetMetadataRequest,
                                  metadata_pb2.GetMetadataResponse, metrics),
            "SetMetadata": _unary(runtime.SetMetadata, "SetMetadata", metadata_pb2.SetMetadataRequest,
                                  empty_pb2.Empty, metrics),
            "Shutdown": _unary(runtime.Shutdown, "Shutdown", dapr_pb2.ShutdownRequest, empty_pb2.Empty, metrics),
        })
    return Server({_SERVICE + name: method for name, method in methods.items()}, max_receive=max_receive,
                  max_idle=max_idle, check_token=token_check(token) if token else None)
