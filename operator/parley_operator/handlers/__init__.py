"""kopf handlers: thin wrappers that do the I/O and call the pure functions.

:func:`build_registry` registers everything on a fresh ``kopf.OperatorRegistry`` bound to one
:class:`Services`, so several operators (tests, restarts) can live in one process. Only
``@kopf.index``, ``@kopf.on.event`` and admission handlers are used: they write nothing to the
Components, Resiliencies and Pods they watch (no finalizers, no kopf annotations). Every handler is ``async``:
kopf runs sync handlers in a thread pool, a hop each webhook answer would pay for.
"""

from __future__ import annotations

import kopf

from parley_operator.handlers import components, lifecycle, pods, resiliency
from parley_operator.handlers.services import Services

__all__ = ["Services", "build_registry"]


def build_registry(services: Services) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    lifecycle.register(registry, services)
    components.register(registry, services)
    pods.register(registry, services)
    resiliency.register(registry, services)
    return registry
