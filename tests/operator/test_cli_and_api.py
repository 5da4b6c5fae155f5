"""The command line and the package's public names."""

from __future__ import annotations

import inspect
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
    # Every public name the package binds is listed, and nothing listed is missing or foreign.
    bound = {name for name, value in vars(parley_operator).items()
             if not name.startswith("_") and not inspect.ismodule(value)}
    assert bound == set(parley_operator.__all__)
    for name in parley_operator.__all__:
        assert getattr(parley_operator, name).__module__.startswith("parley_operator."), name


def test_the_public_api_injects_and_validates() -> None:
    settings = parley_operator.InjectorSettings(sidecar_image="registry.test/parley-sidecar:1")
    pod = {"metadata": {"name": "web-1", "annotations": {"dapr.io/enabled": "true", "dapr.io/app-id": "web"}},
           "spec": {"containers": [{"name": "app", "image": "app:1"}]}}
    parsed = parley_operator.parse_annotations(pod["metadata"]["annotations"], pod_name="web-1", namespace="shop",
                                               settings=settings)
    assert isinstance(parsed, parley_operator.Parsed) and isinstance(parsed.config, parley_operator.SidecarConfig)
    ops = parley_operator.build_patch(pod, parsed.config, settings, ca_pem="CA")
    added = [op["value"] for op in ops if op["path"] == "/spec/containers/-"]
    assert [c["name"] for c in added] == ["daprd"] and added[0]["image"] == "registry.test/parley-sidecar:1"

    report = parley_operator.validate({"metadata": {"name": "llm"}, "spec": {"type": "conversation.gpt"}})
    assert isinstance(report, parley_operator.Report) and not report.ok
    assert report.errors[0].startswith("spec.type: unknown conversation type")
