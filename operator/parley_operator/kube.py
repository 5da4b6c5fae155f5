"""A small Kubernetes API client for the calls kopf does not make for us.

kopf watches and serves webhooks; the operator itself only needs a handful of requests: GET a
Secret, create or patch its certificate Secret, patch webhook ``caBundle``s, POST a TokenReview, POST
an Event. This client makes them with aiohttp (kopf's own dependency) from the same
``kopf.ConnectionInfo`` kopf logs in with, so there is one source of credentials. kopf's API client
is private; depending on it would break on any kopf release.

Errors form one small hierarchy, mapped from the HTTP status in :func:`_raise_for`, with response
bodies truncated so that nothing large (or secret) reaches a log line::

    APIError
    ├── APIUnauthorized (401)      ├── APIConflict (409)
    ├── APIForbidden (403)         ├── APIInvalid (422)
    ├── APINotFound (404)          └── APIServerError (5xx, connection errors)
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import kopf

__all__ = [
    "APIConflict",
    "APIError",
    "APIForbidden",
    "APIInvalid",
    "APINotFound",
    "APIServerError",
    "APIUnauthorized",
    "KubeClient",
    "Login",
    "default_login",
]

Login = Callable[[], Awaitable[kopf.ConnectionInfo]]
"""Returns fresh credentials; called at start and again after a 401 (rotated tokens)."""

_BODY_LIMIT = 300


class APIError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class APIUnauthorized(APIError):
    pass


class APIForbidden(APIError):
    pass


class APINotFound(APIError):
    pass


class APIConflict(APIError):
    pass


class APIInvalid(APIError):
    pass


class APIServerError(APIError):
    pass


_BY_STATUS: dict[int, type[APIError]] = {
    401: APIUnauthorized, 403: APIForbidden, 404: APINotFound, 409: APIConflict, 422: APIInvalid,
}


def _raise_for(status: int, text: str) -> None:
    if status < 400:
        return
    try:
        message = str(json.loads(text).get("message") or text)
    except (ValueError, AttributeError):
        message = text
    message = message[:_BODY_LIMIT]
    raise (_BY_STATUS.get(status) or (APIServerError if status >= 500 else APIError))(status, message)


async def default_login() -> kopf.ConnectionInfo:
    """In-cluster ServiceAccount first, then the kubeconfig (``KUBECONFIG`` or ``~/.kube/config``)."""
    settings = kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(settings=settings)
    if info is None:
        raise kopf.LoginError("no ServiceAccount token and no kubeconfig: cannot reach the Kubernetes API")
    return info


class KubeClient:
    def __init__(self, login: Login, *, timeout: float = 10.0) -> None:
        self._login = login
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._info: kopf.ConnectionInfo | None = None

    async def _connect(self) -> tuple[aiohttp.ClientSession, kopf.ConnectionInfo]:
        if self._session is None or self._info is None:
            info = await self._login()
            # kopf's own context decodes kubeconfig *-data fields (base64) and honours `insecure`.
            tls: ssl.SSLContext | bool = info.as_ssl_context() if info.server.startswith("https") else False
            connector = aiohttp.TCPConnector(ssl=tls, limit=32)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout,
                                                  headers=info.as_http_headers())
            self._info = info
        return self._session, self._info

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
        self._session, self._info = None, None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """One API call; the parsed JSON answer, or an :class:`APIError` subclass."""
        for attempt in (1, 2):
            session, info = await self._connect()
            data = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": content_type} if body is not None else {}
            try:
                async with session.request(method, info.server.rstrip("/") + path, data=data,
                                           headers=headers, params=params) as resp:
                    text = await resp.text()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise APIServerError(0, f"{method} {path}: {type(exc).__name__}: {exc}"[:_BODY_LIMIT]) from exc
            if status == 401 and attempt == 1:
                await self.aclose()  # the token may have rotated: log in again once
                continue
            _raise_for(status, text)
            return json.loads(text) if text else None
        raise AssertionError("unreachable")  # pragma: no cover

    async def get(self, path: str) -> Any:
        return await self.request("GET", path)

    async def create(self, path: str, body: Mapping[str, Any]) -> Any:
        return await self.request("POST", path, body=body)

    async def json_patch(self, path: str, ops: list[dict[str, Any]]) -> Any:
        return await self.request("PATCH", path, body=ops, content_type="application/json-patch+json")

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """A Secret's ``data`` (base64 values, as stored), or None when there is no such Secret."""
        try:
            secret = await self.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
        except APINotFound:
            return None
        return {str(k): str(v) for k, v in (secret.get("data") or {}).items()}
