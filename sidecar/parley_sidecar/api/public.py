"""Health and metadata routes, served on the API port and on ``--dapr-public-port`` (for probes).

``/v1.0/metadata`` lists components by name, type and version only: a metadata value (a key, an
endpoint with credentials) never appears. ``PUT /v1.0/metadata/{key}`` stores extended metadata
as daprd does; the Dapr CLI writes ``cliPID``/``appPID``/``appCommand`` there and retries on 5xx.
Unlike daprd's, that store is bounded (:data:`MAX_EXTENDED_KEYS`, :data:`MAX_EXTENDED_BYTES`): a
PUT beyond the bounds gets 400 ``ERR_METADATA_LIMIT`` and changes nothing.

Paths are routed as daprd's router does: a path that matches only once cleaned (``//`` merged, a
trailing ``/`` dropped, dot segments resolved) is served as the clean one. On the public port,
unknown paths and methods get Go's plain ``404 page not found`` / empty 405, as daprd's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from parley_sidecar import errors
from parley_sidecar.api import surface

__all__ = ["MAX_EXTENDED_BYTES", "MAX_EXTENDED_KEYS", "Describe", "add_routes", "clean_path", "param", "reroute"]

Describe = Callable[[], dict[str, Any]]
Ready = Callable[[], bool]
DESCRIBE: web.AppKey[Describe] = web.AppKey("describe")
EXTENDED: web.AppKey[dict[str, str]] = web.AppKey("extended")
READY: web.AppKey[Ready] = web.AppKey("ready")
MATCH = surface.MATCH

MAX_EXTENDED_KEYS = 100
"""Extended metadata keys kept. The Dapr CLI writes three; daprd keeps any number, so 50,000 PUTs
grew a sidecar to 473 MB."""
MAX_EXTENDED_BYTES = 64 * 1024
"""UTF-8 bytes of all extended metadata keys and values together (in memory: at most 4 bytes a
character, so about 256 KiB plus 100 small dict entries in the worst case)."""


def clean_path(raw_path: str) -> str:
    """chi's CleanPath and StripSlashes, as daprd routes: ``/a//b/./c/`` → ``/a/b/c``."""
    parts: list[str] = []
    for segment in raw_path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts:
                parts.pop()
            continue
        parts.append(segment)
    return "/" + "/".join(parts)


def param(request: web.Request, key: str) -> str:
    """A path parameter, also for a request served by :func:`reroute`."""
    match = request.get(MATCH, request.match_info)
    return str(match[key])


async def reroute(request: web.Request) -> web.StreamResponse | None:
    """Serve a request that matched no route under its cleaned path, if that one matches."""
    url = request.rel_url
    cleaned = clean_path(url.raw_path)
    if cleaned == url.raw_path:
        return None
    clone = request.clone(rel_url=url.build(path=cleaned, query_string=url.raw_query_string, encoded=True))
    match = await request.app.router.resolve(clone)
    if match.http_exception is not None:
        return None
    clone[MATCH] = request[MATCH] = match
    return await match.handler(clone)


@web.middleware
async def _go_mux(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as exc:
        rerouted = await reroute(request)
        if rerouted is not None:
            return rerouted
        if isinstance(exc, web.HTTPMethodNotAllowed):
            return web.Response(status=405)
        return web.Response(status=404, text="404 page not found\n")
    return response


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
    key = param(request, "key")
    value = (await request.read()).decode("utf-8", "replace")
    extended = request.app[EXTENDED]
    problem = _no_room(extended, key, value)
    if problem:
        return surface.error_response(errors.MetadataFull(key, problem))
    extended[key] = value
    return web.Response(status=204)


def _size(key: str, value: str) -> int:
    return len(key.encode("utf-8", "replace")) + len(value.encode("utf-8", "replace"))


def _no_room(extended: dict[str, str], key: str, value: str) -> str:
    """Why ``key = value`` does not fit in ``extended`` (empty when it does). At most 100 entries
    are summed, so each PUT pays little and no running total can drift."""
    if key not in extended and len(extended) >= MAX_EXTENDED_KEYS:
        return f"extended metadata already holds {MAX_EXTENDED_KEYS} keys, the most kept"
    others = sum(_size(k, v) for k, v in extended.items() if k != key)
    if others + _size(key, value) > MAX_EXTENDED_BYTES:
        return f"keys and values would exceed {MAX_EXTENDED_BYTES} bytes in all"
    return ""


def add_routes(app: web.Application, describe: Describe, *, extended: dict[str, str], extended_writable: bool,
               ready: Callable[[], bool] | None = None) -> None:
    """``extended`` is shared between the API and the public port, so both report the same."""
    app[DESCRIBE] = describe
    app[EXTENDED] = extended
    if ready is not None:
        app[READY] = ready
    app.router.add_get("/v1.0/healthz", _healthz, allow_head=False)
    app.router.add_get("/v1.0/healthz/outbound", _outbound, allow_head=False)
    app.router.add_get("/v1.0/metadata", _metadata, allow_head=False)
    if extended_writable:
        app.router.add_put("/v1.0/metadata/{key}", _put_metadata)
    else:  # the public port: no API middleware of its own, answer as Go's mux does
        app.middlewares.append(_go_mux)
