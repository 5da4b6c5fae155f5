"""Health and metadata routes, served on the API port and on ``--dapr-public-port`` (for probes).

``/v1.0/metadata`` lists components by name, type and version only: a metadata value (a key, an
endpoint with credentials) never appears. ``PUT /v1.0/metadata/{key}`` stores extended metadata
as daprd does; the Dapr CLI writes ``cliPID``/``appPID``/``appCommand`` there and retries on 5xx.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

__all__ = ["Describe", "add_routes"]

Describe = Callable[[], dict[str, Any]]
Ready = Callable[[], bool]
DESCRIBE: web.AppKey[Describe] = web.AppKey("describe")
EXTENDED: web.AppKey[dict[str, str]] = web.AppKey("extended")
READY: web.AppKey[Ready] = web.AppKey("ready")


async def _healthz(request: web.Request) -> web.Response:
    ready = request.app.get(READY)
    if ready is not None and not ready():
        return web.Response(status=500, text="not ready")
    return web.Response(status=204)


async def _outbound(request: web.Request) -> web.Response:
    return web.Response(status=204)


async def _metadata(request: web.Request) -> web.Response:
    body = request.app[DESCRIBE]()
    extended: dict[str, str] = request.app[EXTENDED]
    body["extended"] = {**body.get("extended", {}), **extended}
    return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), content_type="application/json")


async def _put_metadata(request: web.Request) -> web.Response:
    request.app[EXTENDED][request.match_info["key"]] = (await request.read()).decode("utf-8", "replace")[:4096]
    return web.Response(status=204)


def add_routes(app: web.Application, describe: Describe, *, extended: dict[str, str], extended_writable: bool,
               ready: Callable[[], bool] | None = None) -> None:
    """``extended`` is shared between the API and the public port, so both report the same."""
    app[DESCRIBE] = describe
    app[EXTENDED] = extended
    if ready is not None:
        app[READY] = ready
    app.router.add_get("/v1.0/healthz", _healthz)
    app.router.add_get("/v1.0/healthz/outbound", _outbound)
    app.router.add_get("/v1.0/metadata", _metadata)
    if extended_writable:
        app.router.add_put("/v1.0/metadata/{key}", _put_metadata)
