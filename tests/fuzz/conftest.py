"""The fuzz rig: real servers on loopback, one per test module, driven by synchronous Hypothesis tests.

Each server runs in a :class:`Host`: an event loop in a thread of its own, as a separate process
would. The tests are plain functions that talk to it over loopback (``http.client``, a blocking
gRPC channel, TLS to the webhooks), so Hypothesis runs its examples without any event loop of
its own and one server serves every example of a module.

Budget: ``PARLEY_FUZZ_EXAMPLES`` examples in all (default 1,000, CI's figure), shared among the
tests by the weights given to :func:`examples`. Generation is derandomized (the same examples on
every run, so CI is reproducible) unless ``PARLEY_FUZZ_RANDOM=1``; Hypothesis' example database is
off: no examples are stored (Hypothesis' own caches go to the git-ignored ``.hypothesis/``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http.client
import os
import ssl
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, settings

from parley_sidecar.runtime import Sidecar
from parley_sidecar.settings import Ports, SidecarSettings
from tests.manifests import component_yaml

T = TypeVar("T")

TOTAL = int(os.environ.get("PARLEY_FUZZ_EXAMPLES", "1000"))
RANDOM = os.environ.get("PARLEY_FUZZ_RANDOM", "") not in ("", "0")

WEIGHTS: dict[str, int] = {
    # tests/fuzz/test_http.py
    "http_alpha1": 110, "http_alpha2": 110, "http_raw_body": 80, "http_any_request": 110, "http_metadata_put": 50,
    # tests/fuzz/test_grpc.py
    "grpc_alpha1": 100, "grpc_alpha2": 100, "grpc_raw": 70,
    # tests/fuzz/test_webhooks.py
    "webhook_validate": 110, "webhook_mutate": 90, "webhook_garbage": 70,
}
"""Each test's share of ``PARLEY_FUZZ_EXAMPLES`` (they sum to 1,000: CI runs exactly these counts)."""
assert sum(WEIGHTS.values()) == 1000

API_TOKEN = "fuzz-token-0123456789"
MAX_BODY = 64 * 1024
"""The fuzzed sidecar's --max-body-size: small, so generated bodies reach the 413 answer too."""


def examples(name: str) -> settings:
    """Hypothesis settings for one fuzz test: its share of the budget, reproducible, no database."""
    count = max(1, round(TOTAL * WEIGHTS[name] / sum(WEIGHTS.values())))
    return settings(max_examples=count, derandomize=not RANDOM, database=None, deadline=None,
                    print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.large_base_example])


class Host:
    """An asyncio loop in its own thread; :meth:`run` runs a coroutine there and waits for it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


# -- the sidecar ------------------------------------------------------------------------------------
@dataclasses.dataclass
class FuzzSidecar:
    sidecar: Sidecar
    host: Host

    @property
    def http_port(self) -> int:
        return int(self.sidecar.bound["http"])

    @property
    def grpc(self) -> str:
        return f"127.0.0.1:{self.sidecar.bound['grpc']}"

    @property
    def metrics_port(self) -> int:
        return int(self.sidecar.bound["metrics"])


@pytest.fixture(scope="module")
def fuzz_sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzSidecar]:
    """A sidecar with the `echo` component and an API token, started once for the module."""
    resources: Path = tmp_path_factory.mktemp("fuzz-components")
    (resources / "echo.yaml").write_text(component_yaml("echo", "conversation.echo", {"key": "testkey"}))
    settings_ = SidecarSettings(app_id="fuzz-app", resources_paths=[resources],
                                ports=Ports(http=0, grpc=0, metrics=0, public=0),
                                listen_addresses=["127.0.0.1"], public_listen_address="127.0.0.1",
                                metrics_listen_address="127.0.0.1", api_token=API_TOKEN)
    settings_.limits.max_body_size = MAX_BODY
    host = Host("fuzz-sidecar")
    sidecar = Sidecar(settings_)
    host.run(sidecar.start())
    try:
        yield FuzzSidecar(sidecar, host)
    finally:
        host.run(sidecar.stop())
        host.close()


class HttpClient:
    """One keep-alive connection, reopened whenever the server closed it (as a client library would)."""

    def __init__(self, host: str, port: int, *, context: ssl.SSLContext | None = None) -> None:
        self._host, self._port, self._context = host, port, context
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._context is not None:
                self._conn = http.client.HTTPSConnection(self._host, self._port, context=self._context, timeout=30)
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=30)
        return self._conn

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
        """(status, content type without parameters, body)."""
        for attempt in range(2):
            conn = self._connection()
            try:
                conn.request(method, path, body=body, headers=headers or {})
                resp = conn.getresponse()
                data = resp.read()
            except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
                self.close()
                if attempt:
                    raise
                continue
            if resp.will_close:
                self.close()
            ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
            return resp.status, ctype, data
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
            self._conn = None
