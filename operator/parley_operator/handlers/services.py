"""What the handlers need from the running operator, passed in explicitly (no module globals)."""

from __future__ import annotations

import dataclasses

from parley_operator import kube
from parley_operator.certs import CertManager
from parley_operator.delivery.hub import Hub
from parley_operator.events import EventRecorder
from parley_operator.metrics import Metrics
from parley_operator.settings import OperatorSettings

__all__ = ["Services"]


@dataclasses.dataclass(frozen=True, slots=True)
class Services:
    settings: OperatorSettings
    login: kube.Login
    metrics: Metrics
    events: EventRecorder
    certs: CertManager
    hub: Hub
