"""What the sidecar says about itself: one description for ``GET /v1.0/metadata`` and gRPC
``GetMetadata``, and the extended-metadata store behind ``PUT /v1.0/metadata/{key}`` and ``SetMetadata``.

:func:`describe` builds daprd's ``GetMetadataResponse`` message; gRPC answers it as it is and
:func:`http_body` writes it in the shape of daprd's HTTP answer (``pkg/api/http/metadata.go``: Go's
``encoding/json`` of its own struct, not protojson), so the two surfaces cannot drift apart.

Filled as daprd 1.18.3 fills them with the same flags and Component files (checked against the real
daprd in tests/conformance): the app id; the components by name, type and version (conversation
components have no capabilities in daprd either; a metadata value never appears); extended metadata
with ``daprRuntimeVersion``, which a stored key of that name cannot override (daprd sets it last);
the runtime version; actors DISABLED; an empty ``workflows`` message (no connected workers). What
describes a runtime parley does not have stays empty: no enabled features (daprd's preview-feature
flags), no app channel in ``appConnectionProperties`` (parley never calls the app), no placement, no
scheduler, subscriptions, HTTP endpoints, MCP servers or resiliencies.

Extended metadata is bounded, unlike daprd's (where 50,000 PUTs of new keys grew a sidecar to
473 MB): :data:`MAX_EXTENDED_KEYS` keys, :data:`MAX_EXTENDED_BYTES` bytes; beyond, the write is
refused with ``ERR_METADATA_LIMIT`` (HTTP 400, gRPC RESOURCE_EXHAUSTED) and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from parley_sidecar import errors
from parley_sidecar.components.spec import ComponentSpec
from parley_sidecar.dapr_proto import metadata_pb2
from parley_sidecar.settings import RUNTIME_VERSION

__all__ = ["MAX_EXTENDED_BYTES", "MAX_EXTENDED_KEYS", "RUNTIME_VERSION_KEY", "ExtendedMetadata", "describe",
           "http_body"]

MAX_EXTENDED_KEYS = 100
"""Extended metadata keys kept. The Dapr CLI writes three; daprd keeps any number, so 50,000 PUTs
grew a sidecar to 473 MB."""
MAX_EXTENDED_BYTES = 64 * 1024
"""UTF-8 bytes of all extended metadata keys and values together (in memory: at most 4 bytes a
character, so about 256 KiB plus 100 small dict entries in the worst case)."""
RUNTIME_VERSION_KEY = "daprRuntimeVersion"
"""daprd's extended-metadata key for its version (deprecated there, still read by dapr-agents)."""


def _size(key: str, value: str) -> int:
    return len(key.encode("utf-8", "replace")) + len(value.encode("utf-8", "replace"))


class ExtendedMetadata:
    """The bounded key → value store that HTTP ``PUT /v1.0/metadata/{key}`` and gRPC ``SetMetadata``
    write and both metadata reads show."""

    def __init__(self) -> None:
        self._items: dict[str, str] = {}

    def set(self, key: str, value: str) -> None:
        """Store ``key = value``; an empty key does nothing (daprd's SetMetadata). Raises
        :class:`errors.MetadataFull` beyond the bounds, leaving the store as it was."""
        if not key:
            return
        problem = self._no_room(key, value)
        if problem:
            raise errors.MetadataFull(key, problem)
        self._items[key] = value

    def items(self) -> dict[str, str]:
        return dict(self._items)

    def _no_room(self, key: str, value: str) -> str:
        """Why ``key = value`` does not fit (empty when it does). At most 100 entries are summed, so
        each write pays little and no running total can drift."""
        if key not in self._items and len(self._items) >= MAX_EXTENDED_KEYS:
            return f"extended metadata already holds {MAX_EXTENDED_KEYS} keys, the most kept"
        others = sum(_size(k, v) for k, v in self._items.items() if k != key)
        if others + _size(key, value) > MAX_EXTENDED_BYTES:
            return f"keys and values would exceed {MAX_EXTENDED_BYTES} bytes in all"
        return ""


def describe(app_id: str, components: Iterable[ComponentSpec],
             extended: ExtendedMetadata) -> metadata_pb2.GetMetadataResponse:
    """daprd's ``GetMetadataResponse`` for this sidecar (components sorted by name)."""
    response = metadata_pb2.GetMetadataResponse(
        id=app_id,
        registered_components=[
            metadata_pb2.RegisteredComponents(name=spec.name, type=spec.type, version=spec.version or "v1")
            for spec in sorted(components, key=lambda spec: spec.name)
        ],
        extended_metadata={**extended.items(), RUNTIME_VERSION_KEY: RUNTIME_VERSION},
        runtime_version=RUNTIME_VERSION,
        actor_runtime=metadata_pb2.ActorRuntime(runtime_status=metadata_pb2.ActorRuntime.DISABLED),
    )
    # daprd always sets these two messages, empty or not (the Python SDK and protojson see them).
    response.app_connection_properties.SetInParent()
    response.workflows.SetInParent()
    return response


def http_body(response: metadata_pb2.GetMetadataResponse) -> dict[str, Any]:
    """``GET /v1.0/metadata``: daprd's JSON for ``response``, key for key.

    Empty fields are left out as Go's ``omitempty`` leaves them out, except ``enabledFeatures`` and
    ``appConnectionProperties``: daprd always has something in them (its default feature flags, the
    app protocol), so clients see those keys on every daprd and parley writes them too, empty.
    """
    body: dict[str, Any] = {"id": response.id, "runtimeVersion": response.runtime_version,
                            "enabledFeatures": list(response.enabled_features)}
    if response.registered_components:
        body["components"] = [_component(c) for c in response.registered_components]
    if response.extended_metadata:
        body["extended"] = dict(sorted(response.extended_metadata.items()))  # Go writes map keys sorted
    app = response.app_connection_properties
    body["appConnectionProperties"] = {k: v for k, v in (
        ("port", app.port), ("protocol", app.protocol), ("channelAddress", app.channel_address),
        ("maxConcurrency", app.max_concurrency)) if v}
    actors = response.actor_runtime
    body["actorRuntime"] = {"runtimeStatus": metadata_pb2.ActorRuntime.ActorRuntimeStatus.Name(actors.runtime_status),
                            "hostReady": actors.host_ready}
    if actors.placement:
        body["actorRuntime"]["placement"] = actors.placement
    if response.workflows.connected_workers:
        body["workflows"] = {"connectedWorkers": response.workflows.connected_workers}
    return body


def _component(component: metadata_pb2.RegisteredComponents) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in (("name", component.name), ("type", component.type),
                                             ("version", component.version)) if v}
    if component.capabilities:
        out["capabilities"] = list(component.capabilities)
    return out
