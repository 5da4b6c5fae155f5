"""How long an HTTP connection may hold the sidecar: a deadline for each request head, an idle limit.

aiohttp closes a keep-alive connection after ``keepalive_timeout`` of idleness (an hour by default)
but has no deadline for the head of a request, so a client that opens connections and sends
half a request line keeps each one, with its buffer and file descriptor, until that timer fires.
Go's ``http.Server.ReadHeaderTimeout`` (daprd sets 10 s on every port) closes such a connection,
silently, as we do. :class:`Runner` is an ``AppRunner`` whose connections get both limits: the
head deadline here, the idle limit as aiohttp's own ``keepalive_timeout``.

The deadline is one timer per connection: armed when the connection opens and when the first
bytes of a later request arrive on an idle keep-alive connection, cancelled as soon as aiohttp's
parser holds a complete head. A request whose head arrives whole in one read (nearly all of them)
costs one ``if`` in ``data_received``; the first request on a connection adds one ``call_later``
and one ``cancel``. This reads two attributes of aiohttp's ``RequestHandler`` (``_messages``, the
parsed requests not yet served, and ``_waiter``, set while it waits for the next one), present
since aiohttp 3.8; ``tests/sidecar/api/test_connection_limits.py`` pins the behaviour.

The same timer's window also bounds the size of a request head (``--read-buffer-size``): Go's
``MaxHeaderBytes`` lets daprd read a head of that many bytes plus 4 KiB of slack, then answers
``431 Request Header Fields Too Large`` in plain text and closes. A head found too large (still
arriving, or parsed) is queued as aiohttp queues its own parse errors (its private ``_ErrInfo``),
so the answer goes through :meth:`_Handler.handle_error` like any malformed request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import http, http_exceptions, streams, web, web_protocol

from parley_sidecar import errors
from parley_sidecar.api import wire

__all__ = ["FRONT", "GO_HEADER_SLACK", "Front", "Runner"]

GO_HEADER_SLACK = 4096
"""Bytes Go's ``http.Server`` reads past ``MaxHeaderBytes`` before refusing a head (its bufio slop)."""
HEAD_TOO_LARGE = 431
_TOO_LARGE_TEXT = "431 Request Header Fields Too Large"


_parse = web_protocol.RequestHandler.data_received
"""Called directly, not through ``super()``: this runs for every read on every connection."""


class _Handler(web_protocol.RequestHandler):
    """aiohttp's connection protocol, plus the head deadline and the head size limit."""

    __slots__ = ("_head_bytes", "_head_timeout", "_head_timer", "_in_head", "_max_head")

    def __init__(self, manager: web.Server, *, head_timeout: float, max_head: int, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._head_timeout = head_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._max_head = max_head
        self._in_head = False
        self._head_bytes = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._start_head(0)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        queued = len(self._messages)
        _parse(self, data)
        if self._messages:  # a complete head (or a parse error to answer): no deadline while it is served
            self._in_head = False
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
            if self._max_head:
                self._refuse_large_heads(queued)
        elif self._in_head:
            self._head_bytes += len(data)
            if self._max_head and self._head_bytes > self._max_head:
                self._refuse_head()
        elif self._waiter is not None:
            self._start_head(len(data))  # the start of another request on an idle keep-alive connection

    def _start_head(self, received: int) -> None:
        self._in_head, self._head_bytes = True, received
        if self._head_timeout > 0 and self._head_timer is None:
            self._head_timer = self._loop.call_later(self._head_timeout, self._head_late)

    def _refuse_large_heads(self, queued: int) -> None:
        """Swap each newly parsed head larger than the limit for a 431 answer."""
        for index in range(queued, len(self._messages)):
            message = self._messages[index][0]
            if isinstance(message, http.RawRequestMessage) and _head_size(message) > self._max_head:
                self._messages[index] = (_too_large(), streams.EMPTY_PAYLOAD)
                self._close = True  # no more parsing: the connection ends after this answer

    def _refuse_head(self) -> None:
        """A head still arriving is already over the limit: answer 431 without waiting for the rest."""
        self._in_head = False
        self._close = True
        self._messages.append((_too_large(), streams.EMPTY_PAYLOAD))
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """aiohttp's answer to a request its parser refused (an unknown method, a line too long, bad
        framing), as daprd-shaped JSON instead of aiohttp's text page. Such a request never reached
        a route, the token check included. Errors of handlers never get here (``surface``)."""
        if status == HEAD_TOO_LARGE or isinstance(exc, http_exceptions.LineTooLong):
            # Go's answer (status, text, closed). One line too long is the same case in Go: its
            # limit is on the whole head.
            response = web.Response(status=HEAD_TOO_LARGE, text=_TOO_LARGE_TEXT, charset="utf-8")
            response.force_close()
            return response
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        detail = errors.truncate(" ".join((message or type(exc).__name__).split()), 200)
        response = web.Response(status=400, content_type="application/json",
                                body=wire.error_body("ERR_MALFORMED_REQUEST", f"malformed HTTP request: {detail}"))
        response.force_close()
        return response

    def _head_late(self) -> None:
        self._head_timer = None
        self.force_close()


def _head_size(message: http.RawRequestMessage) -> int:
    """Bytes of a parsed head as sent: request line, ``name: value`` lines, blank line."""
    line = len(message.method) + len(message.path) + len("  HTTP/1.1\r\n")
    return line + sum(len(name) + len(value) + 4 for name, value in message.raw_headers) + 2


def _too_large() -> Any:
    # aiohttp's own record of a request it could not parse (private, as the attributes above).
    return web_protocol._ErrInfo(status=HEAD_TOO_LARGE, exc=http_exceptions.BadHttpMessage(_TOO_LARGE_TEXT),
                                 message=_TOO_LARGE_TEXT)


class _Server(web.Server):
    """aiohttp's protocol factory, making :class:`_Handler` connections."""

    def __init__(self, plain: web.Server, head_timeout: float, max_head: int, front: Front | None) -> None:
        # ``_kwargs`` are the RequestHandler options aiohttp collected (keepalive_timeout, debug …).
        super().__init__(front or plain.request_handler, request_factory=plain.request_factory,
                         handler_cancellation=plain.handler_cancellation, **plain._kwargs)
        self._head_timeout = head_timeout
        self._max_head = max_head

    def __call__(self) -> web_protocol.RequestHandler:
        return _Handler(self, loop=self._loop, head_timeout=self._head_timeout, max_head=self._max_head,
                        **self._kwargs)


Front = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
FRONT: web.AppKey[Front] = web.AppKey("connections_front")
"""An app's own first handler, in place of ``Application._handle`` (which it calls for what it does
not answer itself): the API port's hot routes skip the router and middlewares (``http._front``)."""

_FOREVER = 365 * 24 * 3600.0
"""aiohttp reads a keep-alive timeout of 0 as "close at once"; ours means "no limit"."""


class Runner(web.AppRunner):
    """An ``AppRunner`` whose connections must send each request head within ``head_timeout``
    seconds and are closed after ``idle_timeout`` seconds between requests (0: no limit). With
    ``read_buffer_size`` (bytes, daprd's ``--read-buffer-size``) a head over it plus
    :data:`GO_HEADER_SLACK` gets 431; 0 leaves aiohttp's own line limits. Other keywords are
    ``AppRunner``'s."""

    __slots__ = ("_head_timeout", "_max_head")

    def __init__(self, app: web.Application, *, head_timeout: float, idle_timeout: float,
                 read_buffer_size: int = 0, **kwargs: Any) -> None:
        max_head = read_buffer_size + GO_HEADER_SLACK if read_buffer_size > 0 else 0
        if max_head:
            # aiohttp's parser limits each line and the number of headers; Go limits only the
            # total. Lines may be as long as the whole head (a longer one is 431 too, see
            # handle_error), and the count never binds first (a header line is at least 4 bytes).
            kwargs |= {"max_line_size": max_head, "max_field_size": max_head, "max_headers": max_head // 4 + 1}
        super().__init__(app, keepalive_timeout=idle_timeout if idle_timeout > 0 else _FOREVER, **kwargs)
        self._head_timeout = head_timeout
        self._max_head = max_head

    async def _make_server(self) -> web.Server:
        return _Server(await super()._make_server(), self._head_timeout, self._max_head, self.app.get(FRONT))
