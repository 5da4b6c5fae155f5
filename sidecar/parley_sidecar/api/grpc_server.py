"""The HTTP/2 server under the Dapr gRPC API: grpclib's connection (hyper-h2 on asyncio, pure
Python) with parley's own call handling, answering as the grpcio server did before it.

grpcio's C core kept ~9.5 MB of file pages resident for a server we use for six methods
(docs/performance.md, Round 6). What it gave for free is here, each answered as grpcio or
grpc-go (daprd's) answers it: UNIMPLEMENTED ``Method not found!``, the API token checked for
every method before the method is looked up, ``grpc-timeout`` deadlines (DEADLINE_EXCEEDED
``Deadline Exceeded``), a caller's RST_STREAM or a lost connection cancelling the call's task,
the receive size limit (RESOURCE_EXHAUSTED before the message is read), gzip/deflate requests,
daprd's keepalive (a ping every 10 s, the connection dropped without its ack in 5 s; client
pings every 8 s accepted, more often struck out as grpc-go does), GOAWAY after ``max_idle``
seconds without a call, and a graceful stop: GOAWAY, calls in flight get ``grace`` seconds.

This module binds the listeners and stops the server; the HTTP/2 half (grpclib, h2, each call's
handling, :class:`grpc_h2.Call`) is ``grpc_h2``, imported by the first connection.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from parley_sidecar import errors

if TYPE_CHECKING:
    from parley_sidecar.api import grpc_h2

__all__ = ["TRACE_BIN", "Abort", "Method", "Server", "Status"]

log = logging.getLogger("parley.grpc")


Status = errors.GrpcCode
"""gRPC status codes (names and values as ``grpc.StatusCode``), the ones the errors carry."""


class Abort(Exception):
    """Raised by :meth:`Call.abort`: the call ends with this status."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


TRACE_BIN = "grpc-trace-bin"
"""The caller's trace in OpenCensus's binary form, which daprd reads before ``traceparent`` and
answers: kept in a call's metadata (as bytes) though it is one of gRPC's own keys."""

Behaviour = Callable[[Any, "grpc_h2.Call"], Awaitable[Any]]


class Method:
    """A registered method: how its request is decoded, what runs, how its answer is encoded
    (``encode`` None: a server stream, whose behaviour writes each message itself)."""

    __slots__ = ("behaviour", "decode", "encode")

    def __init__(self, behaviour: Behaviour, decode: Callable[[bytes], Any],
                 encode: Callable[[Any], bytes] | None) -> None:
        self.behaviour, self.decode, self.encode = behaviour, decode, encode


class Server:
    """Serves ``methods`` (full paths, ``/package.Service/Method``) on any number of listeners."""

    def __init__(self, methods: dict[str, Method], *, max_receive: int, max_idle: float = 0,
                 check_token: Callable[[Sequence[tuple[str, str | bytes]]], bool] | None = None) -> None:
        self.methods = methods
        self.check_token = check_token
        """None: no API token; else whether a call's metadata carries the right one."""
        self.max_receive = max_receive
        self.max_idle = max_idle
        self.stopping = False
        self._servers: list[asyncio.AbstractServer] = []
        self.connections: set[grpc_h2.Connection] = set()
        """The open connections: each adds itself when made and leaves when lost (``grpc_h2``)."""

    def _protocol(self) -> asyncio.Protocol:
        # grpclib and hyper-h2 are imported by the first connection, not by the start (~70 M
        # instructions, docs/performance.md round 8); a module already imported is a dict lookup.
        from parley_sidecar.api import grpc_h2

        return grpc_h2.protocol(self)

    async def listen(self, host: str, port: int) -> int:
        """Listens on ``host:port`` (0: a port the OS picks); the port."""
        server = await asyncio.get_running_loop().create_server(self._protocol, host, port, reuse_address=True)
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def serve_socket(self, sock: socket.socket) -> None:
        """Serves a socket bound and listening already (shared by the workers)."""
        self._servers.append(await asyncio.get_running_loop().create_server(self._protocol, sock=sock))

    async def listen_unix(self, path: str) -> None:
        self._servers.append(await asyncio.get_running_loop().create_unix_server(self._protocol, path))

    async def stop(self, grace: float) -> None:
        """New connections refused, GOAWAY on each open one; calls in flight get ``grace`` seconds,
        then are cancelled and the connections closed."""
        self.stopping = True
        for server in self._servers:
            server.close()
        for connection in list(self.connections):
            connection.goaway()
        calls = [task for connection in self.connections for task in connection.calls.values()]
        if calls:
            _, late = await asyncio.wait(calls, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)
        for connection in list(self.connections):
            connection.close()
