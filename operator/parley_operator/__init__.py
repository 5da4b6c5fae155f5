"""parley-operator: injects parley sidecars into Dapr-annotated pods, validates conversation
Components at admission, and streams each sidecar exactly the Components it may see.

The public names are re-exported here; the modules behind them may move.
"""

from parley_operator.app import Operator
from parley_operator.component import ComponentRecord, Report, validate
from parley_operator.injection.config import Parsed, SidecarConfig
from parley_operator.injection.config import parse as parse_annotations
from parley_operator.injection.patch import build as build_patch
from parley_operator.settings import (
    CertSettings,
    InjectorSettings,
    OperatorSettings,
    StreamSettings,
    WebhookSettings,
)

__all__ = [
    "CertSettings",
    "ComponentRecord",
    "InjectorSettings",
    "Operator",
    "OperatorSettings",
    "Parsed",
    "Report",
    "SidecarConfig",
    "StreamSettings",
    "WebhookSettings",
    "build_patch",
    "parse_annotations",
    "validate",
]
