"""What every HTTP port does around its routes: count each request, and let no exception out.

Each request is counted in ``dapr_http_server_request_count`` / ``dapr_http_server_latency`` with
the status the client got (daprd counts its API and public routers the same way). An exception
that is not one of aiohttp's own HTTP answers is logged here, once, with its traceback, and
answered as daprd answers an internal error: 500 ``{"errorCode":"ERR_INTERNAL",…}`` — never
aiohttp's ``text/plain`` "Server got itself in trouble". A request whose client went away before
the answer is counted with status 499 (nginx's "client closed request": no status was sent).

The API port's own middleware (``http._guard``) does the same duties itself (with its own path
label, :data:`PATH_LABEL`, and API logging), so that port pays for one middleware, not two; the
public and metrics ports get :func:`install`. With tracing on, the API port's front handler is
wrapped in :func:`traced` and its answers get :func:`trace_headers`; with it off neither is installed.
No routes here.
"""

from __future__ import annotations

import asyncio
import http
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from parley_sidecar import errors, tracing
from parley_sidecar.api import wire
from parley_sidecar.api.connections import Front
from parley_sidecar.metrics import Metrics

__all__ = ["CLIENT_GONE", "MATCH", "PATH_LABEL", "error_response", "install", "install_tracing", "route_path", "traced",
           "unexpected"]

log = logging.getLogger("parley.http")

CLIENT_GONE = 499
"""The status counted for a request whose client disconnected before it was answered."""

PathLabel = Callable[[web.Request], str]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
METRICS: web.AppKey[Metrics] = web.AppKey("surface_metrics", Metrics)
PATH_LABEL: web.AppKey[PathLabel] = web.AppKey("surface_path_label")
"""How an app names a request's path in metrics; :func:`route_path` when unset."""
MATCH = "parley.match"
"""Request key: the route match of a request served under its cleaned path (``public.reroute``)."""
TRACE: web.RequestKey[Any] = web.RequestKey("parley_trace", object)
"""The call's scope (``tracing_otel.ServerScope`` or ``tracing.UnsampledScope``) of a request answered with an
``HTTPException``: aiohttp prepares that answer after :func:`traced` has left the call."""


def route_path(request: web.Request) -> str:
    """The matched route's template, also for a rerouted request (never the raw path: user text)."""
    resource = request.get(MATCH, request.match_info).route.resource
    return (resource.canonical if resource is not None else "") or "/unmatched"


def _record(request: web.Request, metrics: Metrics, status: int, started: float) -> None:
    label = request.app.get(PATH_LABEL, route_path)
    metrics.http(request.method, label(request), status, (time.perf_counter() - started) * 1000)


def error_response(exc: errors.ParleyError) -> web.Response:
    """daprd's JSON error answer for ``exc``."""
    return web.Response(status=exc.wire.http_status, body=wire.error_body(exc.wire.code, exc.message),
                        content_type="application/json")


def unexpected(request: web.Request) -> web.Response:
    """Log the exception being handled, with its traceback, and answer daprd's internal error.

    Call only from an ``except`` block: the traceback logged is the one in flight."""
    log.exception("unexpected error answering %s %s", request.method, request.app.get(PATH_LABEL, route_path)(request))
    return error_response(errors.Internal())


@web.middleware
async def _observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = CLIENT_GONE
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:  # aiohttp's own answers (404 of an unknown path …) stay as they are
        status = exc.status
        raise
    except asyncio.CancelledError:
        raise
    except Exception:
        status = 500
        return unexpected(request)
    finally:
        _record(request, request.app[METRICS], status, started)


def install(app: web.Application, metrics: Metrics) -> None:
    """Put the counting and catching middleware outermost on ``app`` (before it is frozen). An app
    that already has :data:`METRICS` counts its own requests (the API app) and is left alone."""
    if METRICS in app:
        return
    app[METRICS] = metrics
    app.middlewares.insert(0, _observe)


def traced(front: Front) -> Front:
    """``front`` (the API app's first handler, which sees every request: ``http._front``) with one
    server span per API call, named as daprd names it (the request's path), joined to the caller's
    ``traceparent``; health checks get none (as daprd). The span ends when the answer has been
    written by the handler, so a stream's span lasts as long as the stream. Installed only with
    tracing on: off, the front handler is called directly."""

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        tracer = tracing.current()
        if tracer is None or "/healthz" in request.raw_path:
            return await front(request)
        if "traceparent" not in request.headers and random.random() >= tracer.plan.sampling_rate:
            # A new trace that the rate does not sample (99 calls in 100 at 0.01): its ids, in the
            # answer, and nothing recorded. Inline rather than through the tracer's scope methods:
            # 3,000 instructions less of every such request (docs/tracing.md, round 6). An answer
            # its handler prepared (a stream) got its traceparent then (trace_headers): no check
            # of ``prepared`` (a property: 1,100 instructions) is needed to leave it alone.
            unsampled = tracing.UnsampledScope()
            try:
                answer = await front(request)
                headers = answer.headers
                if "traceparent" not in headers:
                    headers["traceparent"] = unsampled.traceparent
                return answer
            except web.HTTPException:
                request[TRACE] = unsampled  # aiohttp answers it once this returns: trace_headers finds the call here
                raise
            finally:
                unsampled.close()
        scope = tracer.http_server(request.method, lambda: request.path, request.headers)
        response: web.StreamResponse | None = None
        status = CLIENT_GONE
        try:
            response = await front(request)
            headers = response.headers
            if "traceparent" not in headers:  # a prepared answer (a stream) has it already
                scope.answer(headers)  # the hot path's answers skip the signal below
            return response
        except web.HTTPException as exc:
            status = exc.status
            request[TRACE] = scope  # aiohttp answers it once this returns: trace_headers finds the call here
            raise
        finally:
            if not scope.sampled:  # a caller's unsampled trace: nothing to build, nothing recorded
                scope.close(dict, _no_error)
            else:
                if response is not None:
                    status = response.status
                scope.close(lambda: {"dapr.status_code": str(status), "http.response.status_code": status},
                            lambda: _status_text(status) if status >= 400 else None)

    return handle


def _no_error() -> None:
    return None


def _status_text(status: int) -> str:
    """daprd's span status for an error answer: ``Code(404): Not Found``."""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = "Unknown"
    return f"Code({status}): {phrase}"


async def trace_headers(request: web.Request, response: web.StreamResponse) -> None:
    """daprd answers with the ``traceparent`` (and ``tracestate``) of its span: so does parley, also
    on a stream (prepared by its handler, inside the call: ``tracing.CALL``)."""
    scope = tracing.CALL.get() or request.get(TRACE)
    if scope is not None and "traceparent" not in response.headers:
        scope.answer(response.headers)


def install_tracing(app: web.Application) -> None:
    """Answer the ``traceparent`` of ``app``'s spans when tracing is on (nothing is added when it is
    off); the spans themselves come from :func:`traced` around the app's front handler."""
    if tracing.current() is None:
        return
    app.on_response_prepare.append(trace_headers)
