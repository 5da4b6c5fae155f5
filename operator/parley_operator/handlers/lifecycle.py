"""Operator-level handlers: credentials for kopf, and handing kopf's indexes to the hub."""

from __future__ import annotations

from typing import Any

import kopf

from parley_operator.handlers.services import Services

__all__ = ["register"]


def register(registry: kopf.OperatorRegistry, services: Services) -> None:
    @kopf.on.login(id="login", registry=registry)
    async def login(**_: Any) -> kopf.ConnectionInfo:
        # The same credentials as the operator's own client (kube.KubeClient).
        return await services.login()

    @kopf.on.startup(id="attach-indexes", registry=registry)
    async def attach(**kwargs: Any) -> None:
        # kopf passes each index as a kwarg named by its id. They are live views that fill as kopf
        # lists the cluster; the hub waits for the first full listing before serving.
        services.hub.attach(kwargs["components_by_namespace"], kwargs["sidecar_pods"],
                            kwargs["resiliencies_by_namespace"])
