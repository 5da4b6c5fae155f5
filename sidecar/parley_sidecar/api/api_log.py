"""API logging (``--enable-api-logging`` or the Configuration's ``spec.logging.apiLogging``): one
info line per API call, as daprd's ``HTTP API Called`` / ``gRPC API Called``, in daprd's scopes.

A line carries the method, the route, the status, the duration in milliseconds and the user agent:
never a body, a header value other than the user agent, a query string or a token. The route is
the metrics label (``api.http._metric_path``): a component's name only when it names a loaded
component, so text a caller made up never reaches the log.
"""

from __future__ import annotations

import json
import logging

__all__ = ["ApiLog"]

_http = logging.getLogger("dapr.runtime.http-info")
_grpc = logging.getLogger("dapr.runtime.grpc.api-info")
_HEALTH = "/v1.0/healthz"


def _route_name(path: str) -> str:
    """What ``obfuscateURLs`` logs instead of a path: the route with its component left out."""
    parts = path.split("/")
    if len(parts) > 3 and parts[2] == "conversation":
        parts[3] = "{name}"
    return "/".join(parts)


class ApiLog:
    def __init__(self, *, obfuscate_urls: bool, omit_health_checks: bool) -> None:
        self.obfuscate_urls, self.omit_health_checks = obfuscate_urls, omit_health_checks

    def http(self, method: str, path: str, status: int, elapsed_ms: float, user_agent: str) -> None:
        if self.omit_health_checks and path.startswith(_HEALTH):
            return
        shown = _route_name(path) if self.obfuscate_urls else path
        fields = f"method={json.dumps(method + ' ' + shown)} code={status} duration={int(elapsed_ms)}"
        if user_agent:
            fields += f" useragent={json.dumps(user_agent[:200])}"
        _http.info("HTTP API Called %s", fields)

    def grpc(self, method: str, status: str, elapsed_ms: float) -> None:
        _grpc.info("gRPC API Called method=%s code=%s duration=%d", method, status, int(elapsed_ms))
