"""Resiliency and Configuration over the component stream: parley-operator's real hub and stream
server on loopback (kopf's indexes played by plain dicts, kmock answering TokenReviews), the
sidecar's real ``operator_stream.follow`` feeding a real ``ComponentStore``.

What a user relies on: a Resiliency in the namespace changes the policy a component call runs
under, live; scopes decide which apps it reaches; removing it restores the component's own policy;
a bad one never replaces the last good one; a target naming a missing component does not stop the
rest. The pod's Configuration arrives in the first snapshot and is read as a file would be.
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

from parley_operator import certs, component, kube, resiliency
from parley_operator.delivery import auth, hub, server
from parley_operator.events import EventRecorder
from parley_operator.metrics import Metrics
from parley_operator.settings import StreamSettings
from parley_sidecar.components.store import ComponentStore
from parley_sidecar.loading import configuration, operator_stream
from parley_sidecar.loading import stream_protocol as protocol
from parley_sidecar.settings import OperatorLink

NS = "shop"


def echo(name: str) -> component.ComponentRecord:
    return component.record_of({"metadata": {"name": name, "namespace": NS},
                                "spec": {"type": "conversation.echo", "version": "v1", "metadata": []}})


def policy(name: str, targets: dict[str, str], *, timeout: str = "7s", scopes: list[str] | None = None,
           uid: str = "uid-r") -> resiliency.ResiliencyRecord:
    """A Resiliency whose one timeout policy ``t`` applies to each target component."""
    body: dict[str, Any] = {
        "apiVersion": "dapr.io/v1alpha1", "kind": "Resiliency",
        "metadata": {"name": name, "namespace": NS, "uid": uid},
        "spec": {"policies": {"timeouts": {"t": timeout}},
                 "targets": {"components": {c: {"outbound": {"timeout": "t"}} for c in targets}}}}
    if scopes is not None:
        body["scopes"] = scopes
    return resiliency.record_of(body)


class Rig:
    """The operator's hub and stream server, one pod per app id, sidecars following it."""

    def __init__(self, api: kmock_lib.KubernetesEmulator, workdir: Path) -> None:
        self.api, self.workdir = api, workdir
        self.components: dict[str, list[component.ComponentRecord]] = {NS: []}
        self.policies: dict[str, list[resiliency.ResiliencyRecord]] = {NS: []}
        self.pods: dict[tuple[str, str], list[auth.PodRecord]] = {}
        self.configurations: dict[str, dict[str, Any]] = {}
        self.bundle = certs.generate(["127.0.0.1"], ca_days=1, cert_days=1)
        self.tasks: list[asyncio.Task[None]] = []
        self.stores: list[ComponentStore] = []

    def review(self, request: kmock_lib.Request) -> dict[str, Any]:
        with contextlib.suppress(KeyError):
            del self.api.objects["authentication.k8s.io/v1/tokenreviews", None, None]
        pod = request.data["spec"]["token"]  # the token is the pod's name here
        return {"kind": "TokenReview", "status": {
            "authenticated": True, "audiences": ["parley-operator"],
            "user": {"username": f"system:serviceaccount:{NS}:default",
                     "extra": {auth.POD_NAME: [pod], auth.POD_UID: [f"uid-{pod}"]}}}}

    async def read_configuration(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.configurations.get(name)

    async def start(self) -> None:
        async def login() -> kopf.ConnectionInfo:
            return kopf.ConnectionInfo(server=str(self.api.url))

        self.client = kube.KubeClient(login)
        metrics = Metrics()
        settings = StreamSettings(addr="127.0.0.1", port=0, keepalive=0.5, resync=60)
        self.hub = hub.Hub(read_secret=self.client.secret_data, metrics=metrics, events=EventRecorder(self.client),
                           settings=settings, read_configuration=self.read_configuration)
        self.hub.attach(self.components, self.pods, self.policies)
        self.hub.mark_ready()

        async def find_pod(namespace: str, name: str) -> auth.PodRecord | None:
            return self.hub.find_pod(namespace, name)

        self.server = server.StreamServer(
            hub=self.hub, auth=auth.Authenticator(self.client, audience="parley-operator", find_pod=find_pod),
            metrics=metrics, settings=settings)
        (self.workdir / "tls.crt").write_bytes(self.bundle.cert_pem)
        (self.workdir / "tls.key").write_bytes(self.bundle.key_pem)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.workdir / "tls.crt", self.workdir / "tls.key")
        await self.server.start(context)
        self.tasks.append(asyncio.create_task(self.hub.run()))

    async def stop(self) -> None:
        await self.server.stop()
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for store in self.stores:
            await store.aclose()
        await self.client.aclose()

    def change(self, *records: component.ComponentRecord | resiliency.ResiliencyRecord) -> None:
        self.components[NS] = [r for r in records if isinstance(r, component.ComponentRecord)]
        self.policies[NS] = [r for r in records if isinstance(r, resiliency.ResiliencyRecord)]
        self.hub.changed(NS)

    def sidecar(self, app_id: str, *, config: str = "",
                first: asyncio.Future[protocol.Snapshot] | None = None) -> ComponentStore:
        pod = f"{app_id}-{len(self.stores)}"
        self.pods[(NS, pod)] = [auth.PodRecord(NS, pod, f"uid-{pod}", app_id, config)]
        directory = self.workdir / pod
        directory.mkdir()
        (directory / "token").write_text(pod)
        (directory / "ca.crt").write_bytes(self.bundle.ca_pem)
        link = OperatorLink(address=f"127.0.0.1:{self.server.port}", token_path=directory / "token",
                            ca_path=directory / "ca.crt", namespace=NS)
        store = ComponentStore()
        self.stores.append(store)
        self.tasks.append(asyncio.create_task(operator_stream.follow(
            link, store, app_id=app_id, min_delay=0.02, max_delay=0.2, first_snapshot=first)))
        return store


@pytest.fixture
async def rig(kmock: kmock_lib.KubernetesEmulator, tmp_path: Path) -> AsyncIterator[Rig]:
    kmock.resources.load_bundled()
    running = Rig(kmock, tmp_path)
    kmock["post /apis/authentication.k8s.io/v1/tokenreviews"] << running.review
    await running.start()
    yield running
    await running.stop()


def timeout_of(store: ComponentStore, name: str) -> float | None:
    entry = store.get(name)
    assert entry is not None, f"{name} is not loaded"
    return entry.settings.resiliency.timeout


async def until(check: Callable[[], bool], timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        with contextlib.suppress(AssertionError):
            if check():
                return
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_resiliency_applies_changes_live_and_its_removal_restores_the_components_policy(rig: Rig) -> None:
    rig.change(echo("llm"), policy("llm-policy", {"llm": "t"}, timeout="7s"))
    store = rig.sidecar("web")
    await until(lambda: timeout_of(store, "llm") == 7.0)
    rig.change(echo("llm"), policy("llm-policy", {"llm": "t"}, timeout="9s"))
    await until(lambda: timeout_of(store, "llm") == 9.0)
    rig.change(echo("llm"))
    await until(lambda: timeout_of(store, "llm") != 9.0)
    entry = store.get("llm")
    assert entry is not None and entry.settings.resiliency == entry.own


async def test_scopes_decide_which_apps_a_resiliency_reaches(rig: Rig) -> None:
    rig.change(echo("llm"), policy("p", {"llm": "t"}, scopes=["batch"]))
    web, batch = rig.sidecar("web"), rig.sidecar("batch")
    await until(lambda: timeout_of(batch, "llm") == 7.0)
    await until(lambda: store_has(web, "llm"))
    assert timeout_of(web, "llm") != 7.0
    rig.change(echo("llm"), policy("p", {"llm": "t"}, scopes=["web"]))  # moves from batch to web
    await until(lambda: timeout_of(web, "llm") == 7.0)
    await until(lambda: timeout_of(batch, "llm") != 7.0)
    rig.change(echo("llm"), policy("p", {"llm": "t"}, scopes=[]))  # empty: every app
    await until(lambda: timeout_of(batch, "llm") == 7.0 and timeout_of(web, "llm") == 7.0)


def store_has(store: ComponentStore, name: str) -> bool:
    return store.get(name) is not None


async def test_a_bad_resiliency_keeps_the_last_good_one_serving(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    rig.change(echo("llm"), policy("p", {"llm": "t"}, timeout="7s"))
    store = rig.sidecar("web")
    await until(lambda: timeout_of(store, "llm") == 7.0)
    caplog.set_level(logging.ERROR, "parley.operator.delivery")
    bad = policy("p", {"llm": "t"}, timeout="soon")
    assert "spec.policies.timeouts.t" in bad.error
    rig.change(echo("llm"), bad)
    await until(lambda: "spec.policies.timeouts.t" in caplog.text)
    assert "the last good version keeps serving" in caplog.text
    late = rig.sidecar("web")  # a sidecar connecting now gets the last good version too
    await until(lambda: timeout_of(late, "llm") == 7.0)
    assert timeout_of(store, "llm") == 7.0


async def test_a_target_naming_a_missing_component_is_warned_and_the_rest_applies(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "parley.loading.operator")
    rig.change(echo("llm"), policy("p", {"llm": "t", "ghost": "t"}))
    store = rig.sidecar("web")
    await until(lambda: timeout_of(store, "llm") == 7.0)
    assert "'spec.targets.components.ghost': no component named 'ghost' is loaded" in caplog.text
    rig.change(echo("llm"), echo("ghost"), policy("p", {"llm": "t", "ghost": "t"}))  # it arrives: it applies
    await until(lambda: timeout_of(store, "ghost") == 7.0)


async def test_the_pods_configuration_arrives_in_the_first_snapshot(rig: Rig) -> None:
    rig.configurations["appconfig"] = {"kind": "Configuration", "spec": {
        "metric": {"enabled": False}, "logging": {"apiLogging": {"enabled": True, "obfuscateURLs": True}}}}
    first: asyncio.Future[protocol.Snapshot] = asyncio.get_running_loop().create_future()
    rig.sidecar("web", config="appconfig", first=first)
    config = await operator_stream.configuration_of(first, "appconfig", timeout=5)
    assert config.metrics_enabled is False
    assert config.api_logging.enabled is True and config.api_logging.obfuscate_urls is True


async def test_a_missing_configuration_stops_the_start_as_daprd_does(rig: Rig) -> None:
    first: asyncio.Future[protocol.Snapshot] = asyncio.get_running_loop().create_future()
    rig.sidecar("web", config="nope", first=first)
    with pytest.raises(configuration.ConfigurationError, match="'nope' not found in namespace 'shop'"):
        await operator_stream.configuration_of(first, "nope", timeout=5)


async def test_no_operator_in_time_stops_the_start() -> None:
    never: asyncio.Future[protocol.Snapshot] = asyncio.get_running_loop().create_future()
    with pytest.raises(configuration.ConfigurationError, match="no snapshot from the operator"):
        await operator_stream.configuration_of(never, "appconfig", timeout=0.05)


async def test_an_older_operator_leaves_the_defaults_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    # What a protocol-1 operator sends: no "protocol" key, and none of the new ones.
    line = b'{"type":"snapshot","namespace":"shop","appId":"web","keepalive":15,"components":[],"withheld":[]}\n'
    snapshot = protocol.decode(line)
    assert isinstance(snapshot, protocol.Snapshot) and snapshot.protocol == 1
    first: asyncio.Future[protocol.Snapshot] = asyncio.get_running_loop().create_future()
    first.set_result(snapshot)
    config = await operator_stream.configuration_of(first, "appconfig", timeout=1)
    assert config == configuration.Configuration()
    assert "does not deliver Configurations" in caplog.text


def test_an_older_sidecar_skips_what_it_does_not_know() -> None:
    # The new kinds decode to Unknown in a version that does not list them (as an older sidecar's
    # decoder does for any kind it lacks): simulated by a kind this version does not know either.
    assert protocol.decode(b'{"type":"resiliencyFuture","x":1}') == protocol.Unknown("resiliencyFuture")
    line = protocol.encode(protocol.Snapshot(namespace=NS, app_id="web", keepalive=1.0, protocol=2,
                                             resiliencies=({"metadata": {"name": "p"}},)))
    assert protocol.decode(line) == protocol.Snapshot(namespace=NS, app_id="web", keepalive=1.0, protocol=2,
                                                      resiliencies=({"metadata": {"name": "p"}},))
    upsert = protocol.ResiliencyUpsert({"metadata": {"name": "p"}})
    assert protocol.decode(protocol.encode(upsert)) == upsert
    assert protocol.decode(protocol.encode(protocol.ResiliencyDelete("p"))) == protocol.ResiliencyDelete("p")
