"""``(pod, SidecarConfig)`` → RFC 6902 JSON Patch ops that inject the sidecar, in Dapr's order.

Split by target as Dapr's patcher is (``sidecar_container.go``, ``sidecar_volumes.go``,
``patch.go``): :func:`sidecar_container` builds the container, :func:`volume_ops`,
:func:`container_ops`, :func:`metadata_ops` and :func:`app_env_ops` each return their part, and
:func:`build` joins them; parley's webhook server sends those ops as the answer unchanged
(``webhook.respond_with_patch``). :func:`apply` and :func:`apply_in_place` apply ``add`` ops to a
dict: for tests, and for a kopf server other than parley's, which diffs the result into its own
patch. Pure functions, no I/O.

The sidecar reaches the operator with two read-only volumes mounted where ``parley-sidecar``
expects them (``parley_sidecar.settings.OperatorLink``): a projected ServiceAccount token with the
operator's audience, and the operator's CA, projected from a pod annotation through the downward
API, so nothing has to be copied into application namespaces. Secret values never enter the pod
spec: ``dapr.io/api-token-secret`` and ``dapr.io/env-from-secret`` become ``secretKeyRef``s.

With ``dapr.io/unix-domain-socket-path`` the pod gets an in-memory emptyDir for the API's sockets,
mounted at Dapr's fixed path in the sidecar and at the annotated path in every app container. A
pod with Kubernetes' default ``terminationGracePeriodSeconds`` gets one long enough for the
sidecar's block and drain when those exceed that 30 s (:func:`grace_ops`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from parley_operator.injection import annotations as keys
from parley_operator.injection import config as config_mod
from parley_operator.injection.config import GRPC_PORT, HTTP_PORT, PUBLIC_PORT, SidecarConfig
from parley_operator.settings import InjectorSettings
from parley_sidecar.settings import OperatorLink

__all__ = [
    "CA_VOLUME",
    "TOKEN_VOLUME",
    "UDS_VOLUME",
    "Op",
    "app_env_ops",
    "app_socket_ops",
    "apply",
    "apply_in_place",
    "build",
    "container_ops",
    "grace_ops",
    "has_sidecar",
    "metadata_ops",
    "sidecar_container",
    "volume_ops",
]

Op = dict[str, Any]

TOKEN_VOLUME = "parley-operator-token"
CA_VOLUME = "parley-operator-ca"
UDS_VOLUME = "dapr-unix-domain-socket"
"""Dapr's name for the sockets' volume."""
_LINK = OperatorLink()
TOKEN_DIR = str(_LINK.token_path.parent)
CA_DIR = str(_LINK.ca_path.parent)
_READ_ALL = 0o644  # Dapr's defaultMode 420: the sidecar's non-root user must read the files


def _escape(key: str) -> str:
    """RFC 6901: ``~`` → ``~0``, ``/`` → ``~1`` (``dapr.io/app-id`` → ``dapr.io~1app-id``)."""
    return key.replace("~", "~0").replace("/", "~1")


def has_sidecar(pod: Mapping[str, Any], container_name: str) -> bool:
    """Dapr's "already injected" test: a container of that name in containers or initContainers."""
    spec = pod.get("spec") or {}
    return any(
        c.get("name") == container_name
        for field in ("containers", "initContainers")
        for c in spec.get(field) or ()
    )


def _args(config: SidecarConfig, settings: InjectorSettings) -> list[str]:
    args = [
        "--mode", "kubernetes",
        "--app-id", config.app_id,
        "--dapr-http-port", str(HTTP_PORT),
        "--dapr-grpc-port", str(GRPC_PORT),
        "--dapr-public-port", str(PUBLIC_PORT),
        # The API answers the app in the same pod only (daprd binds loopback too); probes use 3501.
        "--dapr-listen-addresses", config.listen_addresses,
        "--control-plane-address", settings.control_plane_address,
        "--log-level", config.log_level,
        "--dapr-graceful-shutdown-seconds", str(config.graceful_shutdown_seconds),
    ]
    if config.log_as_json:
        args.append("--log-as-json")
    if config.app_port is not None:
        args += ["--app-port", str(config.app_port)]
    if config.config:
        args += ["--config", config.config]
    if config.enable_metrics:
        args += ["--enable-metrics", "--metrics-port", str(config.metrics_port)]
    else:
        args.append("--enable-metrics=false")
    if config.enable_api_logging is not None:  # explicit either way: unset leaves the Configuration's
        args.append(f"--enable-api-logging={'true' if config.enable_api_logging else 'false'}")
    if config.http_max_request_size is not None:
        args += ["--dapr-http-max-request-size", str(config.http_max_request_size)]
    if config.max_body_size:
        args += ["--max-body-size", config.max_body_size]
    if config.http_read_buffer_size is not None:
        args += ["--dapr-http-read-buffer-size", str(config.http_read_buffer_size)]
    if config.read_buffer_size:
        args += ["--read-buffer-size", config.read_buffer_size]
    if config.unix_domain_socket_path:
        args += ["--unix-domain-socket", config_mod.UDS_SIDECAR_DIR]
    if config.block_shutdown:
        args += ["--dapr-block-shutdown-duration", config.block_shutdown]
    if config.workers > 1:
        args += ["--workers", str(config.workers)]
    return args


def _env(config: SidecarConfig) -> list[dict[str, Any]]:
    # A literal, as Dapr sets it; the downward API only when the namespace is unknown.
    namespace: dict[str, Any] = ({"value": config.namespace} if config.namespace
                                 else {"valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}})
    env: list[dict[str, Any]] = [
        {"name": "NAMESPACE", **namespace},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    if config.api_token_secret:
        env.append({"name": "DAPR_API_TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": config.api_token_secret, "key": "token"}}})
    env.extend({"name": name, "value": value} for name, value in config.env)
    env.extend({"name": e.name, "valueFrom": {"secretKeyRef": {"name": e.secret, "key": e.key}}}
               for e in config.env_from_secret)
    return env


def _mounts(config: SidecarConfig) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [
        {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True},
        {"name": CA_VOLUME, "mountPath": CA_DIR, "readOnly": True},
    ]
    if config.unix_domain_socket_path:
        mounts.append({"name": UDS_VOLUME, "mountPath": config_mod.UDS_SIDECAR_DIR})
    mounts.extend({"name": m.volume, "mountPath": m.path, "readOnly": m.read_only} for m in config.volume_mounts)
    return mounts


def _resources(config: SidecarConfig) -> dict[str, dict[str, str]]:
    requests = {k: v for k, v in (("cpu", config.cpu_request), ("memory", config.memory_request)) if v}
    limits = {k: v for k, v in (("cpu", config.cpu_limit), ("memory", config.memory_limit)) if v}
    out: dict[str, dict[str, str]] = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def sidecar_container(config: SidecarConfig, settings: InjectorSettings) -> dict[str, Any]:
    """The injected container: Dapr's name, ports and probes; hardened security context."""
    ports = [
        {"name": "dapr-http", "containerPort": HTTP_PORT, "protocol": "TCP"},
        {"name": "dapr-grpc", "containerPort": GRPC_PORT, "protocol": "TCP"},
    ]
    if config.enable_metrics:
        ports.append({"name": "dapr-metrics", "containerPort": config.metrics_port, "protocol": "TCP"})
    security: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if settings.run_as_user is not None:
        security["runAsUser"] = settings.run_as_user
    container: dict[str, Any] = {"name": settings.container_name, "image": config.image,
                                 "imagePullPolicy": settings.image_pull_policy}
    if settings.sidecar_command:
        container["command"] = list(settings.sidecar_command)
    container |= {
        "args": _args(config, settings),
        "ports": ports,
        "env": _env(config),
        "volumeMounts": _mounts(config),
        "readinessProbe": {
            "httpGet": {"path": "/v1.0/healthz", "port": PUBLIC_PORT},
            "initialDelaySeconds": config.readiness.delay, "timeoutSeconds": config.readiness.timeout,
            "periodSeconds": config.readiness.period, "failureThreshold": config.readiness.threshold,
        },
        "livenessProbe": {
            "tcpSocket": {"port": PUBLIC_PORT},
            "initialDelaySeconds": config.liveness.delay, "timeoutSeconds": config.liveness.timeout,
            "periodSeconds": config.liveness.period, "failureThreshold": config.liveness.threshold,
        },
        "securityContext": security,
    }
    resources = _resources(config)
    if resources:
        container["resources"] = resources
    if config.native_sidecar:
        container["restartPolicy"] = "Always"
    return container


def _volumes(config: SidecarConfig, settings: InjectorSettings) -> list[dict[str, Any]]:
    uds = ([{"name": UDS_VOLUME, "emptyDir": {"medium": "Memory"}}] if config.unix_domain_socket_path else [])
    return [
        {"name": TOKEN_VOLUME, "projected": {"defaultMode": _READ_ALL, "sources": [{"serviceAccountToken": {
            "audience": settings.token_audience, "expirationSeconds": settings.token_expiration,
            "path": "token"}}]}},
        {"name": CA_VOLUME, "downwardAPI": {"defaultMode": _READ_ALL, "items": [{
            "path": _LINK.ca_path.name,
            "fieldRef": {"fieldPath": f"metadata.annotations['{keys.OPERATOR_CA}']"}}]}},
        *uds,
    ]


def volume_ops(pod: Mapping[str, Any], config: SidecarConfig, settings: InjectorSettings) -> list[Op]:
    existing = (pod.get("spec") or {}).get("volumes")
    if not existing:
        return [{"op": "add", "path": "/spec/volumes", "value": _volumes(config, settings)}]
    taken = {v.get("name") for v in existing}
    return [{"op": "add", "path": "/spec/volumes/-", "value": v}
            for v in _volumes(config, settings) if v["name"] not in taken]


def container_ops(pod: Mapping[str, Any], config: SidecarConfig, settings: InjectorSettings) -> list[Op]:
    spec = pod.get("spec") or {}
    ops: list[Op] = []
    if not spec.get("containers"):
        ops.append({"op": "add", "path": "/spec/containers", "value": []})
    field = "initContainers" if config.native_sidecar else "containers"
    if config.native_sidecar and not spec.get("initContainers"):
        ops.append({"op": "add", "path": "/spec/initContainers", "value": []})
    ops.append({"op": "add", "path": f"/spec/{field}/-", "value": sidecar_container(config, settings)})
    return ops


def metadata_ops(pod: Mapping[str, Any], config: SidecarConfig, *, ca_pem: str) -> list[Op]:
    meta = pod.get("metadata") or {}
    ops: list[Op] = []
    if not meta.get("labels"):
        ops.append({"op": "add", "path": "/metadata/labels", "value": {}})
    labels = {
        keys.LABEL_SIDECAR_INJECTED: "true",
        keys.LABEL_APP_ID: config.app_id,
        keys.LABEL_METRICS_ENABLED: "true" if config.enable_metrics else "false",
    }
    ops += [{"op": "add", "path": f"/metadata/labels/{_escape(k)}", "value": v} for k, v in labels.items()]
    present = meta.get("annotations") or {}
    if not present:
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
    notes = {keys.OPERATOR_CA: ca_pem}
    # An app that already exports its own metrics keeps its scrape annotations (one set per pod).
    if config.enable_metrics and keys.PROMETHEUS_SCRAPE not in present:
        notes |= {keys.PROMETHEUS_SCRAPE: "true", keys.PROMETHEUS_PORT: str(config.metrics_port),
                  keys.PROMETHEUS_PATH: "/"}
    ops += [{"op": "add", "path": f"/metadata/annotations/{_escape(k)}", "value": v} for k, v in notes.items()]
    return ops


def app_socket_ops(pod: Mapping[str, Any], config: SidecarConfig, settings: InjectorSettings) -> list[Op]:
    """The sockets' directory in each app container, at the annotated path (Dapr's UDS mounts)."""
    if not config.unix_domain_socket_path:
        return []
    mount = {"name": UDS_VOLUME, "mountPath": config.unix_domain_socket_path}
    ops: list[Op] = []
    for index, container in enumerate((pod.get("spec") or {}).get("containers") or ()):
        if container.get("name") == settings.container_name:
            continue
        if container.get("volumeMounts"):
            ops.append({"op": "add", "path": f"/spec/containers/{index}/volumeMounts/-", "value": dict(mount)})
        else:
            ops.append({"op": "add", "path": f"/spec/containers/{index}/volumeMounts", "value": [dict(mount)]})
    return ops


def grace_ops(pod: Mapping[str, Any], config: SidecarConfig) -> list[Op]:
    """``terminationGracePeriodSeconds`` long enough for the sidecar's shutdown, when the pod has
    Kubernetes' default and that would not do. The API server fills the default (30) in before
    admission, so 30 cannot be told from "unset" and is raised; any other value is the user's
    choice and stays (the webhook warns when it is too short, ``config.grace_shortfall``). An
    ``add`` replaces a member that exists (RFC 6902)."""
    needed = config_mod.shutdown_seconds(config)
    own = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    if own not in (None, config_mod.POD_DEFAULT_GRACE) or needed <= config_mod.POD_DEFAULT_GRACE:
        return []
    return [{"op": "add", "path": "/spec/terminationGracePeriodSeconds", "value": needed}]


def app_env_ops(pod: Mapping[str, Any], settings: InjectorSettings) -> list[Op]:
    """``DAPR_HTTP_PORT``/``DAPR_GRPC_PORT`` for each app container that does not set them."""
    wanted = (("DAPR_HTTP_PORT", str(HTTP_PORT)), ("DAPR_GRPC_PORT", str(GRPC_PORT)))
    ops: list[Op] = []
    for index, container in enumerate((pod.get("spec") or {}).get("containers") or ()):
        if container.get("name") == settings.container_name:
            continue
        env = container.get("env") or []
        names = {e.get("name") for e in env}
        missing = [{"name": name, "value": value} for name, value in wanted if name not in names]
        if not env:
            ops.append({"op": "add", "path": f"/spec/containers/{index}/env", "value": missing})
        else:
            ops += [{"op": "add", "path": f"/spec/containers/{index}/env/-", "value": e} for e in missing]
    return ops


def build(
    pod: Mapping[str, Any], config: SidecarConfig, settings: InjectorSettings, *, ca_pem: str
) -> list[Op]:
    """All ops to inject the sidecar, or none when the pod already has it (idempotent)."""
    if has_sidecar(pod, settings.container_name):
        return []
    return [
        *volume_ops(pod, config, settings),
        *container_ops(pod, config, settings),
        *metadata_ops(pod, config, ca_pem=ca_pem),
        *app_env_ops(pod, settings),
        *app_socket_ops(pod, config, settings),
        *grace_ops(pod, config),
    ]


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def apply(body: Mapping[str, Any], ops: Sequence[Op]) -> dict[str, Any]:
    """Apply ``add`` ops (the only kind :func:`build` makes) to a deep copy of ``body``."""
    out = copy.deepcopy(dict(body))
    apply_in_place(out, copy.deepcopy(list(ops)))
    return out


def apply_in_place(out: dict[str, Any], ops: Sequence[Op]) -> None:
    """Apply ``add`` ops to ``out`` itself (kopf's ``patch.fns`` contract). The ops' values become
    part of ``out`` uncopied: build fresh ops for each body."""
    for op in ops:
        if op["op"] != "add":
            raise ValueError(f"unsupported op {op['op']!r}")
        *parents, last = [_unescape(t) for t in op["path"].split("/")[1:]]
        target: Any = out
        for token in parents:
            target = target[int(token)] if isinstance(target, list) else target[token]
        value = op["value"]
        if isinstance(target, list):
            if last == "-":
                target.append(value)
            else:
                target.insert(int(last), value)
        else:
            target[last] = value
