"""Resiliency and Configuration against a real Kubernetes API server: what a user sees after
``kubectl apply`` of Dapr's own manifests.

The operator runs as in conftest.py (deploy/'s RBAC and webhooks, a pod-bound ServiceAccount token).
Each "sidecar" here is the real stream client (``operator_stream.follow``) feeding a real
``ComponentStore``, with the files kubelet would mount for an injected pod: its projected token and
the operator's CA. Pods are created through the API (so the mutating webhook injects them), never run.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from parley_sidecar.components.store import ComponentStore
from parley_sidecar.loading import configuration, operator_stream
from parley_sidecar.loading import stream_protocol as protocol
from parley_sidecar.runtime import Sidecar
from parley_sidecar.settings import OperatorLink, Ports, SidecarSettings
from tests.conftest import StartSidecar
from tests.envtest import cluster
from tests.envtest.cluster import ApiError
from tests.envtest.conftest import APP_NS, Installed, RunningOperator, marker_pod

DAPR = f"/apis/dapr.io/v1alpha1/namespaces/{APP_NS}"


def resiliency(name: str, targets: list[str], *, timeout: str = "7s", scopes: list[str] | None = None,
               ) -> dict[str, Any]:
    """Dapr's documented shape: one timeout policy ``general`` on each target component's outbound."""
    body: dict[str, Any] = {
        "apiVersion": "dapr.io/v1alpha1", "kind": "Resiliency", "metadata": {"name": name, "namespace": APP_NS},
        "spec": {"policies": {"timeouts": {"general": timeout}},
                 "targets": {"components": {t: {"outbound": {"timeout": "general"}} for t in targets}}}}
    if scopes is not None:
        body["scopes"] = scopes
    return body


def echo(name: str) -> dict[str, Any]:
    return {"apiVersion": "dapr.io/v1alpha1", "kind": "Component", "metadata": {"name": name, "namespace": APP_NS},
            "spec": {"type": "conversation.echo", "version": "v1", "metadata": []}}


class Sidecars:
    """Injected pods and their sidecars' stream clients; everything made here is removed afterwards."""

    def __init__(self, installed: Installed, operator: RunningOperator, directory: Path) -> None:
        self.admin, self.operator, self.directory = installed.admin, operator, directory
        self.tasks: list[asyncio.Task[None]] = []
        self.stores: list[ComponentStore] = []
        self.pods: list[str] = []

    def pod(self, name: str, **annotations: str) -> dict[str, Any]:
        created = self.admin.create(f"/api/v1/namespaces/{APP_NS}/pods", marker_pod(name, **annotations))
        self.pods.append(name)
        assert created["metadata"]["labels"]["dapr.io/sidecar-injected"] == "true"
        return dict(created)

    def link(self, pod: dict[str, Any]) -> OperatorLink:
        """The pod's way to the operator, as injected: its projected token and the CA from its annotations."""
        where = self.directory / pod["metadata"]["name"]
        where.mkdir()
        (where / "token").write_text(self.admin.token_for(APP_NS, "default", audience="parley-operator", pod=pod))
        [ca] = [v for k, v in pod["metadata"]["annotations"].items() if "ca" in k.split("/")[-1]]
        (where / "ca.crt").write_text(ca)
        return OperatorLink(address=f"127.0.0.1:{self.operator.stream_port}", token_path=where / "token",
                            ca_path=where / "ca.crt", namespace=APP_NS)

    def start(self, pod: dict[str, Any], first: asyncio.Future[protocol.Snapshot] | None = None) -> ComponentStore:
        link = self.link(pod)
        store = ComponentStore()
        self.stores.append(store)
        app_id = pod["metadata"]["annotations"]["dapr.io/app-id"]
        self.tasks.append(asyncio.create_task(operator_stream.follow(
            link, store, app_id=app_id, min_delay=0.05, max_delay=0.5, first_snapshot=first)))
        return store

    async def aclose(self) -> None:
        for task in self.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for store in self.stores:
            await store.aclose()
        for name in self.pods:
            with contextlib.suppress(ApiError):
                self.admin.delete(f"/api/v1/namespaces/{APP_NS}/pods/{name}")


@pytest.fixture
async def sidecars(installed: Installed, operator: RunningOperator, tmp_path: Path) -> AsyncIterator[Sidecars]:
    made = Sidecars(installed, operator, tmp_path)
    yield made
    await made.aclose()


@pytest.fixture
def clean(installed: Installed) -> Iterator[None]:
    """Resiliencies and Components made by a test go when it ends (the API server is shared)."""
    yield
    for plural in ("resiliencies", "components", "configurations"):
        for item in installed.admin.get(f"{DAPR}/{plural}").get("items", ()):
            installed.admin.delete(f"{DAPR}/{plural}/{item['metadata']['name']}")


def timeout_of(store: ComponentStore, name: str) -> float | None:
    entry = store.get(name)
    return None if entry is None else entry.settings.resiliency.timeout


async def until(check: Callable[[], bool], timeout: float = 20.0) -> float:
    """Seconds until ``check()`` held."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, "timed out"
        await asyncio.sleep(0.005)
    return time.monotonic() - started


# -- the validating webhook -------------------------------------------------------------------------

def test_a_bad_resiliency_is_refused_at_apply_naming_the_field(installed: Installed, operator: RunningOperator,
                                                               clean: None) -> None:
    with pytest.raises(ApiError) as info:
        installed.admin.create(f"{DAPR}/resiliencies", resiliency("typo", ["llm"], timeout="five seconds"))
    assert info.value.status == 400
    message = info.value.message
    assert 'admission webhook "resiliencies.parley.io" denied the request' in message
    assert "field 'spec.policies.timeouts.general'" in message
    with pytest.raises(ApiError):
        installed.admin.get(f"{DAPR}/resiliencies/typo")


def test_daprs_crd_and_the_webhook_accept_daprs_documented_resiliency(installed: Installed,
                                                                      operator: RunningOperator) -> None:
    documented = {
        "apiVersion": "dapr.io/v1alpha1", "kind": "Resiliency", "metadata": {"name": "myresiliency"},
        "scopes": ["checkout"],
        "spec": {"policies": {
            "timeouts": {"general": "5s", "important": "60s", "largeResponse": "10s"},
            "retries": {"pubsubRetry": {"policy": "constant", "duration": "5s", "maxRetries": 10},
                        "retryForever": {"policy": "exponential", "maxInterval": "15s", "maxRetries": -1},
                        "important": {"policy": "constant", "duration": "5s", "maxRetries": 30,
                                      "matching": {"httpStatusCodes": "429,500-504", "gRPCStatusCodes": "1-4,8-11"}}},
            "circuitBreakers": {"simpleCB": {"maxRequests": 1, "timeout": "30s", "trip": "consecutiveFailures >= 5"}}},
            "targets": {"apps": {"appB": {"timeout": "general", "retry": "important"}},
                        "components": {"llm": {"outbound": {"timeout": "general", "retry": "retryForever",
                                                            "circuitBreaker": "simpleCB"}}}}},
    }
    created = installed.admin.create(f"{DAPR}/resiliencies", documented, params={"dryRun": "All"})
    assert created["spec"] == documented["spec"] and created["scopes"] == ["checkout"]


# -- delivery ----------------------------------------------------------------------------------------

async def test_a_resiliency_reaches_the_sidecars_in_its_scopes_live_and_leaves_when_deleted(
        installed: Installed, sidecars: Sidecars, clean: None) -> None:
    admin = installed.admin
    admin.apply(echo("llm"))
    web, batch = sidecars.start(sidecars.pod("web")), sidecars.start(sidecars.pod("batch"))
    await until(lambda: web.get("llm") is not None and batch.get("llm") is not None)
    own = timeout_of(web, "llm")
    admin.apply(resiliency("llm-policy", ["llm"], scopes=["web"]))
    await until(lambda: timeout_of(web, "llm") == 7.0)
    assert timeout_of(batch, "llm") == own  # not in scopes
    admin.merge_patch(f"{DAPR}/resiliencies/llm-policy", {"spec": {"policies": {"timeouts": {"general": "9s"}}},
                                                           "scopes": []})  # every app now, and a new timeout
    await until(lambda: timeout_of(web, "llm") == 9.0 and timeout_of(batch, "llm") == 9.0)
    admin.delete(f"{DAPR}/resiliencies/llm-policy")
    await until(lambda: timeout_of(web, "llm") == own and timeout_of(batch, "llm") == own)


async def test_a_resiliency_past_a_disabled_webhook_is_refused_and_the_last_good_one_serves(
        installed: Installed, operator: RunningOperator, sidecars: Sidecars, clean: None) -> None:
    admin = installed.admin
    admin.apply(echo("llm"))
    admin.apply(resiliency("llm-policy", ["llm"], timeout="7s"))
    store = sidecars.start(sidecars.pod("guarded"))
    await until(lambda: timeout_of(store, "llm") == 7.0)
    path = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/parley-operator"
    saved = admin.get(path)
    hooks = [h for h in saved["webhooks"] if h["name"] != "resiliencies.parley.io"]
    admin.request("PUT", path, {**saved, "webhooks": hooks})  # the webhook is off, as with failurePolicy Ignore
    try:
        bad = resiliency("llm-policy", ["llm"], timeout="soon")

        def stored() -> bool:  # admission picks up the change through an informer
            admin.apply(bad)
            return bool(admin.get(f"{DAPR}/resiliencies/llm-policy")["spec"]["policies"]["timeouts"]["general"]
                        == "soon")

        cluster.wait_for(stored, timeout=30, interval=0.5, what="the bad Resiliency stored")

        def warned() -> bool:
            events = admin.get(f"/api/v1/namespaces/{APP_NS}/events")["items"]
            return any(e["reason"] == "Invalid" and e["involvedObject"]["name"] == "llm-policy"
                       and "spec.policies.timeouts.general" in e["message"] for e in events)

        cluster.wait_for(warned, timeout=20, what="a Warning Event naming the field")
        assert "the last good version keeps serving" in operator.log_tail(200)
        assert timeout_of(store, "llm") == 7.0
    finally:
        current = admin.get(path)
        admin.request("PUT", path, {**saved, "metadata": {**saved["metadata"],
                                                          "resourceVersion": current["metadata"]["resourceVersion"]}})


async def test_time_from_a_resiliency_change_to_the_sidecar_applying_it(
        installed: Installed, sidecars: Sidecars, clean: None, capsys: pytest.CaptureFixture[str]) -> None:
    """Median of 20 changes, each a PATCH through the API server, timed until the sidecar's store
    has the new policy (the API's answer to the PATCH starts the clock)."""
    admin = installed.admin
    admin.apply(echo("llm"))
    admin.apply(resiliency("bench", ["llm"], timeout="1s"))
    store = sidecars.start(sidecars.pod("bench"))
    await until(lambda: timeout_of(store, "llm") == 1.0)
    samples: list[float] = []
    for i in range(2, 22):
        body = {"spec": {"policies": {"timeouts": {"general": f"{i}s"}}}}
        await asyncio.to_thread(admin.merge_patch, f"{DAPR}/resiliencies/bench", body)
        samples.append(await until(lambda i=i: timeout_of(store, "llm") == float(i)))
    with capsys.disabled():
        print(f"\nResiliency change → sidecar applied, through parley-operator: median {statistics.median(samples) * 1000:.1f} ms, "
              f"p90 {sorted(samples)[17] * 1000:.1f} ms, max {max(samples) * 1000:.1f} ms (n={len(samples)})")


# -- Configuration -------------------------------------------------------------------------------------

async def test_the_pods_configuration_is_delivered_at_start(installed: Installed, sidecars: Sidecars,
                                                            clean: None) -> None:
    installed.admin.apply({"apiVersion": "dapr.io/v1alpha1", "kind": "Configuration",
                           "metadata": {"name": "appconfig", "namespace": APP_NS},
                           "spec": {"metric": {"enabled": False},
                                    "logging": {"apiLogging": {"enabled": True, "omitHealthChecks": True}},
                                    "tracing": {"samplingRate": "1", "zipkin": {"endpointAddress": "http://z:9411"}}}})
    pod = sidecars.pod("configured", **{"dapr.io/config": "appconfig"})
    assert "--config" in pod["spec"]["containers"][-1]["args"]
    first: asyncio.Future[protocol.Snapshot] = asyncio.get_running_loop().create_future()
    sidecars.start(pod, first)
    config = await operator_stream.configuration_of(first, "appconfig", timeout=20)
    assert config.metrics_enabled is False
    assert config.api_logging.enabled is True and config.api_logging.omit_health_checks is True
    assert config.tracing.zipkin_endpoint == "http://z:9411"


async def test_a_missing_configuration_stops_the_start(installed: Installed, sidecars: Sidecars) -> None:
    pod = sidecars.pod("misconfigured", **{"dapr.io/config": "does-not-exist"})
    first: asyncio.Future[protocol.Snapshot] = asyncio.get_running_loop().create_future()
    sidecars.start(pod, first)
    with pytest.raises(configuration.ConfigurationError, match="'does-not-exist' not found in namespace 'team-a'"):
        await operator_stream.configuration_of(first, "does-not-exist", timeout=20)

    def explained_on_the_pod() -> bool:
        events = installed.admin.get(f"/api/v1/namespaces/{APP_NS}/events")["items"]
        return any(e["reason"] == "ConfigurationNotFound" and e["involvedObject"]["name"] == "misconfigured"
                   and e["involvedObject"]["kind"] == "Pod" and "'does-not-exist'" in e["message"] for e in events)

    cluster.wait_for(explained_on_the_pod, timeout=20, what="a ConfigurationNotFound Event on the pod")


async def test_a_real_sidecar_of_a_configured_pod_serves_under_its_configuration(
        installed: Installed, sidecars: Sidecars, start_sidecar: StartSidecar, clean: None) -> None:
    installed.admin.apply({"apiVersion": "dapr.io/v1alpha1", "kind": "Configuration",
                           "metadata": {"name": "quiet", "namespace": APP_NS}, "spec": {"metric": {"enabled": False}}})
    installed.admin.apply(echo("echo"))
    pod = sidecars.pod("quiet-app", **{"dapr.io/config": "quiet"})
    link = sidecars.link(pod)
    # As the injected container runs it: --mode kubernetes --config quiet (cli: kubernetes_config).
    running = await start_sidecar({}, app_id="quiet-app", namespace=APP_NS, operator=link, kubernetes_config="quiet",
                                  enable_metrics=True)
    status, body = await running.post("/v1.0-alpha1/conversation/echo/converse", {"inputs": [{"content": "hi"}]})
    assert (status, body) == (200, {"outputs": [{"result": "hi"}]})  # the snapshot was in before serving
    async with running.session.get(running.metrics + "/metrics") as resp:
        assert resp.status == 200 and await resp.text() == ""  # spec.metric.enabled: false, as daprd


async def test_a_real_sidecar_whose_configuration_is_missing_does_not_start(
        installed: Installed, sidecars: Sidecars) -> None:
    pod = sidecars.pod("lost-app", **{"dapr.io/config": "nowhere"})
    link = sidecars.link(pod)
    sidecar = Sidecar(SidecarSettings(app_id="lost-app", namespace=APP_NS, operator=link, kubernetes_config="nowhere",
                                      ports=Ports(http=0, grpc=0, metrics=0, public=0)))
    try:
        with pytest.raises(configuration.ConfigurationError, match="'nowhere' not found"):
            await sidecar.start()  # cli turns this into daprd's fatal line and exit 1
        assert not sidecar.bound, "nothing listens: the app never sees a sidecar without its Configuration"
    finally:
        await sidecar.stop()
