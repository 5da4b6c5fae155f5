"""The command line and the package's public names."""

from __future__ import annotations

from pathlib import Path

import parley_operator
from parley_operator import cli


def test_defaults_match_the_deployment() -> None:
    s = cli.settings_from_args([], environ={"POD_NAMESPACE": "parley-system", "POD_NAME": "parley-operator-abc"})
    assert s.injector.control_plane_address == "parley-operator.parley-system.svc:6500"
    assert (s.webhook.port, s.stream.port, s.metrics_port, s.health_port) == (9443, 6500, 9090, 8080)
    assert s.stream.resync == 60.0 and s.namespaces == () and s.pod_name == "parley-operator-abc"


def test_flags_and_environment_fill_settings() -> None:
    s = cli.settings_from_args(
        ["--namespace", "a", "--namespace", "b", "--stream-port", "7000", "--cert-dir", "/certs"],
        environ={"POD_NAMESPACE": "ops", "PARLEY_SIDECAR_IMAGE": "r.io/sidecar:2", "PARLEY_NATIVE_SIDECAR": "true",
                 "PARLEY_WEBHOOK_CONFIGURATION": "parley"})
    assert s.namespaces == ("a", "b")
    assert s.injector.sidecar_image == "r.io/sidecar:2" and s.injector.native_sidecar is True
    assert s.injector.control_plane_address == "parley-operator.ops.svc:7000"
    assert s.certs.mounted_dir == Path("/certs") and s.certs.namespace == "ops"
    assert s.webhook.mutating_configuration == s.webhook.validating_configuration == "parley"


def test_public_names_are_exported() -> None:
    assert sorted(parley_operator.__all__) == parley_operator.__all__
    for name in parley_operator.__all__:
        assert getattr(parley_operator, name) is not None
