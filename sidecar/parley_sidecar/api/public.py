"""Health and metadata routes, served on the API port and on ``--dapr-public-port`` (for probes).

``/v1.0/metadata`` is :func:`metadata.http_body` of the same description gRPC ``GetMetadata``
answers: components by name, type and version only, a metadata value (a key, an endpoint with
credentials) never appears. ``PUT /v1.0/metadata/{key}`` stores extended metadata as daprd does;
the Dapr CLI writes ``cliPID``/``appPID``/``appCommand`` there and retries on 5xx. Unlike daprd's,
that store is bounded (:data:`MAX_EXTENDED_KEYS`, :data:`MAX_EXTENDED_BYTES`, shared with gRPC
``SetMetadata``): a PUT beyond the bounds gets 400 ``ERR_METADATA_LIMIT`` and changes nothing.

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
from parley_sidecar.api import metadata, surface
from parley_sidecar.api.metadata import MAX_EXTENDED_BYTES, MAX_EXTENDED_KEYS
from parley_sidecar.dapr_proto import metadata_pb2

__all__ = ["MAX_EXTENDED_BYTES", "MAX_EXTENDED_KEYS", "Describe", "add_routes", "clean_path", "param", "reroute"]

Describe = Callable[[], metadata_pb2.GetMetadataResponse]
Ready = Callable[[], bool]
DESCRIBE: web.AppKey[Describe] = web.AppKey("describe")
EXTENDED: web.AppKey[metadata.ExtendedMetadata] = web.AppKey("extended")
READY: web.AppKey[Ready] = web.AppKey("ready")
MATCH = surface.MATCH

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
    body = metadata.http_body(request.app[DESCRIBE]())
    return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), content_type="application/json")


async def _put_metadata(request: web.Request) -> web.Response:
    value = (await request.read()).decode("utf-8", "replace")
    try:
        request.app[EXTENDED].set(param(request, "key"), value)
    except errors.MetadataFull as exc:
        return surface.error_response(exc)
    return web.Response(status=204)


def add_routes(app: web.Application, describe: Describe, *, extended: metadata.ExtendedMetadata,
               extended_writable: bool, ready: Callable[[], bool] | None = None) -> None:
    """``extended`` is the store ``describe`` reads; the API port writes it (and gRPC ``SetMetadata``)."""
    app[DESCRIBE] = describe
    app[EXTENDED] = extended
    if ready is not None:
        app[READY] = ready
    app.router.add_get("/v1.0/healthz", _healthz, allow_head=False)
    app.router.add_get("/v1.0/healthz/outbound", _outbound, allow_head=False)
    app.router.add_get("/v1.0/metadata", _metadata, allow_head=False)
    if extended_writable:
        # Any key but a slash, braces included (aiohttp's default pattern excludes them; chi's does not).
        app.router.add_put("/v1.0/metadata/{key:[^/]+}", _put_metadata)
    else:  # the public port: no API middleware of its own, answer as Go's mux does
        app.middlewares.append(_go_mux)
