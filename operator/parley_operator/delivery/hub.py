"""Who gets which Component: one view per namespace, one diff per connected sidecar.

The kopf index ``components_by_namespace`` is the source of truth. A Component event only marks its
namespace dirty; one reconcile task then re-resolves that namespace (Secrets read once per pass,
unchanged Components reused by fingerprint) and sends each sidecar of the namespace the difference
between what it was last sent and what it may see now. Because the view is recomputed from the
index, events may arrive in any order or coalesce, and a scope change becomes an upsert or a
delete for exactly the apps it concerns, as Dapr translates them. Every ``resync`` seconds all
served namespaces are resolved afresh, which picks up rotated Secrets (daprd's 60 s reconcile).

A connecting sidecar is registered under the namespace lock, with its snapshot taken from the same
view, so no change can fall between its snapshot and its first event. A sidecar too slow to keep up
(its queue full) is disconnected; it reconnects and gets a fresh snapshot.

Resiliencies ride the same reconcile: the kopf index ``resiliencies_by_namespace`` gives the view
(``resiliencies.Views``: scopes, and the last good version of a bad one), and each stream gets the
difference. The Configuration a pod names (``dapr.io/config``) is read by name when its sidecar
connects and put in the snapshot, as Dapr's operator answers ``GetConfiguration``; the sidecar uses
the first one it gets (daprd reads its Configuration once, at start).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any

from parley_operator import kube
from parley_operator.component import ComponentRecord
from parley_operator.delivery import resiliencies, resolve
from parley_operator.delivery.auth import Identity, PodRecord
from parley_operator.events import EventRecorder, ObjectRef
from parley_operator.metrics import Metrics
from parley_operator.resiliency import ResiliencyRecord
from parley_operator.settings import StreamSettings
from parley_sidecar.loading import stream_protocol as protocol

__all__ = ["Hub", "NotReady", "SecretReader", "Stream"]

log = logging.getLogger("parley.operator.delivery")

SecretReader = Callable[[str, str], Awaitable[resolve.SecretData | None]]
"""``(namespace, name)`` → the Secret's ``data``, None when it does not exist; raises
``kube.APIError`` when it cannot tell."""

ConfigurationReader = Callable[[str, str], Awaitable[Mapping[str, Any] | None]]
"""``(namespace, name)`` → the Configuration object, None when it does not exist; raises
``kube.APIError`` when it cannot tell."""

ComponentIndex = Mapping[str, Iterable[ComponentRecord]]
PodIndex = Mapping[tuple[str, str], Iterable[PodRecord]]
View = dict[str, resolve.Outcome]


class NotReady(Exception):
    """The operator has not finished its first listing; a snapshot now could be incomplete."""


class Stream:
    """One connected sidecar: its identity, its outgoing lines, and what it was sent."""

    def __init__(self, identity: Identity, *, max_queue: int = 1000) -> None:
        self.identity = identity
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue(max_queue)
        self.sent: dict[str, str] = {}
        """Component name → digest of the version this sidecar has."""
        self.withheld: dict[str, str] = {}
        """Component name → the reason last sent for it."""
        self.resiliencies: dict[str, str] = {}
        """Resiliency name → digest of the version this sidecar has."""
        self.closed = False

    def push(self, line: bytes) -> bool:
        if self.closed:
            return False
        try:
            self._queue.put_nowait(line)
        except asyncio.QueueFull:
            log.warning("sidecar %s/%s is not reading its stream; disconnecting it",
                        self.identity.namespace, self.identity.pod_name)
            self.close()
            return False
        return True

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        while not self._queue.empty():  # make room for the end marker
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def next(self, timeout: float) -> bytes | None:
        """The next line to write, a keepalive after ``timeout`` seconds of quiet, None once closed."""
        # asyncio.timeout, not wait_for: wait_for spawns a task per call, and kopf waits for
        # tasks spawned while it runs before it exits.
        try:
            async with asyncio.timeout(timeout):
                return await self._queue.get()
        except TimeoutError:
            return None if self.closed else _KEEPALIVE


_KEEPALIVE = protocol.encode(protocol.Keepalive())


def _visible(outcome: resolve.Outcome, app_id: str) -> bool:
    return not outcome.scopes or app_id in outcome.scopes


class Hub:
    def __init__(self, *, read_secret: SecretReader, metrics: Metrics, events: EventRecorder,
                 settings: StreamSettings, read_configuration: ConfigurationReader | None = None) -> None:
        self._read_secret = read_secret
        self._read_configuration = read_configuration
        self._metrics = metrics
        self._events = events
        self._settings = settings
        self._components: ComponentIndex = {}
        self._pods: PodIndex = {}
        self._resiliency_index: resiliencies.ResiliencyIndex = {}
        self._resiliency_views = resiliencies.Views()
        self._reported: dict[tuple[str, str], str] = {}
        """Bad Resiliency → the digest already logged (one error line per bad version)."""
        self._ready = asyncio.Event()
        self._streams: dict[str, set[Stream]] = collections.defaultdict(set)
        self._views: dict[str, View] = {}
        self._cache: dict[tuple[str, str], tuple[str, resolve.Outcome]] = {}
        self._locks: dict[str, asyncio.Lock] = collections.defaultdict(asyncio.Lock)
        self._dirty: dict[str, float] = {}
        """Namespace → when its first unprocessed change was seen (monotonic)."""
        self._wake = asyncio.Event()

    # -- inputs ----------------------------------------------------------------------------------
    def attach(self, components: ComponentIndex, pods: PodIndex,
               resiliency_index: resiliencies.ResiliencyIndex | None = None) -> None:
        """Hand over kopf's live indexes (from the startup handler)."""
        self._components, self._pods = components, pods
        self._resiliency_index = resiliency_index if resiliency_index is not None else {}

    def mark_ready(self) -> None:
        """Called from the first resource handler: kopf runs none before every index is filled."""
        if not self._ready.is_set():
            log.info("initial listing complete: serving component streams")
            self._ready.set()

    def changed(self, namespace: str) -> None:
        self._dirty.setdefault(namespace, time.monotonic())
        self._wake.set()

    def pod_changed(self, namespace: str, name: str, record: PodRecord | None) -> None:
        """A pod changed or went away (None): streams opened under an identity it no longer has are
        closed; the sidecar reconnects and is judged again (and gets the set of its new app id)."""
        for stream in list(self._streams.get(namespace, ())):
            identity = stream.identity
            if identity.pod_name == name and (record is None or record.uid != identity.pod_uid
                                              or record.app_id != identity.app_id):
                log.info("pod %s/%s %s: closing its stream", namespace, name,
                         "is gone" if record is None else "changed its app id")
                self.disconnect(stream)

    def find_pod(self, namespace: str, name: str) -> PodRecord | None:
        return next(iter(self._pods.get((namespace, name), ())), None)

    @property
    def connected(self) -> int:
        return sum(len(s) for s in self._streams.values())

    # -- streams ---------------------------------------------------------------------------------
    async def connect(self, identity: Identity) -> Stream:
        try:
            async with asyncio.timeout(self._settings.ready_timeout):
                await self._ready.wait()
        except TimeoutError:
            raise NotReady("the operator is still reading the cluster") from None
        ns = identity.namespace
        configuration = await self._configuration(identity)
        stream = Stream(identity)
        async with self._locks[ns]:
            view = self._views.get(ns)
            if view is None:
                view = await self._refresh(ns, full=True)
            visible = {name: o for name, o in view.items() if _visible(o, identity.app_id)}
            resolved = [o for o in visible.values() if isinstance(o, resolve.Resolved)]
            withheld = [(o.name, o.reason) for o in visible.values() if isinstance(o, resolve.Withheld)]
            stream.sent = {o.name: o.digest for o in resolved}
            stream.withheld = dict(withheld)
            policies, held = resiliencies.Views.visible(self._resiliency_view(ns), identity.app_id)
            stream.resiliencies = {r.name: r.digest for r in policies}
            stream.push(protocol.encode(protocol.Snapshot(
                namespace=ns, app_id=identity.app_id, keepalive=self._settings.keepalive,
                components=tuple(o.payload for o in resolved), withheld=tuple(withheld),
                protocol=protocol.PROTOCOL, resiliencies=tuple(r.document for r in policies),
                resiliency_withheld=tuple(held), configuration=configuration)))
            self._streams[ns].add(stream)
        self._metrics.connected.set(self.connected)
        self._metrics.deliveries.labels(kind="snapshot").inc()
        log.info("sidecar %s/%s (app %s) connected: %d component(s), %d withheld", ns, identity.pod_name,
                 identity.app_id, len(resolved), len(withheld))
        return stream

    async def _configuration(self, identity: Identity) -> protocol.SnapshotConfiguration | None:
        """The Configuration the pod names, read now (daprd's ``GetConfiguration`` at start). A missing
        one is told to the sidecar, which stops as daprd does; an API failure refuses the stream for
        now (503), so the sidecar retries rather than start without it."""
        name = identity.config
        if not name or self._read_configuration is None:
            return None
        try:
            found = await self._read_configuration(identity.namespace, name)
        except kube.APIError as exc:
            self._metrics.errors.labels(kind="api").inc()
            log.warning("cannot read Configuration %s/%s for sidecar %s: %s", identity.namespace, name,
                        identity.pod_name, exc)
            raise NotReady(f"cannot read Configuration '{name}' now") from None
        if found is None:
            self._metrics.errors.labels(kind="configuration_missing").inc()
            log.warning("pod %s/%s names Configuration %r (dapr.io/config), which does not exist",
                        identity.namespace, identity.pod_name, name)
            # On the pod: `kubectl describe pod` then says why its sidecar keeps restarting.
            self._events.record(ObjectRef("v1", "Pod", identity.namespace, identity.pod_name, identity.pod_uid),
                                "Warning", "ConfigurationNotFound",
                                f"dapr.io/config names Configuration '{name}', which does not exist in this "
                                "namespace: a sidecar starting now stops, as daprd does, until it exists")
            return protocol.SnapshotConfiguration(
                name, error=f"configurations.dapr.io {name!r} not found in namespace {identity.namespace!r}")
        spec = found.get("spec")
        return protocol.SnapshotConfiguration(name, spec=spec if isinstance(spec, Mapping) else {})

    def disconnect(self, stream: Stream) -> None:
        stream.close()
        ns = stream.identity.namespace
        streams = self._streams.get(ns)
        if streams is not None:
            streams.discard(stream)
            if not streams:
                del self._streams[ns]
                self._views.pop(ns, None)  # nobody to serve: recomputed on the next connect
        self._metrics.connected.set(self.connected)

    def close_all(self) -> None:
        for streams in list(self._streams.values()):
            for stream in list(streams):
                self.disconnect(stream)

    # -- reconciling -------------------------------------------------------------------------------
    async def run(self) -> None:
        """Process dirty namespaces as they come, and everything every ``resync`` s. Until cancelled."""
        next_resync = time.monotonic() + self._settings.resync
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_resync - time.monotonic())):
                    await self._wake.wait()
            self._wake.clear()
            full = time.monotonic() >= next_resync
            if full:
                next_resync = time.monotonic() + self._settings.resync
            dirty, self._dirty = self._dirty, {}
            for ns in sorted(set(dirty) | (set(self._streams) if full else set())):
                try:
                    await self.reconcile(ns, full=full, since=dirty.get(ns))
                except Exception:  # one namespace's failure must not stop the others
                    log.exception("delivering components of namespace %s failed", ns)
                    self._metrics.errors.labels(kind="api").inc()

    async def reconcile(self, ns: str, *, full: bool = False, since: float | None = None) -> None:
        async with self._locks[ns]:
            if not self._streams.get(ns):
                self._views.pop(ns, None)
                return
            view = await self._refresh(ns, full=full)
            self._push(ns, view)
        if since is not None:
            self._metrics.delivery_latency.observe(time.monotonic() - since)

    def _records(self, ns: str) -> dict[str, ComponentRecord]:
        return {r.name: r for r in self._components.get(ns, ())}

    async def _read_all(self, ns: str, names: Iterable[str]) -> dict[str, resolve.SecretData | kube.APIError | None]:
        async def one(name: str) -> resolve.SecretData | kube.APIError | None:
            try:
                return await self._read_secret(ns, name)
            except kube.APIError as exc:
                return exc
        unique = sorted(set(names))
        return dict(zip(unique, await asyncio.gather(*(one(n) for n in unique)), strict=True))

    async def _refresh(self, ns: str, *, full: bool) -> View:
        records = self._records(ns)
        stale = {name for name, r in records.items()
                 if full or self._cache.get((ns, name), ("",))[0] != r.fingerprint}
        secrets = await self._read_all(ns, (s for name in stale for s in records[name].secret_names))
        view: View = {}
        for name, record in records.items():
            cached = self._cache.get((ns, name))
            if name not in stale and cached is not None:
                view[name] = cached[1]
                continue
            failed = [s for s in record.secret_names if isinstance(secrets.get(s), kube.APIError)]
            if failed and cached is not None and cached[0] == record.fingerprint:
                view[name] = cached[1]  # the API hiccuped: keep serving what we had
                continue
            if failed:
                outcome: resolve.Outcome = resolve.Withheld(
                    name, record.scopes, f"Secret '{failed[0]}' cannot be read now; retrying", "api")
            else:
                found = {s: v for s, v in secrets.items() if not isinstance(v, kube.APIError)}
                outcome = resolve.resolve(record, found)
            if isinstance(outcome, resolve.Withheld):
                if cached is None or cached[1] != outcome:  # counted once, not at every resync
                    self._metrics.errors.labels(kind=outcome.kind).inc()
                self._events.record(self._ref(record), "Warning", "Withheld",
                                    f"not delivered to sidecars: {outcome.reason}")
            self._cache[(ns, name)] = (record.fingerprint, outcome)
            view[name] = outcome
        for key in [k for k in self._cache if k[0] == ns and k[1] not in records]:
            del self._cache[key]
        self._views[ns] = view
        return view

    @staticmethod
    def _ref(record: ComponentRecord) -> ObjectRef:
        return ObjectRef("dapr.io/v1alpha1", "Component", record.namespace, record.name, record.uid)

    def _diff(self, stream: Stream, view: View, lines: dict[str, bytes]) -> Iterator[tuple[str, str, bytes]]:
        """``(kind, name, line)`` that bring one stream from what it has to what it may see."""
        visible = {name: o for name, o in view.items() if _visible(o, stream.identity.app_id)}
        for name, outcome in visible.items():
            if isinstance(outcome, resolve.Resolved):
                stream.withheld.pop(name, None)
                if stream.sent.get(name) != outcome.digest:
                    stream.sent[name] = outcome.digest
                    if name not in lines:
                        lines[name] = protocol.encode(protocol.Upsert(outcome.payload))
                    yield "upsert", name, lines[name]
            elif stream.withheld.get(name) != outcome.reason:
                stream.withheld[name] = outcome.reason
                yield "withheld", name, protocol.encode(protocol.Withheld(name, outcome.reason))
        for name in [n for n in dict.fromkeys((*stream.sent, *stream.withheld)) if n not in visible]:
            stream.sent.pop(name, None)
            stream.withheld.pop(name, None)
            yield "delete", name, protocol.encode(protocol.Delete(name))

    def _resiliency_view(self, ns: str) -> resiliencies.View:
        view = self._resiliency_views.view(ns, self._resiliency_index.get(ns, ()))
        for key, record in self._resiliency_views.rejected.items():
            if key[0] != ns or self._reported.get(key) == record.digest:
                continue
            self._reported[key] = record.digest
            self._metrics.errors.labels(kind="resiliency_invalid").inc()
            kept = isinstance(view.get(record.name), ResiliencyRecord)
            outcome = "the last good version keeps serving" if kept else "not delivered to sidecars"
            # The Warning Event comes from the resiliency handler, which sees every namespace.
            log.error("Resiliency %s/%s refused (%s): %s", ns, record.name, outcome, record.error)
        for key in [k for k in self._reported if k[0] == ns and k not in self._resiliency_views.rejected]:
            del self._reported[key]
        return view

    def _diff_resiliencies(self, stream: Stream, view: resiliencies.View,
                           lines: dict[str, bytes]) -> Iterator[tuple[str, str, bytes]]:
        """As :meth:`_diff`: an upsert line is encoded once per push, whatever the number of streams."""
        for change in resiliencies.diff(stream.resiliencies, view, stream.identity.app_id):
            if change.record is None:
                yield "resiliency_delete", change.name, protocol.encode(protocol.ResiliencyDelete(change.name))
                continue
            if change.name not in lines:
                lines[change.name] = protocol.encode(protocol.ResiliencyUpsert(change.record.document))
            yield "resiliency", change.name, lines[change.name]

    def _push(self, ns: str, view: View) -> None:
        lines: dict[str, bytes] = {}
        resiliency_lines: dict[str, bytes] = {}
        delivered: collections.Counter[str] = collections.Counter()
        policies = self._resiliency_view(ns)
        for stream in list(self._streams.get(ns, ())):
            for kind, name, line in (*self._diff(stream, view, lines),
                                     *self._diff_resiliencies(stream, policies, resiliency_lines)):
                if not stream.push(line):
                    self.disconnect(stream)
                    break
                self._metrics.deliveries.labels(kind=kind).inc()
                if kind == "upsert":
                    delivered[name] += 1
        records = self._records(ns)
        for name, count in delivered.items():
            if name in records:
                self._events.record(self._ref(records[name]), "Normal", "Delivered",
                                    f"delivered to {count} sidecar(s)")
                log.info("component %s/%s delivered to %d sidecar(s)", ns, name, count)
