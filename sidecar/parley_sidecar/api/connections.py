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
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web, web_protocol

from parley_sidecar import errors
from parley_sidecar.api import wire

__all__ = ["Runner"]


_parse = web_protocol.RequestHandler.data_received
"""Called directly, not through ``super()``: this runs for every read on every connection."""


class _Handler(web_protocol.RequestHandler):
    """aiohttp's connection protocol, plus the head deadline."""

    __slots__ = ("_head_timeout", "_head_timer")

    def __init__(self, manager: web.Server, *, head_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._head_timeout = head_timeout
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        _parse(self, data)
        if self._messages:  # a complete head (or a parse error to answer): no deadline while it is served
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
        elif self._head_timer is None and self._waiter is not None:
            self._arm()  # the start of another request on an idle keep-alive connection

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """aiohttp's answer to a request its parser refused (an unknown method, a line too long, bad
        framing), as daprd-shaped JSON instead of aiohttp's text page. Such a request never reached
        a route, the token check included. Errors of handlers never get here (``surface``)."""
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        detail = errors.truncate(" ".join((message or type(exc).__name__).split()), 200)
        response = web.Response(status=400, content_type="application/json",
                                body=wire.error_body("ERR_MALFORMED_REQUEST", f"malformed HTTP request: {detail}"))
        response.force_close()
        return response

    def _arm(self) -> None:
        if self._head_timeout > 0:
            self._head_timer = self._loop.call_later(self._head_timeout, self._head_late)

    def _head_late(self) -> None:
        self._head_timer = None
        self.force_close()


class _Server(web.Server):
    """aiohttp's protocol factory, making :class:`_Handler` connections."""

    def __init__(self, plain: web.Server, head_timeout: float) -> None:
        # ``_kwargs`` are the RequestHandler options aiohttp collected (keepalive_timeout, debug …).
        super().__init__(plain.request_handler, request_factory=plain.request_factory,
                         handler_cancellation=plain.handler_cancellation, **plain._kwargs)
        self._head_timeout = head_timeout

    def __call__(self) -> web_protocol.RequestHandler:
        return _Handler(self, loop=self._loop, head_timeout=self._head_timeout, **self._kwargs)


_FOREVER = 365 * 24 * 3600.0
"""aiohttp reads a keep-alive timeout of 0 as "close at once"; ours means "no limit"."""


class Runner(web.AppRunner):
    """An ``AppRunner`` whose connections must send each request head within ``head_timeout``
    seconds and are closed after ``idle_timeout`` seconds between requests (0: no limit); other
    keywords are ``AppRunner``'s."""

    __slots__ = ("_head_timeout",)

    def __init__(self, app: web.Application, *, head_timeout: float, idle_timeout: float, **kwargs: Any) -> None:
        super().__init__(app, keepalive_timeout=idle_timeout if idle_timeout > 0 else _FOREVER, **kwargs)
        self._head_timeout = head_timeout

    async def _make_server(self) -> web.Server:
        return _Server(await super()._make_server(), self._head_timeout)
