"""One HTTP call to a provider, and the one place where upstream failures become ``ProviderError``.

Every provider module posts JSON through :func:`post_json` on its component's own
``aiohttp.ClientSession`` (one bounded pool per component, :class:`ComponentSession`), reading at
most ``maxResponseBytes`` of the answer. This module maps what can go wrong
on the wire to the error hierarchy of ``parley_sidecar.errors`` (as httpx's
``map_httpcore_exceptions`` does, at one boundary, most specific first):

- no answer (refused, reset, DNS) → ``ProviderUnavailable`` (retryable)
- no answer in time → ``ProviderTimeout`` (retryable)
- 401/403 → "the provider rejected the API key (401)"; the upstream text is dropped because
  providers echo parts of the key in it
- 408, 429, 5xx (not 501) → retryable ``ProviderError`` carrying ``Retry-After`` when sent
- any other status → ``ProviderError`` with the upstream's own error message, truncated
- a 2xx body that is not JSON → ``ProviderError`` ("malformed response")
- an answer over ``maxResponseBytes`` → ``ProviderError`` ("answer too large"), read no further

:func:`open_stream` opens a streamed answer through the same mapping and hands its body over as
it arrives (:class:`StreamBody`): ``timeout`` bounds the wait for the first piece only, the whole
body is capped by ``maxResponseBytes`` too, and a body cut short is a ``ProviderError``. Leaving
the stream early closes the connection, so the provider stops working for a caller who left.

Secrets handed in ``secrets`` are replaced by ``***`` in every message built here, so an
upstream that echoes a key cannot leak it to a client or a log. Nothing here logs a body.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import ipaddress
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

from parley_sidecar import errors, tls, tracing
from parley_sidecar.components import base

__all__ = [
    "RETRYABLE_STATUSES",
    "ComponentSession",
    "ResponseTooLarge",
    "StreamBody",
    "Upstream",
    "encode",
    "error_for_status",
    "one_line",
    "open_stream",
    "parse_retry_after",
    "post_json",
    "redact",
    "upstream_message",
]

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 529})
"""Worth another attempt: rate limits, overload (Anthropic's 529) and transient server errors.
501 and 505 are not: the server will never support the request."""

_MAX_MESSAGE = 300


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
"""Made once: ``json.dumps`` with options builds a new encoder on every call (every provider request)."""


def encode(body: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON, as the Go clients daprd uses send it."""
    return _COMPACT.encode(body).encode()


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret of a useful length by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def one_line(text: str, secrets: Iterable[str]) -> str:
    """An upstream's text for a message: its whitespace runs as single spaces, secrets redacted."""
    return redact(" ".join(text.split()), secrets)


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    raw_ms = headers.get("retry-after-ms")
    if raw_ms:
        try:
            return max(0.0, float(raw_ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("Retry-After")
    if not raw:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def upstream_message(raw: bytes) -> str:
    """The upstream's own error text, from the error shapes providers use.

    OpenAI and compatibles ``{"error": {"message": …}}``, Anthropic ``{"type": "error", "error":
    {…}}``, Bedrock ``{"message": …}``, Hugging Face ``{"error": "…"}``, Gemini's OpenAI layer a
    list of those, FastAPI-style servers ``{"detail": …}``. Anything else: the body's first line.
    """
    try:
        data: Any = json.loads(raw)
    except ValueError:
        text = raw.decode("utf-8", "replace").strip()
        return text.splitlines()[0] if text else ""
    if isinstance(data, list) and data:
        data = data[0]
    if isinstance(data, dict):
        for key in ("error", "message", "Message", "detail"):
            value = data.get(key)
            if isinstance(value, dict):
                inner = value.get("message") or value.get("Message")
                if isinstance(inner, str):
                    return inner
            if isinstance(value, str) and value:
                return value
            if isinstance(value, list) and value:
                return json.dumps(value, ensure_ascii=False)[:_MAX_MESSAGE]
    return ""


def error_for_status(
    provider: str,
    status: int,
    raw: bytes,
    headers: Mapping[str, str],
    *,
    secrets: Iterable[str] = (),
    auth_detail: bool = False,
    credential: str = "API key",
) -> errors.ProviderError:
    """The error a non-2xx answer becomes. ``auth_detail`` keeps the upstream text on 401/403
    (for AWS, whose messages never carry the secret); ``credential`` names what was rejected."""
    detail = one_line(upstream_message(raw), secrets)
    if len(detail) > _MAX_MESSAGE:
        detail = detail[:_MAX_MESSAGE] + "…"
    if status in (401, 403):
        reason = f"the provider rejected the {credential} ({status})"
        if auth_detail and detail:
            reason += f": {detail}"
        return errors.ProviderError(reason, status=status)
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Too Many Requests" if status == 429 else ("Overloaded" if status == 529 else "")
    head = f"{provider} returned {status} {phrase}".rstrip()
    retryable = status in RETRYABLE_STATUSES or (status >= 500 and status not in (501, 505))
    return errors.ProviderError(
        f"{head}: {detail}" if detail else head,
        status=status,
        retryable=retryable,
        retry_after=parse_retry_after(headers) if retryable else None,
    )


class ResponseTooLarge(errors.ProviderError):
    """The upstream's answer is larger than the component's ``maxResponseBytes``."""

    def __init__(self, provider: str, limit: int, *, what: str = "answer") -> None:
        super().__init__(f"{provider} {what} is larger than maxResponseBytes ({limit} bytes); not read further",
                         retryable=False)


async def _read_capped(resp: aiohttp.ClientResponse, limit: int, provider: str) -> bytes:
    """The body, refusing it as soon as it is known to pass ``limit`` (from Content-Length, or
    while reading), so a huge answer costs at most ``limit`` bytes of memory."""
    if resp.content_length is not None and resp.content_length > limit:
        raise ResponseTooLarge(provider, limit)
    body = bytearray()
    async for chunk in resp.content.iter_chunked(64 << 10):
        body += chunk
        if len(body) > limit:
            raise ResponseTooLarge(provider, limit)
    return bytes(body)


def _where(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


class Upstream(NamedTuple):
    """Where one provider call goes and how its failures read: what :func:`post_json` and
    :func:`open_stream` both need, said once per call by the component."""

    session: aiohttp.ClientSession
    provider: str
    max_bytes: int
    """``maxResponseBytes``: the most bytes of the answer read."""
    proxy: str | None = None
    secrets: Iterable[str] = ()
    """Redacted from any upstream text that reaches a client or a log."""
    auth_detail: bool = False
    credential: str = "API key"


async def post_json(to: Upstream, url: Any, data: bytes, *, headers: Mapping[str, str],
                    timeout: float | None) -> Any:
    """POST ``data`` (JSON bytes) and return the decoded JSON answer, or raise ProviderError.

    ``url`` is a string or a ``yarl.URL`` (Bedrock passes an already-encoded one, because its
    signature covers the exact path bytes). At most ``to.max_bytes`` of the answer are read.
    """
    session, provider, max_bytes, proxy, secrets, auth_detail, credential = to
    # The headers as they are (a component's prebuilt CIMultiDict skips aiohttp's conversion),
    # copied only to add traceparent when tracing is on.
    sent = headers if tracing.current() is None else tracing.outgoing(headers)
    try:
        async with session.post(url, data=data, headers=sent, timeout=_client_timeout(timeout),
                                proxy=proxy) as resp:
            length = resp.content_length
            if length is not None and length <= max_bytes and "Content-Encoding" not in resp.headers:
                # The parser stops at Content-Length, so one read is capped (a compressed body's
                # length says nothing of what it inflates to: that one is counted as it is read).
                raw = await resp.read()
            else:
                raw = await _read_capped(resp, max_bytes, provider)
            status = resp.status
            resp_headers = resp.headers
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise _unanswered(exc, provider, url, timeout) from None
    if status >= 400 or status < 200:
        raise error_for_status(provider, status, raw, resp_headers, secrets=secrets, auth_detail=auth_detail,
                               credential=credential)
    try:
        return json.loads(raw)
    except ValueError:
        raise errors.ProviderError(
            f"{provider} returned a malformed response ({status}, body is not JSON)", status=status
        ) from None


@functools.lru_cache(maxsize=64)
def _client_timeout(timeout: float | None) -> aiohttp.ClientTimeout:
    """One (immutable) ``ClientTimeout`` per value: components pass their policy's few timeouts."""
    return aiohttp.ClientTimeout(total=timeout if timeout else None)


def _unanswered(exc: BaseException, provider: str, url: Any, timeout: float | None) -> errors.ProviderError:
    """What a failure to get (or read) an answer becomes."""
    if isinstance(exc, TimeoutError):
        return errors.ProviderTimeout(timeout or 0.0)
    if isinstance(exc, aiohttp.ClientResponseError):
        # A response that could not be read (bad framing): nothing of it is trustworthy.
        return errors.ProviderUnavailable(f"{provider} sent an unreadable response ({type(exc).__name__})")
    return errors.ProviderUnavailable(f"cannot reach {provider} at {_where(str(url))}: {_describe(exc)}")


class StreamBody:
    """The body of a streamed answer, read as it arrives. Providers parse it (``sse``,
    ``eventstream``); this class only reads, caps and maps failures. Slotted: one lives as long
    as its stream stays open."""

    __slots__ = ("_deadline", "_read", "_resp", "_timeout", "max_bytes", "provider")

    def __init__(self, resp: aiohttp.ClientResponse, *, provider: str, max_bytes: int,
                 deadline: float | None, timeout: float | None) -> None:
        self.provider = provider
        self.max_bytes = max_bytes
        """``maxResponseBytes``: the most bytes read from this body (one event is at most this too)."""
        self._resp = resp
        self._deadline = deadline
        self._timeout = timeout
        self._read = 0

    def arrived(self) -> None:
        """The first piece is on its way to the caller: the first-piece timeout stops here (the
        pipeline bounds the gaps between pieces itself)."""
        self._deadline = None

    async def read(self) -> bytes:
        """The next bytes as they arrived; b"" at the end of the body."""
        try:
            if self._deadline is not None:
                async with asyncio.timeout_at(self._deadline):
                    chunk = await self._resp.content.readany()
            else:
                chunk = await self._resp.content.readany()
        except TimeoutError:
            raise errors.ProviderTimeout(self._timeout or 0.0) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise errors.ProviderUnavailable(
                f"{self.provider} stream was cut off mid-answer ({_describe(exc)})") from None
        self._read += len(chunk)
        if self._read > self.max_bytes:
            raise ResponseTooLarge(self.provider, self.max_bytes, what="streamed answer")
        return chunk

    def truncated(self, expected: str) -> errors.ProviderError:
        """The error for a body that ended before ``expected`` (its end-of-stream marker)."""
        return errors.ProviderError(f"{self.provider} stream ended before {expected} (answer cut short)",
                                    retryable=True)


_NO_TIMEOUT = aiohttp.ClientTimeout(total=None)
"""A stream's own: ``open_stream`` bounds the wait for the first piece itself, and nothing else."""


def _is_json(content_type: str) -> bool:
    """Whether a Content-Type names JSON, read from the header as it came: aiohttp's
    ``content_type`` parses it with the email package and keeps the parse on the response, about
    1.5 KB for as long as a stream stays open."""
    return content_type.partition(";")[0].strip().lower() == "application/json"


class open_stream:  # used as a function: ``async with open_stream(...) as body``
    """POST ``data`` and hand over the streamed answer's body, or raise ProviderError as
    :func:`post_json` does for a refused connection or an error status. ``timeout`` bounds
    everything up to the first piece (until :meth:`StreamBody.arrived`). On leaving, the
    connection goes back to the pool when the body was read to its end, and is closed otherwise,
    so the upstream sees a caller who left.

    A class rather than ``contextlib.asynccontextmanager``: that costs a generator, its frame and
    the loop's weak reference to it for as long as the stream stays open (~1 KB per open stream)."""

    __slots__ = ("_args", "_resp")

    def __init__(self, to: Upstream, url: Any, data: bytes, *, headers: Mapping[str, str],
                 timeout: float | None) -> None:
        self._args: tuple[Upstream, Any, bytes, Mapping[str, str], float | None] | None = (
            to, url, data, headers, timeout)
        self._resp: aiohttp.ClientResponse | None = None

    async def __aenter__(self) -> StreamBody:
        assert self._args is not None, "open_stream is entered once"
        to, url, data, headers, timeout = self._args
        session, provider, max_bytes, proxy, secrets, auth_detail, credential = to
        self._args = None  # sent: a long conversation's bytes are not held for as long as the answer streams
        deadline = asyncio.get_running_loop().time() + timeout if timeout else None
        # As post_json: the headers copied only to add traceparent when tracing is on, one
        # ClientTimeout for every call (this all runs before the provider has the request).
        sent = headers if tracing.current() is None else tracing.outgoing(headers)
        try:
            if deadline is None:  # no timer to arm and cancel (the caller's attempt may bound it)
                resp = await session.post(url, data=data, headers=sent, proxy=proxy, timeout=_NO_TIMEOUT)
            else:
                async with asyncio.timeout_at(deadline):
                    resp = await session.post(url, data=data, headers=sent, proxy=proxy, timeout=_NO_TIMEOUT)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _unanswered(exc, provider, url, timeout) from None
        del data
        self._resp = resp
        try:
            status = resp.status
            if status >= 400 or status < 200 or _is_json(resp.headers.get("Content-Type", "")):
                try:
                    async with asyncio.timeout_at(deadline):
                        raw = await _read_capped(resp, max_bytes, provider)
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    raise _unanswered(exc, provider, url, timeout) from None
                if 200 <= status < 400:
                    # A server that ignored "stream": its whole answer (or its error) came as JSON.
                    detail = one_line(upstream_message(raw), secrets)[:_MAX_MESSAGE]
                    raise errors.ProviderError(
                        f"{provider} answered with JSON instead of a stream"
                        + (f": {detail}" if detail else ""), status=status)
                raise error_for_status(provider, status, raw, resp.headers, secrets=secrets,
                                       auth_detail=auth_detail, credential=credential)
        except BaseException:
            self._close()
            raise
        return StreamBody(resp, provider=provider, max_bytes=max_bytes, deadline=deadline, timeout=timeout)

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        resp = self._resp
        if exc_type is None and resp is not None and not resp.content.at_eof():
            # The answer has ended: what is left of the body is read in a task of its own, waited
            # for briefly (nearly always the body's end is already on its way, and the next call
            # can then take this connection), so the caller's end of stream (OpenAI's [DONE])
            # waits at most _DRAIN_INLINE for a provider slow to end its body.
            self._resp = None
            task = asyncio.get_running_loop().create_task(_drain(resp))
            _DRAINING.add(task)
            task.add_done_callback(_DRAINING.discard)
            await asyncio.wait((task,), timeout=_DRAIN_INLINE)  # a timeout leaves the task running
            return
        self._close()

    def _close(self) -> None:
        resp, self._resp = self._resp, None
        if resp is not None:
            _release(resp)


def _release(resp: aiohttp.ClientResponse) -> None:
    """Back to the pool when the body was read to its end; closed otherwise (the upstream sees it)."""
    if resp.content.at_eof():
        resp.release()
    else:
        resp.close()


_DRAINING: set[asyncio.Task[None]] = set()
"""Drains in flight (the loop keeps only weak references to tasks)."""


_DRAIN_SECONDS = 0.25
"""How long a stream whose answer has ended (``[DONE]``, ``message_stop``) waits for the end of the
HTTP body. A provider sends its end marker, then the body's end (the last chunk of a chunked
body) in a write of its own; until that is read the connection cannot go back to the pool, and
closing it instead makes the next call open a new connection (a TCP connect, and for a real
provider a TLS handshake) before its first token. Nearly always it is already on its way."""
_DRAIN_INLINE = 0.02
"""How long the stream's end waits for the drain before leaving it to finish on its own."""
_DRAIN_BYTES = 64 << 10
"""Anything after the end marker is not read past this (it is not part of the answer)."""


async def _drain(resp: aiohttp.ClientResponse) -> None:
    """Read what is left of a finished stream's body, briefly, then release its connection (to the
    pool if the body ended); whatever goes wrong here only means the connection is closed instead."""
    left = _DRAIN_BYTES
    try:
        async with asyncio.timeout(_DRAIN_SECONDS):
            while left > 0 and (chunk := await resp.content.readany()):
                left -= len(chunk)
    except (TimeoutError, aiohttp.ClientError, OSError):
        pass
    finally:  # cancelled too (the loop closing): the connection is never left behind
        _release(resp)


def _proxies_from_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """Go's ``httpproxy.FromEnvironment``: each variable upper case first, then lower case, the
    first that is not empty; a proxy without a scheme is ``http://``."""

    def first(*names: str) -> str:
        return next((environ[n] for n in names if environ.get(n)), "")

    found = {"https": first("HTTPS_PROXY", "https_proxy"), "http": first("HTTP_PROXY", "http_proxy")}
    proxies = {scheme: url if "://" in url else f"http://{url}" for scheme, url in found.items() if url}
    if proxies:
        proxies["no"] = first("NO_PROXY", "no_proxy")
    return proxies


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _no_proxy(host: str, no_proxy: str) -> bool:
    """Whether ``NO_PROXY`` exempts ``host``, as Go reads it: ``*`` exempts all; an IP or a CIDR
    matches addresses; ``example.com`` matches it and its subdomains, ``.example.com`` (or
    ``*.example.com``) only its subdomains."""
    host = host.lower().rstrip(".")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if address is not None:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        entry = entry.split(":", 1)[0] if entry.count(":") == 1 else entry  # a host:port entry: its host
        if entry.startswith("*."):
            entry = entry[1:]
        if entry.startswith("."):
            if host.endswith(entry):
                return True
        elif host == entry or host.endswith("." + entry):
            return True
    return False


def _describe(exc: BaseException) -> str:
    """A short, secret-free description of a connection failure."""
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"connection failed ({exc.os_error.strerror or type(exc.os_error).__name__})"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "response cut short"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return type(exc).__name__


class ComponentSession:
    """Mixin for components: the session the runtime handed in (tests), or the component's own,
    a pool of at most ``context.max_connections`` connections opened on first use and closed by
    :meth:`close_session`. One pool per component: a provider that hangs fills its own pool only,
    and another component's calls never wait for a connection behind it."""

    context: base.ComponentContext
    _own_session: aiohttp.ClientSession | None = None
    _proxies: Mapping[str, str] | None = None
    _sent_headers: dict[int, tuple[str, object, CIMultiDictProxy[str]]] | None = None
    """Built headers by ``id(variant)`` (its own entry for each: a plain call's, a stream's); None
    or empty: none built yet (a component that changes its key or endpoint sets it to None)."""

    def call_headers(self, key: str, own_key: str, build: Callable[[str], Mapping[str, str]],
                     variant: object = None) -> CIMultiDictProxy[str]:
        """``build(key)`` as aiohttp takes headers without converting them per call, built once for
        the component's own key (``own_key``) and each ``variant`` (what else they depend on,
        compared by identity: a long-lived object, as a dialect or a module constant); a key sent
        with the request gets its own, not kept."""
        built = self._sent_headers
        cached = built.get(id(variant)) if built is not None else None
        if cached is not None and cached[0] == key and cached[1] is variant:
            return cached[2]
        headers = CIMultiDictProxy(CIMultiDict(build(key)))
        if key == own_key:
            if built is None:
                built = self._sent_headers = {}
            built[id(variant)] = (key, variant, headers)
        return headers

    def upstream(self, url: Any, provider: str, secrets: Iterable[str], *, auth_detail: bool = False,
                 credential: str = "API key") -> Upstream:
        """A call to ``url`` through this component's session, with its answer cap and proxy."""
        return Upstream(self.session, provider, self.context.max_response_bytes, self.proxy(url), secrets,
                        auth_detail, credential)

    def proxy(self, url: Any) -> str | None:
        """The proxy for one provider call, by Go's ``http.ProxyFromEnvironment`` rules (what daprd's
        client follows): ``HTTPS_PROXY``/``HTTP_PROXY`` by scheme, ``NO_PROXY`` honoured, and never
        for ``localhost`` or a loopback address. The environment is read once, as Go reads it."""
        if self._proxies is None:
            self._proxies = _proxies_from_environment(os.environ)
        if not self._proxies:
            return None
        parts = urlsplit(str(url))
        host = parts.hostname or ""
        if host == "localhost" or _loopback(host) or _no_proxy(host, self._proxies.get("no", "")):
            return None
        return self._proxies.get(parts.scheme)

    @property
    def session(self) -> aiohttp.ClientSession:
        if self.context.session is not None:
            return self.context.session
        if self._own_session is None or self._own_session.closed:
            limit = self.context.max_connections
            # No session-wide timeout: each attempt applies its own. A CA bundle in SSL_CERT_FILE or
            # SSL_CERT_DIR is trusted (OpenSSL reads them when tls.client_context is first made).
            # No cookie jar, as daprd's Go clients (an http.Client without a Jar ignores
            # Set-Cookie): a provider's cookies (Cloudflare's on api.openai.com) are not sent back.
            self._own_session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit, ssl=tls.client_context()),
                timeout=aiohttp.ClientTimeout(total=None),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._own_session

    async def close_session(self) -> None:
        if self._own_session is not None:
            await self._own_session.close()
            self._own_session = None
