"""The Dapr HTTP API on ``--dapr-http-port``: converse alpha1/alpha2, health, metadata, shutdown.

Answers as daprd does: 200 with protojson bodies, ``{"errorCode","message"}`` errors with daprd's
statuses, 401 ``invalid api token`` (plain text, as daprd) when ``DAPR_API_TOKEN`` is set and the
header is wrong, and daprd's fallback answer (404 ``ERR_DIRECT_INVOKE``) for any other route or
method. Handlers only translate; the work is in ``conversation``.

The same port serves OpenAI's Chat Completions API under ``/v1/`` (``api/openai_http.py``); there
the guard also takes the token as ``Authorization: Bearer`` and answers refusals in OpenAI's shape.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import hdrs, web
from google.protobuf.message import Message

from parley_sidecar import errors, tracing
from parley_sidecar.api import caller_timeout, connections, dapr_sse, metadata, openai_http, public, surface, wire
from parley_sidecar.conversation import alpha1, alpha2
from parley_sidecar.conversation.pipeline import Pipeline
from parley_sidecar.dapr_proto import ai_pb2
from parley_sidecar.metrics import Metrics

__all__ = ["PIPELINE", "build_app"]

log = logging.getLogger("parley.http")

PIPELINE = web.AppKey("pipeline", Pipeline)
METRICS = surface.METRICS  # set: the API app counts its own requests (surface.install leaves it)
TOKEN = web.AppKey("api_token", str)
MAX_BODY = web.AppKey("max_body_size", int)
Shutdown = Callable[[bool], None]
"""Asks the sidecar to shut down (True: daprd's ``dapr-force-shutdown``, exit 1 at once)."""
SHUTDOWN: web.AppKey[Shutdown] = web.AppKey("shutdown")

_JSON = "application/json"
_FALLBACK = wire.error_body(
    "ERR_DIRECT_INVOKE", "failed getting app id either from the URL path or the header dapr-app-id"
)
_EXEMPT = frozenset({"/v1.0/healthz", "/v1.0/healthz/outbound"})
Handler = surface.Handler


def _metric_path(request: web.Request) -> str:
    """The route, with the component name only when it names a loaded component (no user text)."""
    name = request.get(public.MATCH, request.match_info).get("name")
    return _named(surface.route_path(request), name, request.app[PIPELINE])


def _named(route: str, name: str | None, pipeline: Pipeline) -> str:
    """``route`` with ``{name}`` filled in only when ``name`` is a loaded component's."""
    if name is not None and pipeline.store.get(name) is not None:
        return route.replace("{name}", name)
    return route


def _record(request: web.BaseRequest, metrics: Metrics, path: str, status: int, started: float) -> None:
    """One API request in the metrics and, when it is on, the API log."""
    elapsed = (time.perf_counter() - started) * 1000
    metrics.http(request.method, path, status, elapsed)
    if metrics.api_log is not None:
        metrics.api_log.http(request.method, path, status, elapsed, request.headers.get("User-Agent", ""))


def _invalid_token() -> web.Response:
    return web.Response(status=401, text="invalid api token\n")  # Go's http.Error, as daprd


def _token_ok(request: web.Request, token: str, openai: bool) -> bool:
    """daprd's ``dapr-api-token`` header; on OpenAI's routes also ``Authorization: Bearer``, which
    is what OpenAI's SDKs send."""
    given = request.headers.get("dapr-api-token", "")
    if hmac.compare_digest(given.encode(), token.encode()):
        return True
    if not openai:
        return False
    scheme, _, bearer = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(bearer.strip().encode(), token.encode())


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Token, daprd's answers for unmatched paths, metrics, and no exception let out (see ``surface``:
    the same duties as its middleware, in one layer so the hot path pays for one)."""
    started = time.perf_counter()
    status = surface.CLIENT_GONE
    try:
        token = request.app[TOKEN]
        # OpenAI's API: its header, its shapes ("/v1/../v1.0/metadata" is the Dapr route it cleans to)
        cleaned = public.clean_path(request.path)
        openai = request.path.startswith(openai_http.PREFIX) and cleaned.startswith(openai_http.PREFIX)
        if token and cleaned not in _EXEMPT and not _token_ok(request, token, openai):
            status = 401
            return openai_http.unauthorized() if openai else _invalid_token()
        try:
            response = await handler(request)
        except web.HTTPRequestEntityTooLarge:
            too_large = errors.BodyTooLarge(request.app[MAX_BODY])
            response = openai_http.error_response(too_large) if openai else surface.error_response(too_large)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
            if openai:
                status = 404
                return openai_http.not_found(request)
            rerouted = await public.reroute(request)
            response = rerouted if rerouted is not None else web.Response(status=404, body=_FALLBACK,
                                                                          content_type=_JSON)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except asyncio.CancelledError:  # the client went away (handler cancellation): counted as 499
        raise
    except Exception:
        status = 500
        return surface.unexpected(request)
    finally:
        _record(request, request.app[METRICS], _metric_path(request), status, started)


_Decode = tuple[Callable[[], Message], Callable[[Pipeline, Any], Awaitable[Message]], bool]
"""How one API version's converse is served: its request message, its rules, plain-string inputs."""
_ALPHA1: _Decode = (ai_pb2.ConversationRequest, alpha1.converse, True)
_ALPHA2: _Decode = (ai_pb2.ConversationRequestAlpha2, alpha2.converse, False)


async def _answer(request: web.Request, name: str, pipeline: Pipeline, version: _Decode) -> web.Response:
    """Decode, pipeline, encode; every failure but aiohttp's own answers becomes daprd's JSON."""
    message, run, plain_inputs = version
    try:
        req: Any = wire.decode(await request.read(), message(), query_metadata=wire.query_metadata(request.query),
                               plain_inputs=plain_inputs)
        req.name = name
        timeout = caller_timeout.dapr_parse(request.headers.get(caller_timeout.HEADER), name)
        if timeout is None:  # the common request: no timer on the hot path
            body = wire.encode(await run(pipeline, req))
        else:
            body = wire.encode(await caller_timeout.within(timeout, run(pipeline, req), name))
    except errors.ParleyError as exc:
        return surface.error_response(exc)
    except web.HTTPException:  # aiohttp's own answers (413 from read()) are the guard's to translate
        raise
    except Exception:  # a bug, or an answer that cannot be written: daprd's invoke error, not a 500 page
        log.exception("conversation with component %r failed unexpectedly", name)
        return surface.error_response(errors.InvokeError(name, "internal error (see the sidecar log)"))
    return web.Response(body=body, content_type=_JSON)


def _converse(version: _Decode) -> Handler:
    """The routed handler of one API version (paths that need cleaning, ``?metadata.*`` queries)."""

    async def handle(request: web.Request) -> web.Response:
        return await _answer(request, public.param(request, "name"), request.app[PIPELINE], version)

    return handle


_HOT_PATH = re.compile(r"/v1\.0-alpha([12])/conversation/([A-Za-z0-9_.~-]+)/converse")
"""A converse path as clients send it: nothing to clean, decode or route (no ``%``, ``//``, dot
segment or query), so the name is the raw text and the route is known without the router."""
_HOT_ROUTES = {"1": ("/v1.0-alpha1/conversation/{name}/converse", _ALPHA1),
               "2": ("/v1.0-alpha2/conversation/{name}/converse", _ALPHA2)}


def _front(app: web.Application) -> connections.Front:
    """The API port's first handler: a converse request (and OpenAI's chat completion) as clients
    send it is answered here, with the guard's duties (token, metrics, API log, nothing let out),
    without the router and the middleware chain, which were a tenth of the sidecar's CPU per echo
    request and ~0.2 ms of a stream's time to first token; anything else
    (other routes, paths to clean, queries, ``Expect``, an unknown method) goes to the app, as before."""
    pipeline, metrics, token, max_body = app[PIPELINE], app[METRICS], app[TOKEN], app[MAX_BODY]
    routed = app._handle

    async def serve(request: web.Request, route: str, name: str | None, openai: bool,
                    answer: Callable[[], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        """``answer`` with the guard's duties, in the API's own shapes (Dapr's or OpenAI's)."""
        started = time.perf_counter()
        status = surface.CLIENT_GONE
        shape = openai_http.error_response if openai else surface.error_response
        try:
            if token and not _token_ok(request, token, openai):
                status = 401
                return openai_http.unauthorized() if openai else _invalid_token()
            try:
                response = await answer()
            except web.HTTPRequestEntityTooLarge:
                response = shape(errors.BodyTooLarge(max_body))
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:  # the client went away (handler cancellation): counted as 499
            raise
        except Exception:
            status = 500
            log.exception("unexpected error answering POST %s", route)
            return shape(errors.Internal())
        finally:
            _record(request, metrics, _named(route, name, pipeline), status, started)

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        assert isinstance(request, web.Request)  # the app's request factory made it
        hot = _HOT_PATH.fullmatch(request.raw_path) if request.method == "POST" else None
        if hot is None or hot[2] in (".", "..") or hdrs.EXPECT in request.headers:
            if (request.raw_path == openai_http.CHAT_PATH and request.method == "POST"
                    and hdrs.EXPECT not in request.headers):
                return await serve(request, openai_http.CHAT_PATH, None, True,
                                   lambda: openai_http.answer_chat(request, pipeline))
            return await routed(request)
        route, version = _HOT_ROUTES[hot[1]]
        name = hot[2]
        return await serve(request, route, name, False, lambda: _answer(request, name, pipeline, version))

    return handle


async def _shutdown(request: web.Request) -> web.StreamResponse:
    """``POST /v1.0/shutdown``: daprd's 204 with no body, written out before the shutdown starts
    (in-flight requests then finish, as on SIGTERM). ``dapr-force-shutdown: true`` exits at once."""
    force = request.headers.get("dapr-force-shutdown", "").lower() == "true"
    response = web.Response(status=204)
    await response.prepare(request)
    await response.write_eof()
    request.app[SHUTDOWN](force)
    return response


def build_app(pipeline: Pipeline, metrics: Metrics, *, api_token: str, max_body_size: int,
              describe: public.Describe, extended: metadata.ExtendedMetadata,
              shutdown: Shutdown | None = None) -> web.Application:
    app = web.Application(middlewares=[_guard], client_max_size=max_body_size)
    app[PIPELINE] = pipeline
    app[METRICS] = metrics
    app[TOKEN] = api_token
    app[MAX_BODY] = max_body_size
    app[surface.PATH_LABEL] = _metric_path
    surface.install_tracing(app)
    front = _front(app)  # traced, the span covers every request, the hot ones too
    app[connections.FRONT] = front if tracing.current() is None else surface.traced(front)
    app.router.add_post(_HOT_ROUTES["1"][0], _converse(_ALPHA1))
    app.router.add_post(_HOT_ROUTES["2"][0], _converse(_ALPHA2))
    app.router.add_post(dapr_sse.ROUTE, dapr_sse.handler(pipeline))  # parley's streaming extension
    openai_http.add_routes(app, pipeline)
    public.add_routes(app, describe, extended=extended, extended_writable=True)
    if shutdown is not None:
        app[SHUTDOWN] = shutdown
        app.router.add_post("/v1.0/shutdown", _shutdown)
    return app
