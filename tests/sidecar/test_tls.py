"""Provider connections trust the CA bundle the pod's environment names, and importing the sidecar
leaves that environment as it found it (``parley_sidecar.tls``: aiohttp's unused import-time
contexts no longer parse the bundle)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from parley_operator import certs

_PROBE = """
import json, os, ssl
before = os.environ.get("SSL_CERT_FILE")
import parley_sidecar
from parley_sidecar import tls
print(json.dumps({"before": before, "after": os.environ.get("SSL_CERT_FILE"),
                  "trusted": tls.client_context().cert_store_stats()["x509_ca"],
                  "default": ssl.create_default_context().cert_store_stats()["x509_ca"]}))
"""


def _probe(env: dict[str, str]) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, check=True, timeout=60)
    return dict(json.loads(out.stdout))


def test_a_bundle_named_in_ssl_cert_file_is_trusted_and_the_variable_kept(tmp_path: Path) -> None:
    bundle = certs.generate(["fake.test"], ca_days=1, cert_days=1)
    (tmp_path / "ca.pem").write_bytes(bundle.ca_pem)
    env = {k: v for k, v in os.environ.items() if k != "SSL_CERT_DIR"}
    env["SSL_CERT_FILE"] = str(tmp_path / "ca.pem")
    seen = _probe(env)
    assert seen["before"] == seen["after"] == str(tmp_path / "ca.pem")
    assert seen["trusted"] == 1


@pytest.mark.skipif(not Path("/etc/ssl/certs/ca-certificates.crt").exists(), reason="no system CA bundle")
def test_without_ssl_cert_file_the_system_bundle_is_trusted_and_nothing_is_set() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    seen = _probe(env)
    assert seen["before"] is None and seen["after"] is None
    assert seen["trusted"] == seen["default"] > 0
