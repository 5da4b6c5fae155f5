"""Provider calls through a company's egress proxy, to an endpoint behind a private CA, as daprd makes them.

The same Component (``conversation.openai`` pointed at ``https://fake.test:PORT/v1``) and the same
environment (``HTTPS_PROXY``, ``HTTP_PROXY``, ``SSL_CERT_FILE``) go to the real daprd and to parley.
Both must tunnel through the proxy (``CONNECT fake.test:PORT``; the proxy maps the fake name to
loopback, so nothing is ever looked up), trust the private CA, and give the same answer. Go's
client never proxies a loopback address; the last case checks parley does not either.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from parley_operator import certs
from tests.conformance.compare import encode
from tests.conformance.conftest import APP_ID, DAPRD, write_components
from tests.conformance.servers import Pair, start_pair
from tests.fakes import OpenAIFake
from tests.fakes.proxy import Proxy
from tests.manifests import component_yaml

T = TypeVar("T")
KEY = "sk-proxy-0123456789"
HOST = "fake.test"
ALPHA2 = "/v1.0-alpha2/conversation/{name}/converse"
BODY = {"inputs": [{"messages": [{"ofUser": {"content": [{"text": "through the proxy"}]}}]}]}


class Loop:
    """An event loop of its own thread, for the fakes while the test's servers are processes."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="proxy-fakes", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Pair, Proxy, OpenAIFake, OpenAIFake, Loop]]:
    assert DAPRD is not None
    directory = tmp_path_factory.mktemp("proxy")
    bundle = certs.generate([HOST], ca_days=1, cert_days=1)
    (directory / "ca.pem").write_bytes(bundle.ca_pem)
    (directory / "tls.crt").write_bytes(bundle.cert_pem)
    (directory / "tls.key").write_bytes(bundle.key_pem)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(directory / "tls.crt", directory / "tls.key")
    loop = Loop()
    secure = loop.run(OpenAIFake(KEY).start(tls=tls))
    plain = loop.run(OpenAIFake(KEY).start())
    proxy = loop.run(Proxy({HOST: secure.port, f"plain.{HOST}": plain.port}).start())
    resources = write_components(directory / "components", {
        "tls.yaml": component_yaml("tls", "conversation.openai", {
            "key": KEY, "model": "gpt-4o-mini", "endpoint": f"https://{HOST}:{secure.port}/v1", "maxRetries": "0"}),
        "plain.yaml": component_yaml("plain", "conversation.openai", {
            "key": KEY, "model": "gpt-4o-mini", "endpoint": f"http://plain.{HOST}:{plain.port}/v1",
            "maxRetries": "0"}),
        "local.yaml": component_yaml("local", "conversation.openai", {
            "key": KEY, "model": "gpt-4o-mini", "endpoint": f"{plain.url}/v1", "maxRetries": "0"}),
    })
    env = {"HTTPS_PROXY": proxy.url, "HTTP_PROXY": proxy.url, "SSL_CERT_FILE": str(directory / "ca.pem"),
           "NO_PROXY": "", "no_proxy": "", "https_proxy": "", "http_proxy": ""}
    pair = start_pair(DAPRD, "proxy", APP_ID, resources, directory / "logs", env=env)
    yield pair, proxy, secure, plain, loop
    pair.stop()
    loop.run(proxy.close())
    loop.run(secure.close())
    loop.run(plain.close())
    loop.stop()


def test_https_endpoint_through_the_proxy_with_a_private_ca(world: tuple[Pair, Proxy, OpenAIFake, OpenAIFake, Loop]) -> None:
    pair, proxy, secure, _, _ = world
    answers = []
    for server in pair.both():
        proxy.seen.clear()
        answer = server.request("POST", ALPHA2.format(name="tls"), encode(BODY))
        assert answer.status == 200, (server.name, answer)
        assert proxy.seen == [f"CONNECT {HOST}:{secure.port}"], server.name
        answers.append(answer.body["outputs"][0]["choices"][0]["message"]["content"])
    assert answers[0] == answers[1] == "echo: through the proxy"


def test_plain_http_endpoint_through_the_proxy(world: tuple[Pair, Proxy, OpenAIFake, OpenAIFake, Loop]) -> None:
    pair, proxy, _, plain, _ = world
    for server in pair.both():
        proxy.seen.clear()
        answer = server.request("POST", ALPHA2.format(name="plain"), encode(BODY))
        assert answer.status == 200, (server.name, answer)
        assert proxy.seen == [f"POST http://plain.{HOST}:{plain.port}/v1/chat/completions"], server.name


def test_a_loopback_endpoint_is_never_proxied(world: tuple[Pair, Proxy, OpenAIFake, OpenAIFake, Loop]) -> None:
    pair, proxy, _, _, _ = world
    for server in pair.both():
        proxy.seen.clear()
        answer = server.request("POST", ALPHA2.format(name="local"), encode(BODY))
        assert answer.status == 200, (server.name, answer)
        assert proxy.seen == [], server.name


@pytest.mark.parametrize("host, no_proxy, exempt", [
    ("api.example.com", "*", True),
    ("api.example.com", "example.com", True),
    ("example.com", ".example.com", False),
    ("api.example.com", "*.example.com", True),
    ("api.example.org", "example.com, 10.0.0.0/8", False),
    ("10.1.2.3", "example.com, 10.0.0.0/8", True),
    ("10.1.2.3", "10.1.2.3", True),
    ("api.example.com", "api.example.com:443", True),
])
def test_no_proxy_is_read_as_go_reads_it(host: str, no_proxy: str, exempt: bool) -> None:
    from parley_sidecar.components import http_kit

    assert http_kit._no_proxy(host, no_proxy) is exempt

