"""Assembles and runs the sidecar: servers, component sources, the pipeline, shutdown.

:class:`Sidecar` starts everything on the configured ports and stops it gracefully; tests use it
in-process on free ports, ``cli.main`` runs it until SIGTERM or the shutdown API (HTTP
``POST /v1.0/shutdown``, gRPC ``Shutdown``). With ``--dapr-block-shutdown-duration`` the sidecar
first keeps serving as usual for that long (daprd's block). Then in-flight requests finish (up to
``--dapr-graceful-shutdown-seconds``): listeners close first, so new connections are refused, then
handlers drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from parley_sidecar import tracing
from parley_sidecar.api import connections, metadata, public, surface
from parley_sidecar.api import grpc as grpc_api
from parley_sidecar.api import http as http_api
from parley_sidecar.api.api_log import ApiLog
from parley_sidecar.api.grpc_server import Server as GrpcServer
from parley_sidecar.components import catalog
from parley_sidecar.components.component_settings import ComponentSettings
from parley_sidecar.components.spec import ComponentSpec
from parley_sidecar.components.store import ComponentStore
from parley_sidecar.conversation import pipeline as pipeline_mod
from parley_sidecar.conversation.pipeline import Pipeline
from parley_sidecar.dapr_proto import metadata_pb2
from parley_sidecar.loading import configuration
from parley_sidecar.loading.resources import ResourcesLoader
from parley_sidecar.metrics import Metrics
from parley_sidecar.settings import RUNTIME_VERSION, SidecarSettings

__all__ = ["Sidecar", "run"]

log = logging.getLogger("parley.runtime")

BUILTIN_ECHO = ComponentSpec(name="echo", type="conversation.echo", version="v1", source="builtin")


class Sidecar:
    def __init__(self, settings: SidecarSettings) -> None:
        self.settings = settings
        self.metrics = Metrics(settings.app_id, settings.namespace)
        # No shared HTTP session: each component opens its own bounded pool (maxConnections).
        self.store = ComponentStore(validate=_validator(settings.workers),
                                    on_load_error=lambda name: self.metrics.component_errors.inc((name,)))
        self.pipeline = Pipeline(self.store, self.metrics)
        self.loader: ResourcesLoader | None = None
        self._runners: list[web.AppRunner] = []
        self._grpc: GrpcServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.extended = metadata.ExtendedMetadata()
        self.traced = False
        """Tracing was turned on by this sidecar's Configuration or environment (``tracing.start``)."""
        self.shutdown_requested = asyncio.Event()
        """Set by SIGTERM/SIGINT (in ``_main``) or the shutdown API; ``_main`` then stops the sidecar."""
        self.force_exit = False
        """The shutdown API was called with ``dapr-force-shutdown: true``: exit 1 without draining."""
        self.ready = False
        self.bound: dict[str, int] = {}
        """Actual ports after start (useful when a port of 0 asked the OS to choose); no ``http`` and
        ``grpc`` entries when the API is on unix sockets."""
        self.sockets: dict[str, Path] = {}
        """``http``/``grpc`` → the unix socket serving that API (``--unix-domain-socket``)."""
        self.listeners: dict[str, list[socket.socket]] = {}
        """``http``/``public``/``metrics``/``grpc`` → listening sockets bound before the workers were forked
        (``--workers``): served as they are instead of binding the configured addresses."""
        self.shutdown_hook: Callable[[bool], None] | None = None
        """Also told of a shutdown API call (a worker tells the first one, which stops them all)."""
        self.metrics_text: Callable[[], bytes] | Callable[[], Awaitable[bytes]] = self.metrics.render
        """What the metrics port answers (with workers, the first one's answers the sum over all)."""

    def describe(self) -> metadata_pb2.GetMetadataResponse:
        """gRPC ``GetMetadata`` and ``/v1.0/metadata``: names, types and versions only; never a metadata value."""
        return metadata.describe(self.settings.app_id, (e.spec for e in self.store.entries()), self.extended)

    def request_shutdown(self, force: bool = False) -> None:
        """The shutdown API: daprd's "Shutdown requested via API", then what SIGTERM does."""
        if force:
            log.warning("Force shutdown requested, exiting immediately without graceful shutdown")
        else:
            log.info("Shutdown requested via API")
        self.force_exit = self.force_exit or force
        self.shutdown_requested.set()
        if self.shutdown_hook is not None:
            self.shutdown_hook(force)

    async def _serve(self, app: web.Application, hosts: list[str], port: int, label: str,
                     unix_dir: Path | None = None) -> None:
        # Every port: each request counted and no exception let out, a deadline for each request
        # head, an idle limit, and a handler cancelled when its client disconnects.
        surface.install(app, self.metrics)
        limits = self.settings.connections
        runner = connections.Runner(app, access_log=None, shutdown_timeout=self.settings.limits.graceful_shutdown,
                                    head_timeout=limits.read_header_timeout, idle_timeout=limits.idle_timeout,
                                    read_buffer_size=self.settings.limits.read_buffer_size,
                                    handler_cancellation=True,
                                    # daprd's Go server never decodes a request's Content-Encoding:
                                    # the body is parsed as sent, so a gzip body is a malformed one.
                                    auto_decompress=False)
        await runner.setup()
        self._runners.append(runner)

        async def tcp(host: str, port: int) -> int:
            site = web.TCPSite(runner, host, port, reuse_address=True)
            try:
                await site.start()
            except OSError:
                await site.stop()
                raise
            if port == 0 and isinstance(site._server, asyncio.Server):
                port = site._server.sockets[0].getsockname()[1]
            return port

        async def sock(bound: socket.socket) -> None:
            await web.SockSite(runner, bound).start()

        async def unix(path: str) -> None:
            await web.UnixSite(runner, path).start()

        await self._listen(label, hosts, port, unix_dir, tcp=tcp, sock=sock, unix=unix)

    async def _listen(self, label: str, hosts: list[str], port: int, unix_dir: Path | None, *,
                      tcp: Callable[[str, int], Awaitable[int]], sock: Callable[[socket.socket], Awaitable[None]],
                      unix: Callable[[str], Awaitable[None]]) -> None:
        """Serve API ``label`` (HTTP's through aiohttp, gRPC's through grpclib, alike): on the
        sockets bound before the workers were forked (``--workers``), else on a unix socket in
        ``unix_dir``, else on ``port`` of each host (``tcp`` answers the port bound: 0 picks one)."""
        if label in self.listeners:
            for bound in self.listeners[label]:
                await sock(bound)
            self.bound[label] = self.listeners[label][0].getsockname()[1]
            return
        if unix_dir is not None:
            path = self._socket_path(unix_dir, label)
            await unix(str(path))
            self._socket_ready(path, label)
            return
        listening = 0
        for host in hosts:
            try:
                port = await tcp(_bare(host), port)
            except OSError as exc:  # daprd skips an address it cannot bind (no IPv6 …) and uses the rest
                log.warning("cannot listen on %s port %d (%s API): %s", host, port, label, exc.strerror or exc)
                continue
            listening += 1
        if not listening:
            raise OSError(f"could not listen on any of {', '.join(hosts)} port {port} ({label} API)")
        self.bound[label] = port

    def _socket_path(self, unix_dir: Path, label: str) -> Path:
        """daprd's name for the socket; a socket left by a previous run (the emptyDir outlives a
        container restart) is removed, anything else at that path is left and the bind fails."""
        path = unix_dir / f"dapr-{self.settings.app_id}-{label}.socket"
        if path.is_socket():
            path.unlink()
        return path

    def _socket_ready(self, path: Path, label: str) -> None:
        # The directory is the pod's own emptyDir, and the app's container may run as another
        # user: connecting needs write permission on the socket.
        path.chmod(0o666)
        self.sockets[label] = path

    async def start(self) -> None:
        s = self.settings
        started = time.perf_counter()
        if s.config_file is not None:
            s.configuration = configuration.load(s.config_file)  # ConfigurationError: the start stops
        if s.operator.address:
            await self._follow_operator()
        self._apply_configuration()
        if s.resources_paths:
            self.loader = ResourcesLoader(s.resources_paths, self.store, app_id=s.app_id,
                                          interval=s.reload_interval,
                                          on_resiliency_error=lambda file: self.metrics.resiliency_errors.inc((file,)))
            await self.loader.load()
            self._tasks.append(asyncio.create_task(self.loader.watch(), name="resources-watch"))
        if not s.operator.address and not s.resources_paths:
            log.info("no --resources-path given: serving the built-in 'echo' component")
            await self.store.apply(BUILTIN_ECHO)
        api = http_api.build_app(self.pipeline, self.metrics, api_token=s.api_token,
                                 max_body_size=s.limits.max_body_size, describe=self.describe,
                                 extended=self.extended, shutdown=self.request_shutdown)
        await self._serve(api, s.listen_addresses, s.ports.http, "http", s.unix_domain_socket)
        pub = web.Application()
        public.add_routes(pub, self.describe, extended=self.extended, extended_writable=False,
                          ready=lambda: self.ready)
        await self._serve(pub, [s.public_listen_address], s.ports.public, "public")
        if s.enable_metrics and (s.workers == 1 or "metrics" in self.listeners):  # with workers: the first one
            await self._serve(self._metrics_app(), [s.metrics_listen_address], s.ports.metrics,
                              "metrics")
        self._grpc = grpc_api.server(
            self.pipeline, self.metrics, token=s.api_token or None, max_receive=s.limits.max_body_size,
            max_idle=s.connections.grpc_max_idle,
            runtime=grpc_api.RuntimeServicer(self.describe, self.extended, self.request_shutdown, self.metrics))
        await self._listen("grpc", s.listen_addresses, s.ports.grpc, s.unix_domain_socket, tcp=self._grpc.listen,
                           sock=self._grpc.serve_socket, unix=self._grpc.listen_unix)
        self.ready = True
        log.info(
            "parley sidecar %s ready in %.0f ms: HTTP %s, gRPC %s, public %d, metrics %s; components: %s",
            RUNTIME_VERSION, (time.perf_counter() - started) * 1000, self._where("http"), self._where("grpc"),
            self.bound["public"], self.bound.get("metrics", "off" if s.workers == 1 else "on worker 1"),
            ", ".join(sorted(e.spec.name for e in self.store.entries())) or "none",
        )

    def _where(self, label: str) -> str:
        return str(self.sockets[label]) if label in self.sockets else str(self.bound[label])

    async def _follow_operator(self) -> None:
        """Kubernetes mode: follow the operator's stream. With ``--config NAME`` (``dapr.io/config``)
        wait for that Configuration in the first snapshot: daprd too reads it once, before serving."""
        from parley_sidecar.loading import operator_stream

        s = self.settings
        first: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._tasks.append(asyncio.create_task(operator_stream.follow(
            s.operator, self.store, app_id=s.app_id, first_snapshot=first), name="operator-stream"))
        if s.kubernetes_config:  # ConfigurationError (missing, or no operator in time): the start stops
            s.configuration = await operator_stream.configuration_of(first, s.kubernetes_config)

    def _apply_configuration(self) -> None:
        s, config = self.settings, self.settings.configuration
        self.metrics.enabled = config.metrics_enabled
        unmatched = self.metrics.apply_rules([
            (rule.name, label.label, [(pattern, configuration.go_template(repl)) for pattern, repl in label.pairs])
            for rule in config.metric_rules for label in rule.labels])
        if unmatched:
            log.warning("Configuration spec.metric.rules name no metric label of parley's: %s", ", ".join(unmatched))
        api = config.api_logging
        if s.enable_api_logging if s.enable_api_logging is not None else api.enabled:
            self.metrics.api_log = ApiLog(obfuscate_urls=api.obfuscate_urls, omit_health_checks=api.omit_health_checks)
            log.info("API logging is enabled")
        # Before the servers are built: they add their tracing hooks only when it is on.
        self.traced = tracing.start(config.tracing, app_id=s.app_id, environ=os.environ) is not None

    def _metrics_app(self) -> web.Application:
        from parley_sidecar.metrics import CONTENT_TYPE

        render = self.metrics_text

        async def scrape(request: web.Request) -> web.Response:
            body = render()
            if not isinstance(body, bytes):
                body = await body
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

        app = web.Application()
        app.router.add_get("/", scrape)
        app.router.add_get("/metrics", scrape)
        return app

    async def stop(self) -> None:
        """Stop listening, let in-flight requests finish, then release components."""
        self.ready = False
        grace = self.settings.limits.graceful_shutdown
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        waits: list[Any] = [runner.cleanup() for runner in self._runners]
        if self._grpc is not None:
            waits.append(self._grpc.stop(grace))
        await asyncio.gather(*waits, return_exceptions=True)
        for path in self.sockets.values():  # as daprd: the next start finds the directory clean
            with contextlib.suppress(OSError):
                path.unlink()
        await self.pipeline.aclose()
        await self.store.aclose()
        if self.traced:
            self.traced = False
            await asyncio.to_thread(tracing.stop)  # the last spans leave (within the exporter's timeout)
        log.info("parley sidecar stopped")

    async def block_shutdown(self) -> None:
        """daprd's ``--dapr-block-shutdown-duration``: keep serving as usual before shutting down."""
        block = self.settings.limits.block_shutdown
        if block > 0:
            log.info("Blocking graceful shutdown for %gs...", block)
            await asyncio.sleep(block)
            log.info("Block shutdown period expired, entering shutdown...")


def _validator(workers: int) -> Callable[[Mapping[str, Any]], None]:
    """The store's load-time check: the pipeline's, and with workers, memory kept out of process."""
    if workers == 1:
        return pipeline_mod.check_settings

    def check(resolved: Mapping[str, Any]) -> None:
        pipeline_mod.check_settings(resolved)
        memory = ComponentSettings.of(resolved).memory
        if memory.enabled and not memory.store:
            raise catalog.MetadataError("memory", (
                f"with {workers} worker processes (--workers) each would keep its own history, and a "
                "conversation would lose its earlier turns whenever a call reached another worker; set "
                "memoryStore: redis://... to share it, or run one worker"))

    return check


Prepare = Callable[[Sidecar], None]
"""Called with the sidecar before it starts (``workers`` links each worker to the first one)."""


async def _main(settings: SidecarSettings, prepare: Prepare | None = None) -> None:
    sidecar = Sidecar(settings)
    if prepare is not None:
        prepare(sidecar)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, sidecar.shutdown_requested.set)
    try:
        await sidecar.start()
    except configuration.ConfigurationError as exc:  # daprd: a fatal log line, exit 1
        log.critical("%s", exc)
        await sidecar.stop()
        raise SystemExit(1) from None
    except OSError as exc:
        log.error("cannot start: %s", exc)
        await sidecar.stop()
        raise SystemExit(1) from None
    # What start built (modules, servers, components) lives as long as the process: frozen, it is
    # left out of every later collection, which then walks only what requests allocate. The
    # collector was off during the start (cli.main), so it is turned (back) on only now.
    gc.freeze()
    gc.enable()
    await sidecar.shutdown_requested.wait()
    if sidecar.force_exit:  # daprd's dapr-force-shutdown: the answer gets 100 ms to leave, then exit 1
        await asyncio.sleep(0.1)
        os._exit(1)
    await sidecar.block_shutdown()
    log.info("shutting down: finishing in-flight requests (up to %gs)", settings.limits.graceful_shutdown)
    await sidecar.stop()


def _bare(host: str) -> str:
    """``[::1]`` (daprd's and Go's spelling of an IPv6 address) → ``::1`` for the socket API."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _loop_factory() -> Any:
    """uvloop when installed (the ``fast`` extra): its C loop and transports measured 6-9 % less
    CPU per echo request than asyncio's (docs/benchmarks.md), for 1.8 MB more RSS.
    ``PARLEY_EVENT_LOOP=asyncio`` keeps the standard loop."""
    if os.environ.get("PARLEY_EVENT_LOOP", "") == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(settings: SidecarSettings, prepare: Prepare | None = None) -> None:
    with asyncio.Runner(loop_factory=_loop_factory()) as loop_runner:
        loop_runner.run(_main(settings, prepare))
