"""The operator's test rig: kmock as the Kubernetes API, the real operator in its own thread, real
sidecar stream clients on loopback.

- ``cluster``: kmock's Kubernetes emulator with Dapr's Component resource, plus a TokenReview
  authority that answers in the API server's wire format (the only faked API behaviour).
- ``start_operator``: runs :class:`parley_operator.Operator` (kopf, webhooks, stream, certificates)
  in a thread with its own event loop, as a separate process would; kmock stays in the test's loop.
- ``start_sidecar``: a sidecar's component stream client (``operator_stream.follow``) feeding a
  real ``ComponentStore``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from pathlib import Path
from typing import Any

import kmock as kmock_lib
import kopf
import pytest

from parley_operator.app import Operator
from parley_operator.settings import InjectorSettings, OperatorSettings
from parley_sidecar.components.spec import ComponentSpec
from parley_sidecar.components.store import ComponentStore
from parley_sidecar.settings import OperatorLink

COMPONENTS = "dapr.io/v1alpha1/components"
TOKENREVIEWS = "authentication.k8s.io/v1/tokenreviews"
AUDIENCE = "parley-operator"


def pytest_configure(config: pytest.Config) -> None:
    # kmock 0.8 loads its bundled resources with a deprecated importlib call.
    config.addinivalue_line("filterwarnings", "ignore:read_binary is deprecated:DeprecationWarning")


@pytest.fixture
def injector_settings() -> InjectorSettings:
    return InjectorSettings(sidecar_image="registry.test/parley-sidecar:1",
                            control_plane_address="parley-operator.parley-system.svc:6500")


# -- the Kubernetes API ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PodRef:
    namespace: str
    name: str
    uid: str
    app_id: str


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


class TokenAuthority:
    """Issues pod-bound ServiceAccount tokens and answers TokenReviews for them like kube-apiserver.

    ``gate`` holds every review until it is set (it is set unless a test clears it), so a test can
    see how many reviews the operator has in flight at once; ``reviews`` counts those received and
    ``most_at_once`` the largest number in flight together."""

    def __init__(self, api: kmock_lib.KubernetesEmulator) -> None:
        self._api = api
        self._tokens: dict[str, tuple[PodRef, tuple[str, ...]]] = {}
        self.gate = asyncio.Event()
        self.gate.set()
        self.reviews = 0
        self.in_flight = 0
        self.most_at_once = 0
        self._changed = asyncio.Condition()

    def issue(self, pod: PodRef, *, audiences: tuple[str, ...] = (AUDIENCE,), lifetime: int = 3600) -> str:
        """A JWT shaped like kubelet's projected token (the signature is random: only we check it)."""
        now = int(time.time())
        claims = {"aud": list(audiences), "exp": now + lifetime, "iat": now, "iss": "https://kubernetes.default.svc",
                  "kubernetes.io": {"namespace": pod.namespace, "pod": {"name": pod.name, "uid": pod.uid}},
                  "sub": f"system:serviceaccount:{pod.namespace}:default"}
        token = ".".join((_b64({"alg": "RS256", "kid": "test"}), _b64(claims), secrets.token_urlsafe(64)))
        self._tokens[token] = (pod, audiences)
        return token

    async def wait_in_flight(self, count: int) -> None:
        """Until ``count`` reviews are held at the gate together."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.in_flight >= count)

    async def review(self, request: kmock_lib.Request) -> dict[str, Any]:
        # kmock stores every CREATE, even one a reaction answers; the API server keeps no TokenReview.
        with contextlib.suppress(KeyError):
            del self._api.objects[TOKENREVIEWS, None, None]
        self.reviews += 1
        self.in_flight += 1
        self.most_at_once = max(self.most_at_once, self.in_flight)
        async with self._changed:
            self._changed.notify_all()
        try:
            await self.gate.wait()
        finally:
            self.in_flight -= 1
        spec = request.data.get("spec") or {}
        wanted = tuple(spec.get("audiences") or ("https://kubernetes.default.svc.cluster.local",))
        answer: dict[str, Any] = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                                  "metadata": {"creationTimestamp": None}, "spec": spec}
        known = self._tokens.get(str(spec.get("token", "")))
        if known is None:
            answer["status"] = {"user": {}, "error": "[invalid bearer token, square/go-jose: error in "
                                                     "cryptographic primitive, token lookup failed]"}
            return answer
        pod, audiences = known
        if not set(wanted) & set(audiences):
            answer["status"] = {"user": {}, "error": f"[invalid bearer token, token audiences {list(audiences)} "
                                                     f"is invalid for the target audiences {list(wanted)}]"}
            return answer
        answer["status"] = {
            "authenticated": True,
            "user": {
                "username": f"system:serviceaccount:{pod.namespace}:default",
                "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, pod.namespace)),
                "groups": ["system:serviceaccounts", f"system:serviceaccounts:{pod.namespace}",
                           "system:authenticated"],
                "extra": {
                    "authentication.kubernetes.io/credential-id": [f"JTI={uuid.uuid4()}"],
                    "authentication.kubernetes.io/node-name": ["node-1"],
                    "authentication.kubernetes.io/pod-name": [pod.name],
                    "authentication.kubernetes.io/pod-uid": [pod.uid],
                },
            },
            "audiences": [a for a in wanted if a in audiences],
        }
        return answer


class Cluster:
    """Changes the emulated cluster through its HTTP API, so kopf sees real watch events."""

    def __init__(self, api: kmock_lib.KubernetesEmulator) -> None:
        self.api = api
        self.tokens = TokenAuthority(api)
        self._version = 0
        self._existing: set[tuple[str, str, str]] = set()

    @property
    def url(self) -> str:
        return str(self.api.url)

    def _rv(self) -> str:
        self._version += 1
        return str(self._version)

    async def _send(self, method: str, path: str, body: Any = None) -> Any:
        resp = await self.api.request(method, path, json=body)
        text = await resp.text()
        assert resp.status < 400, f"{method} {path}: {resp.status} {text}"
        return await resp.json() if text else None

    async def put_component(self, namespace: str, name: str, *, type: str = "conversation.echo",
                            metadata: dict[str, Any] | list[dict[str, Any]] | None = None,
                            scopes: list[str] | None = None, version: str = "v1") -> None:
        entries = metadata if isinstance(metadata, list) else [
            {"name": k, "value": v} for k, v in (metadata or {}).items()]
        body: dict[str, Any] = {
            "apiVersion": "dapr.io/v1alpha1", "kind": "Component",
            "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4()),
                         "resourceVersion": self._rv()},
            "spec": {"type": type, "version": version, "metadata": entries},
            "scopes": scopes,
        }
        path = f"/apis/dapr.io/v1alpha1/namespaces/{namespace}/components"
        key = (COMPONENTS, namespace, name)
        if key in self._existing:
            await self._send("PATCH", f"{path}/{name}", {"metadata": {"resourceVersion": self._rv()},
                                                         "spec": body["spec"], "scopes": scopes})
        else:
            await self._send("POST", path, body)
            self._existing.add(key)

    async def delete_component(self, namespace: str, name: str) -> None:
        await self._send("DELETE", f"/apis/dapr.io/v1alpha1/namespaces/{namespace}/components/{name}")
        self._existing.discard((COMPONENTS, namespace, name))

    async def put_secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        path = f"/api/v1/namespaces/{namespace}/secrets"
        key = ("v1/secrets", namespace, name)
        if key in self._existing:
            await self._send("PATCH", f"{path}/{name}", {"data": encoded})
        else:
            await self._send("POST", path, {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "data": encoded,
                                            "metadata": {"name": name, "namespace": namespace,
                                                         "resourceVersion": self._rv()}})
            self._existing.add(key)

    async def delete_secret(self, namespace: str, name: str) -> None:
        await self._send("DELETE", f"/api/v1/namespaces/{namespace}/secrets/{name}")
        self._existing.discard(("v1/secrets", namespace, name))

    async def add_pod(self, namespace: str, name: str, app_id: str | None = None, *, injected: bool = True,
                      annotations: dict[str, str] | None = None) -> PodRef:
        ref = PodRef(namespace, name, str(uuid.uuid4()), app_id or name)
        labels = {"dapr.io/sidecar-injected": "true", "dapr.io/app-id": ref.app_id} if injected else {}
        containers = [{"name": "app", "image": "app:1"}] + ([{"name": "daprd", "image": "s:1"}] if injected else [])
        await self._send("POST", f"/api/v1/namespaces/{namespace}/pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": ref.uid, "resourceVersion": self._rv(),
                         "labels": labels,
                         "annotations": {"dapr.io/enabled": "true", "dapr.io/app-id": ref.app_id,
                                         **(annotations or {})}},
            "spec": {"containers": containers},
        })
        return ref

    async def relabel_pod(self, pod: PodRef, *, app_id: str) -> None:
        await self._send("PATCH", f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}", {"metadata": {
            "labels": {"dapr.io/app-id": app_id}, "annotations": {"dapr.io/app-id": app_id}}})

    async def delete_pod(self, pod: PodRef) -> None:
        await self._send("DELETE", f"/api/v1/namespaces/{pod.namespace}/pods/{pod.name}")

    async def put_webhook_configurations(self, name: str, webhooks: int = 1) -> None:
        for kind in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
            await self._send("POST", f"/apis/admissionregistration.k8s.io/v1/{kind}", {
                "apiVersion": "admissionregistration.k8s.io/v1", "metadata": {"name": name, "resourceVersion": "1"},
                "webhooks": [{"name": f"hook{i}.parley.io", "clientConfig": {
                    "service": {"name": "parley-operator", "namespace": "parley-system", "path": "/mutate"}}}
                    for i in range(webhooks)]})

    def events(self, namespace: str, reason: str | None = None) -> list[dict[str, Any]]:
        posted = [r.data for r in self.api[f"post /api/v1/namespaces/{namespace}/events"]]
        return [e for e in posted if reason is None or e.get("reason") == reason]

    async def event(self, namespace: str, reason: str, *, about: str = "", timeout: float = 2.0) -> dict[str, Any]:
        """The first Event with this reason (about the named object, if given), once the operator posted it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = [e for e in self.events(namespace, reason)
                     if not about or e["involvedObject"]["name"] == about]
            if found:
                return found[0]
            if loop.time() > deadline:
                seen = [(e["reason"], e["involvedObject"]["name"]) for e in self.events(namespace)]
                raise AssertionError(f"no {reason} Event about {about or 'anything'} in {namespace}; saw {seen}")
            await asyncio.sleep(0.02)


@pytest.fixture
async def cluster(kmock: kmock_lib.KubernetesEmulator) -> Cluster:
    kmock.resources.load_bundled()
    kmock.resources[COMPONENTS] = kmock_lib.ResourceInfo(
        kind="Component", singular="component", namespaced=True,
        verbs={"list", "watch", "get", "create", "patch", "delete"})
    rig = Cluster(kmock)
    kmock[f"post /apis/{TOKENREVIEWS}"] << rig.tokens.review
    return rig


# -- the operator -----------------------------------------------------------------------------------
class RunningOperator:
    """One operator in its own thread and event loop, stopped through its stop flag."""

    def __init__(self, settings: OperatorSettings, api_url: str) -> None:
        self.settings = settings
        self._api_url = api_url
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="operator", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.operator: Operator | None = None
        self.error: BaseException | None = None

    async def _login(self) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=self._api_url)

    def _main(self) -> None:
        try:
            asyncio.run(self._amain())
        except BaseException as exc:
            self.error = exc
        finally:
            self._ready.set()

    async def _amain(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self.operator = Operator(self.settings, login=self._login)
        ready = asyncio.Event()
        task = asyncio.create_task(self.operator.run(stop_flag=self._stop, ready_flag=ready))
        for _ in range(1500):  # the webhook's URL is known once kopf has scanned the resources
            if (ready.is_set() and self.operator.webhook.url) or task.done():
                break
            await asyncio.sleep(0.02)
        self._ready.set()
        await task

    async def start(self) -> RunningOperator:
        self._thread.start()
        await asyncio.to_thread(self._ready.wait, 30)
        if self.error is not None:
            raise self.error
        assert self.operator is not None and self.operator.webhook.url, "operator did not start"
        return self

    async def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        await asyncio.to_thread(self._thread.join, 30)
        assert not self._thread.is_alive(), "operator did not stop"
        if self.error is not None and not isinstance(self.error, asyncio.CancelledError):
            raise self.error

    @property
    def op(self) -> Operator:
        assert self.operator is not None
        return self.operator

    @property
    def stream_address(self) -> str:
        return f"127.0.0.1:{self.op.stream.port}"

    @property
    def ca_pem(self) -> str:
        return self.op.certs.ca_pem

    def metric(self, name: str, **labels: str) -> float:
        return self.op.metrics.registry.get_sample_value(name, labels or None) or 0.0


StartOperator = Callable[..., Coroutine[Any, Any, RunningOperator]]


def operator_settings(tmp_path: Path, **overrides: Any) -> OperatorSettings:
    s = OperatorSettings()
    s.webhook.addr, s.webhook.port = "127.0.0.1", 0
    s.webhook.mutating_configuration = s.webhook.validating_configuration = "parley-operator"
    s.stream.addr, s.stream.port = "127.0.0.1", 0
    s.metrics_addr, s.metrics_port, s.health_port = "127.0.0.1", 0, 0
    s.certs.mounted_dir = tmp_path / "mounted"
    s.certs.work_dir = tmp_path / f"work-{uuid.uuid4().hex[:8]}"
    s.certs.extra_sans = ("127.0.0.1", "localhost")
    s.injector.sidecar_image = "registry.test/parley-sidecar:1"
    for key, value in overrides.items():
        group, _, field = key.partition("__")
        target = getattr(s, group) if field else s
        setattr(target, field or group, value)
    return s


@pytest.fixture
async def start_operator(cluster: Cluster, tmp_path: Path) -> AsyncIterator[StartOperator]:
    """``await start_operator(stream__resync=5.0, ...)``: ``group__field`` overrides a setting."""
    running: list[RunningOperator] = []

    async def start(**overrides: Any) -> RunningOperator:
        op = RunningOperator(operator_settings(tmp_path, **overrides), cluster.url)
        running.append(op)
        return await op.start()

    yield start
    for op in running:
        await op.stop()


# -- sidecars ----------------------------------------------------------------------------------------
@pytest.fixture
async def operator_link(cluster: Cluster, start_operator: StartOperator, tmp_path: Path) -> OperatorLink:
    """A running operator and the pod ``shop/web-1`` (app id ``web``): the link a whole sidecar in that
    pod opens, its token and the operator's CA written to ``tmp_path`` (the sidecar reads them only from
    files, which the injector mounts)."""
    pod = await cluster.add_pod("shop", "web-1", "web")
    op = await start_operator()
    (tmp_path / "token").write_text(cluster.tokens.issue(pod))
    (tmp_path / "ca.crt").write_text(op.ca_pem)
    return OperatorLink(address=op.stream_address, token_path=tmp_path / "token", ca_path=tmp_path / "ca.crt",
                        namespace="shop")


class SnapshotAwareStore(ComponentStore):
    """The sidecar's real store, counting the operator's messages applied to it. Every message ends in
    one ``sync`` and the first is always the snapshot, so ``synced > 0`` means "the snapshot is in"."""

    def __init__(self) -> None:
        super().__init__()
        self.synced = 0

    async def sync(self, sources: Mapping[str, Iterable[ComponentSpec]]) -> list[str]:
        try:
            return await super().sync(sources)
        finally:
            self.synced += 1


class SidecarLink:
    """A sidecar's stream client and component store, as ``parley-sidecar`` runs them."""

    def __init__(self, pod: PodRef, address: str, token: str, ca_pem: str, directory: Path) -> None:
        from parley_sidecar.settings import OperatorLink

        directory.mkdir(parents=True, exist_ok=True)
        (directory / "token").write_text(token)
        (directory / "ca.crt").write_text(ca_pem)
        self.pod = pod
        self.link = OperatorLink(address=address, token_path=directory / "token", ca_path=directory / "ca.crt",
                                 namespace=pod.namespace)
        self.store = SnapshotAwareStore()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> SidecarLink:
        from parley_sidecar.loading import operator_stream

        self.task = asyncio.create_task(operator_stream.follow(
            self.link, self.store, app_id=self.pod.app_id, min_delay=0.05, max_delay=0.5))
        return self

    def names(self) -> set[str]:
        return {e.spec.name for e in self.store.entries()}

    def metadata(self, name: str) -> dict[str, str]:
        entry = self.store.get(name)
        assert entry is not None, f"{name} not loaded"
        return dict(entry.spec.metadata)

    async def wait_for(self, check: Callable[[], bool], timeout: float = 1.0) -> float:
        """Seconds until ``check()`` held; fails after ``timeout``."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        while not check():
            if loop.time() - started > timeout:
                raise AssertionError(f"not within {timeout}s; the sidecar has {sorted(self.names())}")
            await asyncio.sleep(0.01)
        return loop.time() - started

    async def wait_names(self, names: set[str], timeout: float = 1.0) -> float:
        """Seconds until the sidecar has exactly ``names``, counted only once its snapshot arrived (an
        empty set would otherwise hold before the sidecar ever heard from the operator)."""
        return await self.wait_for(lambda: self.store.synced > 0 and self.names() == names, timeout)

    async def aclose(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.store.aclose()


StartSidecar = Callable[..., Coroutine[Any, Any, SidecarLink]]


@pytest.fixture
async def start_sidecar(cluster: Cluster, tmp_path: Path) -> AsyncIterator[StartSidecar]:
    """``await start_sidecar(operator, pod, token=None, connected=True)``: a token is issued for the pod
    unless given; with ``connected`` it returns once the operator counts the new stream."""
    links: list[SidecarLink] = []

    async def start(operator: RunningOperator, pod: PodRef, *, token: str | None = None,
                    connected: bool = True) -> SidecarLink:
        link = SidecarLink(pod, operator.stream_address, token if token is not None else cluster.tokens.issue(pod),
                           operator.ca_pem, tmp_path / f"sidecar-{len(links)}")
        links.append(link)
        before = operator.metric("parley_operator_connected_sidecars")
        link.start()
        if connected:
            await link.wait_for(lambda: operator.metric("parley_operator_connected_sidecars") > before, 5.0)
        return link

    yield start
    for link in links:
        await link.aclose()
