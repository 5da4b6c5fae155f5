"""Kubernetes Events about Components and Pods: the feedback a user sees in ``kubectl describe``.

Events are queued and posted by one background task, so a slow API server never delays a webhook
answer or a delivery; the queue is bounded and drops (and counts) what does not fit. The same
message about the same object is posted once per ``repeat_after`` seconds, so the 60 s resync does
not flood the namespace. Messages are built from names only, never from metadata values.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import secrets
import time
from collections.abc import Mapping
from typing import Any, Literal

from parley_operator import kube

__all__ = ["EventRecorder", "ObjectRef"]

log = logging.getLogger("parley.operator.events")

EventType = Literal["Normal", "Warning"]
COMPONENT = "parley-operator"


@dataclasses.dataclass(frozen=True, slots=True)
class ObjectRef:
    """``involvedObject`` of an Event."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str = ""

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> ObjectRef:
        meta = body.get("metadata") or {}
        return cls(str(body.get("apiVersion", "")), str(body.get("kind", "")), str(meta.get("namespace", "")),
                   str(meta.get("name", "")), str(meta.get("uid", "")))


@dataclasses.dataclass(frozen=True, slots=True)
class _Pending:
    ref: ObjectRef
    type: EventType
    reason: str
    message: str


class EventRecorder:
    def __init__(self, client: kube.KubeClient, *, instance: str = "", repeat_after: float = 600.0,
                 max_queue: int = 1000) -> None:
        self._client = client
        self._instance = instance
        self._repeat_after = repeat_after
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=max_queue)
        self._recent: dict[tuple[ObjectRef, str, str], float] = {}

    def record(self, ref: ObjectRef, type: EventType, reason: str, message: str) -> None:
        """Queue an Event; never blocks, never raises."""
        if not ref.name or not ref.namespace:
            return
        key = (ref, reason, message)
        now = time.monotonic()
        if now - self._recent.get(key, -self._repeat_after - 1) < self._repeat_after:
            return
        self._recent[key] = now
        if len(self._recent) > 4 * self._queue.maxsize:
            cutoff = now - self._repeat_after
            self._recent = {k: t for k, t in self._recent.items() if t >= cutoff}
        # Events are best effort: with the API server this far behind, dropping one is right.
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_Pending(ref, type, reason, message[:1024]))

    async def run(self) -> None:
        """Post queued Events until cancelled; failures are logged and dropped (Events are best effort)."""
        while True:
            item = await self._queue.get()
            try:
                await self._post(item)
            except kube.APIError as exc:
                log.warning("could not post Event %s on %s %s/%s: %s", item.reason, item.ref.kind,
                            item.ref.namespace, item.ref.name, exc)

    async def flush(self, timeout: float = 2.0) -> None:
        """Post what is still queued (at shutdown), within ``timeout`` seconds."""
        async def drain() -> None:
            while not self._queue.empty():
                item = self._queue.get_nowait()
                with contextlib.suppress(kube.APIError):
                    await self._post(item)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(drain(), timeout)

    async def _post(self, item: _Pending) -> None:
        ref = item.ref
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        involved = {"apiVersion": ref.api_version, "kind": ref.kind, "namespace": ref.namespace, "name": ref.name}
        if ref.uid:
            involved["uid"] = ref.uid
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{ref.name}.{secrets.token_hex(8)}", "namespace": ref.namespace},
            "involvedObject": involved,
            "reason": item.reason,
            "message": item.message,
            "type": item.type,
            "source": {"component": COMPONENT, **({"host": self._instance} if self._instance else {})},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._instance or COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        await self._client.create(f"/api/v1/namespaces/{ref.namespace}/events", body)
