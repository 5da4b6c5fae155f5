"""Assembles and runs the operator: certificates, servers, the delivery hub, then kopf.

Start order matters: the certificates exist before any TLS server starts, the component stream and
metrics listen before kopf (sidecars reconnecting after a restart wait in the hub until kopf's
first listing is complete), and kopf runs last, in the foreground. :class:`Operator` is what
``cli.main`` runs until SIGTERM and what tests run in a thread against kmock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Coroutine
from typing import Any

import kopf
from aiohttp import web

from parley_operator import handlers, kube
from parley_operator.certs import Bundle, CertManager
from parley_operator.delivery import auth, hub, server
from parley_operator.events import EventRecorder
from parley_operator.injection.annotations import LABEL_SIDECAR_INJECTED
from parley_operator.metrics import Metrics
from parley_operator.settings import OperatorSettings
from parley_operator.webhook import WebhookServer

__all__ = ["Operator"]

log = logging.getLogger("parley.operator")


class Operator:
    def __init__(self, settings: OperatorSettings, *, login: kube.Login = kube.default_login) -> None:
        self.settings = settings
        self.login = login
        self.metrics = Metrics(app_id_limit=settings.metrics_app_ids)
        self.client = kube.KubeClient(login)
        self.events = EventRecorder(self.client, instance=settings.pod_name)
        self.certs = CertManager(settings.certs, settings.webhook, self.client)
        self.hub = hub.Hub(read_secret=self.client.secret_data, metrics=self.metrics, events=self.events,
                           settings=settings.stream, read_configuration=self._read_configuration)
        self.auth = auth.Authenticator(self.client, audience=settings.injector.token_audience,
                                       find_pod=self._find_pod, cache_ttl=settings.stream.token_cache_ttl,
                                       cache_size=settings.stream.token_cache_size,
                                       max_reviews=settings.stream.token_reviews,
                                       max_waiting=settings.stream.token_review_queue, metrics=self.metrics)
        self.stream = server.StreamServer(hub=self.hub, auth=self.auth, metrics=self.metrics,
                                          settings=settings.stream)
        self.webhook = WebhookServer(metrics=self.metrics, addr=settings.webhook.addr,
                                     port=settings.webhook.port or None, certfile=self.certs.cert_file,
                                     pkeyfile=self.certs.key_file,
                                     # cheap (two small files hashed); picks up what certs.load() rewrote
                                     file_check_interval=5.0)
        self.metrics_port = 0
        self._runners: list[web.AppRunner] = []
        self._tasks: list[asyncio.Task[None]] = []

    # -- I/O the pure parts need -------------------------------------------------------------------
    async def _find_pod(self, namespace: str, name: str) -> auth.PodRecord | None:
        record = self.hub.find_pod(namespace, name)
        if record is not None:
            return record
        try:  # the pod's watch event may not have arrived yet
            body = await self.client.get(f"/api/v1/namespaces/{namespace}/pods/{name}")
        except kube.APINotFound:
            return None
        labels = (body.get("metadata") or {}).get("labels") or {}
        if labels.get(LABEL_SIDECAR_INJECTED) != "true":
            return None
        return auth.pod_record(body, namespace)

    async def _read_configuration(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            body = await self.client.get(f"/apis/dapr.io/v1alpha1/namespaces/{namespace}/configurations/{name}")
        except kube.APINotFound:
            return None
        return body if isinstance(body, dict) else None

    def _reload_tls(self, context: ssl.SSLContext) -> None:
        def reload(bundle: Bundle) -> None:
            context.load_cert_chain(self.certs.cert_file, self.certs.key_file)
            log.info("reloaded the component stream's certificate")
        self.certs.listeners.append(reload)

    def kopf_settings(self) -> kopf.OperatorSettings:
        s = kopf.OperatorSettings()
        s.posting.enabled = False  # our own Events (events.py); kopf would post its log lines
        s.admission.server = self.webhook
        s.admission.managed = None  # configurations ship with the deployment; we patch caBundle only
        s.watching.connect_timeout = 10  # seconds; an unreachable API server is retried, not waited on
        return s

    # -- lifecycle -------------------------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    async def _serve_metrics(self) -> None:
        runner = web.AppRunner(self.metrics.app(), access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.metrics_addr, self.settings.metrics_port, reuse_address=True)
        await site.start()
        self.metrics_port = runner.addresses[0][1]
        self._runners.append(runner)

    async def start(self) -> None:
        """Everything except kopf itself."""
        await self.certs.load()
        context = self.certs.server_context()
        self._reload_tls(context)
        await self.stream.start(context)
        await self._serve_metrics()
        self._spawn(self.events.run(), "events")
        self._spawn(self.hub.run(), "delivery")
        self._spawn(self._patch_ca_bundles(), "ca-bundles")
        log.info("certificates from %s; component stream on :%d; metrics on :%d", self.certs.source,
                 self.stream.port, self.metrics_port)

    async def _patch_ca_bundles(self) -> None:
        try:
            await self.certs.patch_ca_bundles()
        except kube.APIError as exc:
            log.warning("could not patch the webhook caBundles yet: %s", exc)
        await self.certs.keep_current()

    async def _close_servers_on(self, stop_flag: asyncio.Event) -> None:
        await stop_flag.wait()
        await self._close_servers()

    async def _close_servers(self) -> None:
        runners, self._runners = self._runners, []  # taken first: this may run twice at once
        await self.stream.stop()
        for runner in runners:
            await runner.cleanup()

    async def stop(self) -> None:
        await self._close_servers()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.events.flush()
        await self.client.aclose()

    def _identity(self) -> Any:
        # kopf's default identity calls getpass.getuser(), which raises KeyError for a UID without a
        # passwd entry: 65532 in our images, and whatever runAsUser a cluster picks. The pod name is
        # what kopf itself prefers (its POD_ID); the host name stands in outside a pod.
        return self.settings.pod_name or f"parley-operator@{socket.gethostname()}"

    async def run(self, *, stop_flag: asyncio.Event | None = None, ready_flag: asyncio.Event | None = None) -> None:
        """Run until ``stop_flag`` is set (or the task is cancelled)."""
        stop_flag = stop_flag or asyncio.Event()
        await self.start()
        # Our servers close as soon as stopping begins: kopf waits (5 s) for connection tasks that
        # started while it ran, such as open streams and keep-alive scrapes.
        self._spawn(self._close_servers_on(stop_flag), "server-closer")
        try:
            await kopf.operator(
                registry=handlers.build_registry(handlers.Services(
                    settings=self.settings, login=self.login, metrics=self.metrics, events=self.events,
                    certs=self.certs, hub=self.hub)),
                settings=self.kopf_settings(),
                clusterwide=not self.settings.namespaces,
                namespaces=self.settings.namespaces,
                standalone=True,  # every replica serves webhooks and streams; nothing needs a leader
                liveness_endpoint=(f"http://0.0.0.0:{self.settings.health_port}/healthz"
                                   if self.settings.health_port else None),
                stop_flag=stop_flag,
                ready_flag=ready_flag,
                identity=self._identity(),
            )
        finally:
            await self.stop()
