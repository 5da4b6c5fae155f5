"""The HTTP/2 half of ``grpc_server``: grpclib's connection (hyper-h2 on asyncio) and each call's handling.

Imported by a server's first connection, not at start: grpclib, h2, hpack and hyperframe cost
~70 M instructions to import, 7 % of a start (docs/performance.md, round 8), for a port a
sidecar whose app speaks HTTP never uses. ``workers`` imports it before the fork.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import NoReturn

from grpclib.config import Configuration
from grpclib.metadata import decode_bin_value, decode_metadata, decode_timeout, encode_grpc_message
from grpclib.protocol import AbstractHandler, EventsProcessor, H2Protocol
from grpclib.protocol import Connection as H2Connection
from grpclib.protocol import Stream as H2Stream
from h2.config import H2Configuration
from h2.errors import ErrorCodes
from h2.events import PingReceived
from h2.exceptions import H2Error
from h2.settings import SettingCodes
from hyperframe.frame import GoAwayFrame

from parley_sidecar.api.grpc_server import TRACE_BIN, Abort, Server, Status

__all__ = ["Call", "Connection", "protocol"]

log = logging.getLogger("parley.grpc")

_HEADER = struct.Struct(">BI")
_ONLY_TRAILERS = [(":status", "200"), ("content-type", "application/grpc")]
_OK_HEADERS = [*_ONLY_TRAILERS, ("grpc-accept-encoding", "identity, deflate, gzip")]  # as grpcio's
_OK_TRAILERS = [("grpc-status", "0"), ("grpc-message", "")]  # as grpcio's
_PING_STRIKES = 2  # grpc-go's maxPingStrikes: the third early ping is one too many
_INFLATE = {"gzip": 31, "deflate": 15}  # zlib window bits: the gzip wrapper, the zlib one ("deflate" in gRPC)
# daprd's keepalive (pkg/api/grpc/server.go): a ping after 10 s, the connection dropped without its
# ack in 5 s, with or without calls; no cap on pings without data (grpc-go has none).
_CONFIG = Configuration(_keepalive_time=10.0, _keepalive_timeout=5.0, _keepalive_permit_without_calls=True,
                        _http2_max_pings_without_data=0,
                        _http2_min_sent_ping_interval_without_data=5.0).__for_server__()
# latin-1: any header bytes decode (a client's non-ASCII metadata is not a connection error)
_H2_CONFIG = H2Configuration(client_side=False, header_encoding="latin-1", validate_inbound_headers=False,
                             validate_outbound_headers=False, normalize_inbound_headers=False,
                             normalize_outbound_headers=False)


class Call:
    """One call, as its method sees it: the caller's metadata, its deadline and the way to answer."""

    __slots__ = ("_sent_headers", "_stream", "code", "deadline", "details", "metadata")

    def __init__(self, stream: H2Stream, metadata: Sequence[tuple[str, str | bytes]], deadline: float | None) -> None:
        self._stream = stream
        self._sent_headers = False
        self.metadata = metadata
        """The caller's metadata (``-bin`` values decoded to bytes), without HTTP/2 and gRPC's own headers."""
        self.deadline = deadline
        """``time.monotonic()`` when the caller's ``grpc-timeout`` runs out; None without one."""
        self.code: Status | None = None
        """The status this call was aborted with (None while it runs or when it succeeds)."""
        self.details: str | None = None

    def time_remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def abort(self, status: Status, message: str) -> NoReturn:
        self.code, self.details = status, message
        raise Abort(status, message)

    async def send_initial_metadata(self, metadata: Iterable[tuple[str, str]]) -> None:
        self._sent_headers = True
        await self._stream.send_headers([*_OK_HEADERS, *metadata])

    async def write(self, message: bytes) -> None:
        """One message of a server stream."""
        if not self._sent_headers:
            await self.send_initial_metadata(())
        await self._stream.send_data(_HEADER.pack(0, len(message)) + message)

    async def finish(self, message: bytes | None) -> None:
        """The answer's last message (None for a stream's end), then OK; written at once when it fits
        the flow-control window (one write for a unary call), else as the window opens."""
        h2, stream_id = self._stream._h2_connection, self._stream.id
        assert stream_id is not None
        if message is not None and len(message) + 5 > min(h2.local_flow_control_window(stream_id),
                                                          h2.max_outbound_frame_size):
            await self.write(message)
            message = None
        framed = b"" if message is None else _HEADER.pack(0, len(message)) + message
        await self._stream.connection.write_ready.wait()
        if not self._sent_headers:
            self._sent_headers = True
            h2.send_headers(stream_id, _OK_HEADERS)
        if framed:
            h2.send_data(stream_id, framed)
        h2.send_headers(stream_id, _OK_TRAILERS, end_stream=True)
        connection = self._stream.connection
        connection.data_sent += len(framed)  # grpclib's count (the ping policy reads it)
        connection.data_send_process()
        connection.flush()

    async def fail(self, status: Status, message: str) -> None:
        """The status and its message: trailers only when nothing was sent yet (as grpcio); then
        RST_STREAM NO_ERROR if the caller is still sending, so it stops (as grpc-go)."""
        trailers = [("grpc-status", str(int(status))), ("grpc-message", encode_grpc_message(message))]
        await self._stream.send_headers(trailers if self._sent_headers else [*_ONLY_TRAILERS, *trailers],
                                        end_stream=True)
        if self._stream.closable:
            self._stream.reset_nowait()



def protocol(server: Server) -> H2Protocol:
    """The protocol of one new connection to ``server``."""
    return _Protocol(Connection(server), _CONFIG, _H2_CONFIG)


async def _serve(server: Server, connection: Connection, stream: H2Stream, headers: list[tuple[str, str]],
                 release: Callable[[], None]) -> None:
    path, deadline, encoding, post, trailers, trace_bin = "", None, "", False, False, ""
    for name, value in headers:
        if name == ":path":
            path = value
        elif name == ":method":
            post = value == "POST"
        elif name == "te":
            trailers = value == "trailers"
        elif name == "grpc-timeout":
            with contextlib.suppress(ValueError):
                deadline = time.monotonic() + decode_timeout(value)
        elif name == "grpc-encoding":
            encoding = value
        elif name == TRACE_BIN:
            trace_bin = value
    if not (post and trailers):  # not a gRPC call: reset, as grpcio does
        stream.reset_nowait(ErrorCodes.INTERNAL_ERROR)
        release()
        connection.ended(stream)
        return
    timer = None
    if deadline is not None:
        task = asyncio.current_task()
        assert task is not None
        timer = asyncio.get_running_loop().call_later(deadline - time.monotonic(), task.cancel)
    try:
        metadata: tuple[tuple[str, str | bytes], ...] = tuple(decode_metadata(headers).items())
    except ValueError:  # a -bin value that is not base64 (grpc-go: malformed binary metadata)
        metadata = ()
        path = ""
    if trace_bin:  # a grpc- key, which decode_metadata leaves out; one that is not base64 is ignored
        with contextlib.suppress(ValueError):
            metadata += ((TRACE_BIN, decode_bin_value(trace_bin.encode("ascii"))),)
    call = Call(stream, metadata, deadline)
    try:
        if not path:
            await call.fail(Status.INTERNAL, "grpc: malformed request headers")
            return
        await _answer(server, stream, call, path, encoding)
    except asyncio.CancelledError:
        # The caller reset the stream or its connection went (nothing to answer: the stream is
        # closed), the deadline passed, or the server stopped after its grace period.
        if stream.closable:
            expired = deadline is not None and deadline <= time.monotonic()
            with contextlib.suppress(H2Error, AttributeError):
                await call.fail(*((Status.DEADLINE_EXCEEDED, "Deadline Exceeded") if expired
                                  else (Status.CANCELLED, "Cancelled")))
    except (H2Error, AttributeError):
        pass  # the stream or the connection closed under the answer: nobody to tell
    except Exception:
        log.exception("gRPC call %s failed", path)
        if stream.closable:
            stream.reset_nowait(ErrorCodes.INTERNAL_ERROR)
    finally:
        if timer is not None:
            timer.cancel()
        release()
        connection.ended(stream)


async def _answer(server: Server, stream: H2Stream, call: Call, path: str, encoding: str) -> None:
    if server.check_token is not None and not server.check_token(call.metadata):
        await call.fail(Status.UNAUTHENTICATED, "Unauthorized")  # daprd's answer, missing or wrong alike
        return
    method = server.methods.get(path)
    if method is None:
        await call.fail(Status.UNIMPLEMENTED, "Method not found!")  # grpcio's words
        return
    try:
        header = await stream.recv_data(5)
        flags, size = _HEADER.unpack(header) if header else (0, 0)
        if size > server.max_receive:  # refused before it is read, as grpc-go and grpcio do
            await call.fail(Status.RESOURCE_EXHAUSTED,
                            f"grpc: received message larger than max ({size} vs. {server.max_receive})")
            return
        data = await stream.recv_data(size) if size else b""
    except (AssertionError, struct.error):  # grpclib's buffer: the stream ended inside a message
        await call.fail(Status.INTERNAL, "grpc: error while receiving the request: unexpected EOF")
        return
    if flags & 1:
        inflated = await _inflate(server, call, data, encoding)
        if inflated is None:
            return
        data = inflated
    try:
        result = await method.behaviour(method.decode(data), call)
    except Abort as exc:
        await call.fail(exc.status, exc.message)
        return
    except Exception as exc:
        # A method's own bug (the servicers catch their pipeline's): UNKNOWN, as grpcio answered,
        # but naming only the exception's type: its text stays in the log (it may quote data).
        log.exception("gRPC method %s failed", path)
        await call.fail(Status.UNKNOWN, f"Unexpected {type(exc).__name__} (see the sidecar log)")
        return
    await call.finish(None if method.encode is None else method.encode(result))


async def _inflate(server: Server, call: Call, data: bytes, encoding: str) -> bytes | None:
    """A compressed request (gzip or deflate, what grpcio accepted); None once answered."""
    bits = _INFLATE.get(encoding)
    if bits is None:
        await call.fail(Status.UNIMPLEMENTED, f"grpc: Decompressor is not installed for grpc-encoding {encoding!r}")
        return None
    try:
        inflated = zlib.decompressobj(bits).decompress(data, server.max_receive + 1)
    except zlib.error as exc:
        await call.fail(Status.INTERNAL, f"grpc: failed to decompress the received message: {exc}")
        return None
    if len(inflated) > server.max_receive:
        await call.fail(Status.RESOURCE_EXHAUSTED,
                        f"grpc: received message after decompression larger than max ({server.max_receive})")
        return None
    return inflated


class Connection(AbstractHandler):
    """One client connection's calls (grpclib's handler interface), its idle timer and GOAWAY."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.calls: dict[H2Stream, asyncio.Task[None]] = {}
        self.protocol: _Protocol | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._last_stream = 0
        self._goaway_sent = False

    def opened(self, protocol: _Protocol) -> None:
        self.protocol = protocol
        self.server.connections.add(self)
        if self.server.stopping:
            self.goaway()
        self._arm_idle()

    def accept(self, stream: H2Stream, headers: list[tuple[str, str]],
               release_stream: Callable[[], None]) -> None:
        assert stream.id is not None
        if self._goaway_sent:  # after GOAWAY: refused, the client retries it on a new connection
            stream.reset_nowait(ErrorCodes.REFUSED_STREAM)
            release_stream()
            return
        self._last_stream = max(self._last_stream, stream.id)
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        self.calls[stream] = asyncio.get_running_loop().create_task(
            _serve(self.server, self, stream, headers, release_stream))

    def cancel(self, stream: H2Stream) -> None:
        """The caller reset the stream (a cancel, or its own deadline): the call's task is cancelled."""
        task = self.calls.get(stream)
        if task is not None:
            task.cancel()

    def close(self) -> None:
        """The connection is gone (or done after GOAWAY): every call's task is cancelled."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        for task in self.calls.values():
            task.cancel()
        self.server.connections.discard(self)
        if self.protocol is not None and not self.protocol.connection.is_closing():
            self.protocol.connection.close()

    def ended(self, stream: H2Stream) -> None:
        self.calls.pop(stream, None)
        if not self.calls:
            if self._goaway_sent:
                self.close()
            else:
                self._arm_idle()

    def goaway(self) -> None:
        """GOAWAY NO_ERROR naming the last call accepted; the calls in flight go on. Written as a
        raw frame: h2 closes its state machine on its own GOAWAY, which would end them."""
        if self._goaway_sent or self.protocol is None or self.protocol.connection.is_closing():
            return
        self._goaway_sent = True
        _send_goaway(self.protocol.connection, ErrorCodes.NO_ERROR, self._last_stream)
        if not self.calls:
            self.close()

    def _arm_idle(self) -> None:
        if self.server.max_idle > 0 and self._idle is None and not self._goaway_sent:
            self._idle = asyncio.get_running_loop().call_later(self.server.max_idle, self.goaway)


def _send_goaway(connection: H2Connection, code: ErrorCodes, last_stream: int, data: bytes = b"") -> None:
    frame = GoAwayFrame(0)
    frame.last_stream_id, frame.error_code, frame.additional_data = last_stream, code, data
    connection.flush()  # what h2 has queued goes first
    connection._transport.write(frame.serialize())


class _Events(EventsProcessor):
    """grpclib's event processing, plus grpc-go's ping policy (daprd's ``MinTime`` 8 s, permitted
    without calls): a ping sooner than 8 s after the last one is a strike, unless the server has
    sent headers or data since; the third strike: GOAWAY ENHANCE_YOUR_CALM ``too_many_pings``."""

    _MIN_PING_INTERVAL = 8.0
    _last_ping = -1e9
    _strikes = 0
    _sent = 0

    def process_ping_received(self, event: PingReceived) -> None:
        now = time.monotonic()
        sent = self.connection.data_sent + self.connection.streams_started
        if sent != self._sent:  # grpc-go resets its strikes when it writes headers or data
            self._sent, self._strikes = sent, 0
        if now - self._last_ping < self._MIN_PING_INTERVAL:
            self._strikes += 1
        self._last_ping = now
        if self._strikes > _PING_STRIKES:
            last = self.handler._last_stream if isinstance(self.handler, Connection) else 0
            _send_goaway(self.connection, ErrorCodes.ENHANCE_YOUR_CALM, last, b"too_many_pings")
            self.connection.close()


class _Protocol(H2Protocol):
    handler: Connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # h2 advertises 100 concurrent streams; grpcio and grpc-go set no limit.
        self.connection._connection.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: 2**31 - 1})
        self.connection.flush()
        self.processor = _Events(self.handler, self.connection)
        self.handler.opened(self)
