"""crds/ also carries Dapr's Resiliency and Configuration CRDs, unchanged: users' manifests apply as
they are, and parley and Dapr can share one cluster's definitions."""

from __future__ import annotations

import hashlib

import pytest

from tests.k8s import tools

# SHA-256 of dapr/dapr release-1.18 (v1.18.3) charts/dapr/crds/*.yaml.
DAPR_V1_18_3 = {
    "resiliency.yaml": ("resiliencies.dapr.io", "62ca4e10fd61793f44265a3864f2863cf55508a681ac689508262257deb51356"),
    "configuration.yaml": ("configurations.dapr.io",
                           "3ae6beeeb07e6c4b62b207714d368a84856554ab45781171fd94a4141d70baf8"),
}


@pytest.mark.parametrize("file", sorted(DAPR_V1_18_3))
def test_crd_is_byte_for_byte_daprs(file: str) -> None:
    name, digest = DAPR_V1_18_3[file]
    data = (tools.CRDS / file).read_bytes()
    assert hashlib.sha256(data).hexdigest() == digest
    [crd] = tools.load_docs(data.decode())
    assert crd["metadata"]["name"] == name and crd["spec"]["group"] == "dapr.io"
    assert [v["name"] for v in crd["spec"]["versions"]] == ["v1alpha1"]
