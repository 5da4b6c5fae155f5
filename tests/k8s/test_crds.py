"""crds/ is Dapr's Component CRD, unchanged, so parley and Dapr can share a cluster's CRD."""

from __future__ import annotations

import hashlib

import pytest
import yaml

from tests.k8s import tools

pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate is not installed (it is in the test extra: pip install -e '.[test]')")

# SHA-256 of dapr/dapr v1.18.3 charts/dapr/crds/components.yaml (identical at master d8450742).
DAPR_V1_18_3_SHA256 = "47acb92af4b4c403832c0d7acc32cab2d72c58be630dc7fe0cdbed702c3b1434"


def test_crd_is_byte_for_byte_daprs() -> None:
    data = (tools.CRDS / "components.yaml").read_bytes()
    assert hashlib.sha256(data).hexdigest() == DAPR_V1_18_3_SHA256


def test_crd_has_daprs_shape() -> None:
    [crd] = tools.load_docs((tools.CRDS / "components.yaml").read_text())
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "components.dapr.io" and spec["scope"] == "Namespaced"
    assert spec["names"] == {"kind": "Component", "listKind": "ComponentList", "plural": "components",
                             "singular": "component"}
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    props = version["schema"]["openAPIV3Schema"]["properties"]
    assert set(props) == {"apiVersion", "kind", "metadata", "auth", "scopes", "spec"}
    item = props["spec"]["properties"]["metadata"]["items"]["properties"]
    assert item["value"] == {"description": "Value of the property, in plaintext.",
                             "x-kubernetes-preserve-unknown-fields": True}
    assert set(item) == {"name", "value", "secretKeyRef", "envRef"}


def test_crd_validates_as_a_custom_resource_definition() -> None:
    for version in tools.SCHEMA_VERSIONS:
        tools.validate(yaml.safe_load((tools.CRDS / "components.yaml").read_text()), version)
