"""The HTTPS endpoint sidecars hold open (``:6500``): authenticate, then stream the hub's lines.

One aiohttp route (``stream_protocol.PATH``). The TLS context is built once and reloaded in place when the
certificate changes, so open streams keep running and new handshakes get the new certificate.
Nothing but the JSON error goes out before authentication succeeds.
"""

from __future__ import annotations

import logging
import ssl

from aiohttp import web

from parley_operator import kube
from parley_operator.delivery.auth import Authenticator, Busy, Forbidden, Unauthenticated
from parley_operator.delivery.hub import Hub, NotReady
from parley_operator.metrics import Metrics
from parley_operator.settings import StreamSettings
from parley_sidecar.loading import stream_protocol as protocol

__all__ = ["StreamServer"]

log = logging.getLogger("parley.operator.delivery")


def _error(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response(protocol.encode_error(message), status=status, headers=headers)


class StreamServer:
    def __init__(self, *, hub: Hub, auth: Authenticator, metrics: Metrics, settings: StreamSettings) -> None:
        self._hub = hub
        self._auth = auth
        self._metrics = metrics
        self._settings = settings
        self._runner: web.AppRunner | None = None
        self.port = 0
        """The bound port, once started (useful when ``settings.port`` is 0)."""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else ""
        try:
            identity = await self._auth.authenticate(token)
        except Unauthenticated as exc:
            self._metrics.errors.labels(kind="unauthenticated").inc()
            log.warning("stream refused from %s: %s", request.remote, exc)
            return _error(401, f"unauthenticated: {exc}", **{"WWW-Authenticate": "Bearer"})
        except Forbidden as exc:
            self._metrics.errors.labels(kind="forbidden").inc()
            log.warning("stream refused from %s: %s", request.remote, exc)
            return _error(403, f"forbidden: {exc}")
        except Busy as exc:
            self._metrics.errors.labels(kind="throttled").inc()
            return _error(429, str(exc), **{"Retry-After": "1"})
        except kube.APIError as exc:
            self._metrics.errors.labels(kind="api").inc()
            log.warning("cannot check a sidecar's token: %s", exc)
            return _error(503, "cannot check the token now", **{"Retry-After": "2"})
        try:
            stream = await self._hub.connect(identity)
        except NotReady as exc:
            return _error(503, str(exc), **{"Retry-After": "1"})
        response = web.StreamResponse(headers={"Content-Type": protocol.CONTENT_TYPE, "Cache-Control": "no-store"})
        try:
            await response.prepare(request)
            while (line := await stream.next(self._settings.keepalive)) is not None:
                await response.write(line)
        except (ConnectionResetError, ConnectionError):
            pass
        finally:
            self._hub.disconnect(stream)
            log.info("sidecar %s/%s disconnected", identity.namespace, identity.pod_name)
        return response

    async def start(self, context: ssl.SSLContext | None) -> None:
        app = web.Application()
        app.router.add_get(protocol.PATH, self._handle)
        # No shutdown grace for open streams: sidecars reconnect (to another replica) right away.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._settings.addr, self._settings.port, ssl_context=context,
                           reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]
        log.info("component stream listening on %s:%d (%s)", self._settings.addr, self.port,
                 "TLS" if context else "plain HTTP")

    async def stop(self) -> None:
        self._hub.close_all()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
