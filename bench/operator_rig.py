"""Shared by the operator benchmarks: kmock as the Kubernetes API in this process, the real
``parley-operator`` in its own process (logging in through a kubeconfig that points at kmock).

kmock answers TokenReviews for the tokens :class:`Cluster` issues, in the API server's wire format.
The operator's serving certificate names the Service, so clients connect to 127.0.0.1 and verify
the name ``parley-operator.parley-system.svc`` (``SERVER_NAME``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kmock

from bench.harness import free_port, rss_mb

SERVER_NAME = "parley-operator.parley-system.svc"


class Cluster:
    def __init__(self, api: kmock.KubernetesEmulator) -> None:
        self.api = api
        self.tokens: dict[str, tuple[str, str, str]] = {}

    def review(self, request: kmock.Request) -> dict[str, Any]:
        with contextlib.suppress(KeyError):
            del self.api.objects["authentication.k8s.io/v1/tokenreviews", None, None]
        known = self.tokens.get(request.data["spec"]["token"])
        if known is None:
            return {"kind": "TokenReview", "status": {"user": {}, "error": "invalid bearer token"}}
        namespace, name, uid = known
        return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "status": {
            "authenticated": True, "audiences": ["parley-operator"],
            "user": {"username": f"system:serviceaccount:{namespace}:default",
                     "extra": {"authentication.kubernetes.io/pod-name": [name],
                               "authentication.kubernetes.io/pod-uid": [uid]}}}}

    async def send(self, method: str, path: str, body: Any) -> None:
        async with self.api.request(method, path, json=body) as resp:
            assert resp.status < 400, await resp.text()

    async def add_pod(self, namespace: str, name: str, app_id: str) -> str:
        uid = secrets.token_hex(8)
        await self.send("POST", f"/api/v1/namespaces/{namespace}/pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "uid": uid, "resourceVersion": "1",
                         "labels": {"dapr.io/sidecar-injected": "true", "dapr.io/app-id": app_id},
                         "annotations": {"dapr.io/enabled": "true"}},
            "spec": {"containers": [{"name": "app"}, {"name": "daprd"}]}})
        token = secrets.token_urlsafe(32)
        self.tokens[token] = (namespace, name, uid)
        return token

    async def put_component(self, namespace: str, name: str, value: str, *, create: bool = False) -> None:
        spec = {"type": "conversation.echo", "version": "v1", "metadata": [{"name": "responseCacheTTL", "value": value}]}
        path = f"/apis/dapr.io/v1alpha1/namespaces/{namespace}/components"
        if create:
            await self.send("POST", path, {"apiVersion": "dapr.io/v1alpha1", "kind": "Component", "spec": spec,
                                           "metadata": {"name": name, "namespace": namespace, "resourceVersion": "1"}})
        else:
            await self.send("PATCH", f"{path}/{name}", {"spec": spec})


@contextlib.asynccontextmanager
async def cluster() -> AsyncIterator[Cluster]:
    async with kmock.KubernetesEmulator() as api, kmock.Server(api):
        api.resources.load_bundled()
        api.resources["dapr.io/v1alpha1/components"] = kmock.ResourceInfo(
            kind="Component", singular="component", namespaced=True,
            verbs={"list", "watch", "get", "create", "patch", "delete"})
        rig = Cluster(api)
        api["post /apis/authentication.k8s.io/v1/tokenreviews"] << rig.review
        yield rig


class OperatorProcess:
    def __init__(self, process: asyncio.subprocess.Process, ports: dict[str, int], ca_pem: str) -> None:
        self.process, self.ports, self.ca_pem = process, ports, ca_pem

    @property
    def rss_mb(self) -> float:
        return rss_mb(self.process.pid)

    @property
    def cpu_seconds(self) -> float:
        """User + system CPU the operator process has used (immune to other load on the machine)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _wait_port(port: int, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if loop.time() > deadline:
            raise TimeoutError(f"port {port} did not open")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def operator(rig: Cluster, *, resync: float = 60.0) -> AsyncIterator[OperatorProcess]:
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = Path(tmp) / "kubeconfig"
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: kmock\n"
            f"clusters: [{{name: kmock, cluster: {{server: '{rig.api.url}'}}}}]\n"
            "users: [{name: kmock, user: {}}]\n"
            "contexts: [{name: kmock, context: {cluster: kmock, user: kmock}}]\n")
        ports = {"webhook": free_port(), "stream": free_port(), "metrics": free_port()}
        argv = [sys.executable, *os.environ.get("PARLEY_BENCH_PYFLAGS", "").split(), "-m", "parley_operator", "--webhook-port", str(ports["webhook"]),
                "--stream-port", str(ports["stream"]), "--metrics-port", str(ports["metrics"]), "--health-port", "0",
                "--cert-dir", f"{tmp}/none", "--work-dir", tmp, "--resync-seconds", str(resync),
                "--log-level", "warning"]
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "POD_NAMESPACE": "parley-system"}
        process = await asyncio.create_subprocess_exec(*argv, env=env)
        try:
            for port in ports.values():
                await _wait_port(port)
            secret = rig.api.objects["v1/secrets", "parley-system", "parley-operator-tls"]
            ca_pem = base64.b64decode(secret["data"]["ca.crt"]).decode()
            yield OperatorProcess(process, ports, ca_pem)
        finally:
            process.terminate()
            await asyncio.wait_for(process.wait(), 20)
