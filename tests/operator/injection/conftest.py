"""Pods as the API server hands them to the mutating webhook."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from parley_operator.injection import config, patch
from parley_operator.settings import InjectorSettings

CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _make_pod(
    annotations: dict[str, str] | None = None,
    *,
    name: str = "web",
    containers: list[dict[str, Any]] | None = None,
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"annotations": {"dapr.io/enabled": "true", **(annotations or {})}}
    if name:
        meta["name"] = name
    if labels is not None:
        meta["labels"] = labels
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": containers if containers is not None else [{"name": "app", "image": "app:1"}],
                 **spec},
    }


PodFactory = Callable[..., dict[str, Any]]


@pytest.fixture
def make_pod() -> PodFactory:
    """``make_pod(annotations, name=..., containers=..., labels=..., **spec)``."""
    return _make_pod


Inject = Callable[..., dict[str, Any]]


@pytest.fixture
def inject(injector_settings: InjectorSettings) -> Inject:
    """``inject(pod, settings=None)``: the pod as the API server stores it after the webhook's patch."""

    def run(pod: dict[str, Any], settings: InjectorSettings | None = None) -> dict[str, Any]:
        settings = settings or injector_settings
        meta = pod["metadata"]
        parsed = config.parse(meta["annotations"], pod_name=meta.get("name", ""), settings=settings,
                              volumes=[v["name"] for v in pod["spec"].get("volumes") or ()])
        assert parsed.invalid == ()
        return patch.apply(pod, patch.build(pod, parsed.config, settings, ca_pem=CA_PEM))

    return run


@pytest.fixture
def sidecar_of() -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The one container named daprd, wherever it was injected."""

    def find(pod: dict[str, Any]) -> dict[str, Any]:
        spec = pod["spec"]
        [container] = [c for c in spec["containers"] + spec.get("initContainers", []) if c["name"] == "daprd"]
        return container

    return find
