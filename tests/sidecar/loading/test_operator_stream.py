"""The sidecar's side of the component stream: operator_stream.follow against parley-operator's real
stream server (its hub fed directly, kmock answering TokenReviews and Secrets like the API server).

What a user relies on: the store ends up with exactly the operator's set, changes flow through the
same hot-reload path as files, the last-known-good set keeps serving while the operator is away,
a rotated token is picked up, and an operator with an untrusted certificate is never believed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import kmock as kmock_lib
import kopf
import pytest

from parley_operator import certs, component, kube
from parley_operator.delivery import auth, hub, server
from parley_operator.events import EventRecorder
from parley_operator.metrics import Metrics
from parley_operator.settings import StreamSettings
from parley_sidecar.components.spec import ComponentSpec
from parley_sidecar.components.store import ComponentStore
from parley_sidecar.loading import operator_stream
from parley_sidecar.settings import OperatorLink

POD = auth.PodRecord("shop", "web-1", "uid-1", "web")


def record(name: str, entries: list[dict[str, Any]] | None = None, **top: Any) -> component.ComponentRecord:
    return component.record_of({"metadata": {"name": name, "namespace": "shop"},
                                "spec": {"type": "conversation.echo", "version": "v1", "metadata": entries or []},
                                **top})


class OperatorSide:
    """parley-operator's stream server and hub on loopback; ``index`` plays kopf's Component index."""

    def __init__(self, api: kmock_lib.KubernetesEmulator, workdir: Path) -> None:
        self.api = api
        self.tokens: dict[str, bool] = {}
        self.index: dict[str, list[component.ComponentRecord]] = {"shop": []}
        self.bundle = certs.generate(["127.0.0.1"], ca_days=1, cert_days=1)
        (workdir / "tls.crt").write_bytes(self.bundle.cert_pem)
        (workdir / "tls.key").write_bytes(self.bundle.key_pem)
        self.cert_dir = workdir
        self.port = 0
        self._server: server.StreamServer | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def review(self, request: kmock_lib.Request) -> dict[str, Any]:
        with contextlib.suppress(KeyError):  # kmock keeps every CREATE; the API server keeps no TokenReview
            del self.api.objects["authentication.k8s.io/v1/tokenreviews", None, None]
        token = request.data["spec"]["token"]
        if not self.tokens.get(token):
            return {"kind": "TokenReview", "status": {"user": {}, "error": "invalid bearer token"}}
        return {"kind": "TokenReview", "status": {
            "authenticated": True, "audiences": ["parley-operator"],
            "user": {"username": "system:serviceaccount:shop:default",
                     "extra": {auth.POD_NAME: [POD.name], auth.POD_UID: [POD.uid]}}}}

    async def start(self) -> None:
        async def login() -> kopf.ConnectionInfo:
            return kopf.ConnectionInfo(server=str(self.api.url))

        client = kube.KubeClient(login)
        metrics = Metrics()
        settings = StreamSettings(addr="127.0.0.1", port=self.port, keepalive=0.5, resync=60)
        self.hub = hub.Hub(read_secret=client.secret_data, metrics=metrics,
                           events=EventRecorder(client), settings=settings)
        self.hub.attach(self.index, {(POD.namespace, POD.name): [POD]})
        self.hub.mark_ready()

        async def find_pod(namespace: str, name: str) -> auth.PodRecord | None:
            return self.hub.find_pod(namespace, name)

        self._server = server.StreamServer(
            hub=self.hub, auth=auth.Authenticator(client, audience="parley-operator", find_pod=find_pod),
            metrics=metrics, settings=settings)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_dir / "tls.crt", self.cert_dir / "tls.key")
        await self._server.start(context)
        self.port = self._server.port
        self._tasks = [asyncio.create_task(self.hub.run())]
        self._client = client

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._client.aclose()

    def change(self, *records: component.ComponentRecord) -> None:
        self.index["shop"] = list(records)
        self.hub.changed("shop")


@pytest.fixture
async def operator(kmock: kmock_lib.KubernetesEmulator, tmp_path: Path) -> AsyncIterator[OperatorSide]:
    kmock.resources.load_bundled()
    side = OperatorSide(kmock, tmp_path)
    kmock["post /apis/authentication.k8s.io/v1/tokenreviews"] << side.review
    await side.start()
    yield side
    await side.stop()


class Sidecar:
    def __init__(self, link: OperatorLink, store: ComponentStore) -> None:
        self.link, self.store = link, store

    def names(self) -> set[str]:
        return {e.spec.name for e in self.store.entries()}

    def metadata(self, name: str) -> dict[str, str]:
        entry = self.store.get(name)
        assert entry is not None, f"{name} is not loaded"
        return dict(entry.spec.metadata)

    async def until(self, check: Callable[[], bool], timeout: float = 3.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not check():
            assert loop.time() < deadline, f"timed out; store has {sorted(self.names())}"
            await asyncio.sleep(0.01)


@pytest.fixture
async def sidecar(operator: OperatorSide, tmp_path: Path) -> AsyncIterator[Callable[..., Sidecar]]:
    tasks: list[asyncio.Task[None]] = []
    stores: list[ComponentStore] = []

    def start(*, ca_pem: bytes | None = None, store: ComponentStore | None = None) -> Sidecar:
        (tmp_path / "token").write_text("token-1\n")
        operator.tokens["token-1"] = True
        (tmp_path / "ca.crt").write_bytes(ca_pem or operator.bundle.ca_pem)
        link = OperatorLink(address=f"127.0.0.1:{operator.port}", token_path=tmp_path / "token",
                            ca_path=tmp_path / "ca.crt", namespace="shop")
        store = store or ComponentStore()
        stores.append(store)
        tasks.append(asyncio.create_task(
            operator_stream.follow(link, store, app_id="web", min_delay=0.02, max_delay=0.2)))
        return Sidecar(link, store)

    yield start
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for store in stores:
        await store.aclose()


async def test_snapshot_and_changes_land_in_the_store(operator: OperatorSide, sidecar: Callable[..., Sidecar]) -> None:
    operator.change(record("a"), record("b", [{"name": "memory", "value": "true"}]))
    car = sidecar()
    await car.until(lambda: car.names() == {"a", "b"})
    entry = car.store.get("b")
    assert entry is not None and entry.spec.source == "operator" and dict(entry.spec.metadata) == {"memory": "true"}
    assert entry.spec.namespace == "shop"
    operator.change(record("b", [{"name": "memory", "value": "false"}]), record("c"))
    await car.until(lambda: car.names() == {"b", "c"})
    await car.until(lambda: car.metadata("b") == {"memory": "false"})


async def test_file_components_are_left_alone(operator: OperatorSide, sidecar: Callable[..., Sidecar]) -> None:
    store = ComponentStore()
    await store.apply(ComponentSpec(name="local", type="conversation.echo", version="v1", source="/etc/c/local.yaml"))
    operator.change(record("a"))
    car = sidecar(store=store)
    await car.until(lambda: car.names() == {"local", "a"})
    operator.change()
    await car.until(lambda: car.names() == {"local"})


async def test_last_known_good_serves_while_the_operator_is_away(
    operator: OperatorSide, sidecar: Callable[..., Sidecar]
) -> None:
    operator.change(record("a"), record("b"))
    car = sidecar()
    await car.until(lambda: car.names() == {"a", "b"})
    await operator.stop()
    operator.index["shop"] = [record("b", [{"name": "memory", "value": "true"}]), record("c")]
    await asyncio.sleep(0.5)  # several reconnect attempts fail meanwhile
    assert car.names() == {"a", "b"}
    await operator.start()  # same port
    await car.until(lambda: car.names() == {"b", "c"})
    assert car.metadata("b") == {"memory": "true"}


async def test_token_file_is_read_again_on_each_connect(
    operator: OperatorSide, sidecar: Callable[..., Sidecar]
) -> None:
    operator.change(record("a"))
    car = sidecar()
    await car.until(lambda: car.names() == {"a"})
    await operator.stop()
    operator.tokens["token-1"] = False  # expired; kubelet wrote a fresh one
    operator.tokens["token-2"] = True
    car.link.token_path.write_text("token-2")
    operator.index["shop"] = [record("a"), record("b")]
    await operator.start()
    await car.until(lambda: car.names() == {"a", "b"})


async def test_withheld_component_keeps_its_last_good_version(
    operator: OperatorSide, sidecar: Callable[..., Sidecar], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    operator.change(record("a", [{"name": "memory", "value": "true"}]))
    car = sidecar()
    await car.until(lambda: car.names() == {"a"})
    operator.change(record("a", [{"name": "memory", "value": "perhaps"}]))  # invalid: withheld
    await car.until(lambda: "component 'a' withheld by the operator" in caplog.text)
    assert car.metadata("a") == {"memory": "true"}
    await operator.stop()
    caplog.clear()
    await operator.start()  # a fresh snapshot lists it as withheld: still kept
    await car.until(lambda: "snapshot from the operator: 0 component(s), 1 withheld" in caplog.text)
    assert car.names() == {"a"}
    operator.change()
    await car.until(lambda: car.names() == set())


async def test_env_ref_is_resolved_from_the_sidecars_environment(
    operator: OperatorSide, sidecar: Callable[..., Sidecar], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PARLEY_TEST_MEMORY", "true")
    operator.change(record("a", [{"name": "memory", "envRef": "PARLEY_TEST_MEMORY"}]))
    car = sidecar()
    await car.until(lambda: car.names() == {"a"})
    assert car.metadata("a") == {"memory": "true"}


async def test_an_operator_with_an_untrusted_certificate_is_never_believed(
    operator: OperatorSide, sidecar: Callable[..., Sidecar], caplog: pytest.LogCaptureFixture
) -> None:
    operator.change(record("a"))
    stranger = certs.generate(["127.0.0.1"], ca_days=1, cert_days=1)
    car = sidecar(ca_pem=stranger.ca_pem)
    await car.until(lambda: caplog.text.count("CERTIFICATE_VERIFY_FAILED") >= 2)
    assert car.names() == set()


async def test_logs_name_components_never_values(
    operator: OperatorSide, sidecar: Callable[..., Sidecar], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    operator.change(record("a", [{"name": "memory", "value": "true"}, {"name": "secretish", "value": "sk-zzz"}]),
                    record("bad", [{"name": "memory", "value": "sk-yyy"}]))
    car = sidecar()
    await car.until(lambda: car.names() == {"a"})
    assert "snapshot from the operator: 1 component(s), 1 withheld" in caplog.text
    assert "sk-zzz" not in caplog.text and "sk-yyy" not in caplog.text
