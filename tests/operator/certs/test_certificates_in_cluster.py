"""Where the operator's certificates come from in a cluster, and where its CA goes."""

from __future__ import annotations

import asyncio
import base64
import datetime
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from parley_operator import certs

if TYPE_CHECKING:
    from conftest import Cluster, RunningOperator, StartOperator

PEM = Encoding.PEM
SECRET = ("v1/secrets", "parley-system", "parley-operator-tls")
NAMES = ["parley-operator", "parley-operator.parley-system", "parley-operator.parley-system.svc",
         "parley-operator.parley-system.svc.cluster.local", "127.0.0.1", "localhost"]


async def presented_certificate(host_port: str, ca_pem: str) -> x509.Certificate:
    """The certificate a TLS server presents, verified against ``ca_pem``."""
    host, port = host_port.rsplit(":", 1)
    context = ssl.create_default_context(cadata=ca_pem)
    _, writer = await asyncio.open_connection(host, int(port), ssl=context)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return x509.load_der_x509_certificate(der)


def webhook_address(op: RunningOperator) -> str:
    url = op.op.webhook.url or ""
    return url.removeprefix("https://").split("/")[0]


async def ca_bundles(cluster: Cluster, kind: str, expected: str) -> list[str | None]:
    """The caBundles of one configuration, once all equal ``expected`` (or after 5 s)."""
    key = (f"admissionregistration.k8s.io/v1/{kind}", None, "parley-operator")
    for _ in range(250):
        bundles = [h["clientConfig"].get("caBundle") for h in cluster.api.objects[key]["webhooks"]]
        if all(b == expected for b in bundles):
            break
        await asyncio.sleep(0.02)
    return bundles


def secret_data(cluster: Cluster) -> dict[str, bytes]:
    raw = cluster.api.objects[SECRET]["data"]
    return {k: base64.b64decode(v) for k, v in raw.items()}


async def test_generated_ca_is_kept_in_a_secret_and_served_on_both_ports(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    op = await start_operator()
    data = secret_data(cluster)
    assert data["ca.crt"].decode() == op.ca_pem
    for address in (webhook_address(op), op.stream_address):
        cert = await presented_certificate(address, op.ca_pem)
        assert cert.public_bytes(PEM) == data["tls.crt"]


async def test_two_replicas_starting_at_once_share_one_ca(cluster: Cluster, start_operator: StartOperator) -> None:
    # Make the race certain: both replicas look for the Secret before either has created it.
    looked, both_looked = 0, asyncio.Event()

    async def look() -> None:
        nonlocal looked
        looked += 1
        if looked == 2:
            both_looked.set()
        if looked <= 2:
            await asyncio.wait_for(both_looked.wait(), 10)
        # returning nothing lets the emulator answer (404 at first)

    cluster.api["get /api/v1/namespaces/parley-system/secrets/parley-operator-tls"] << look
    first, second = await asyncio.gather(start_operator(), start_operator())
    assert first.ca_pem == second.ca_pem
    creates = cluster.api["post /api/v1/namespaces/parley-system/secrets"]
    assert len(creates) == 2  # both tried; the API server let exactly one create win (409 for the other)
    await presented_certificate(webhook_address(second), first.ca_pem)


async def test_ca_bundle_is_patched_into_the_webhook_configurations(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    await cluster.put_webhook_configurations("parley-operator", webhooks=2)
    op = await start_operator()
    expected = base64.b64encode(op.ca_pem.encode()).decode()
    for kind in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
        assert await ca_bundles(cluster, kind, expected) == [expected, expected]
        hooks = cluster.api.objects[f"admissionregistration.k8s.io/v1/{kind}", None, "parley-operator"]["webhooks"]
        assert hooks[0]["clientConfig"]["service"]["path"] == "/mutate"  # nothing else touched


async def test_a_reset_ca_bundle_is_repaired(cluster: Cluster, start_operator: StartOperator) -> None:
    await cluster.put_webhook_configurations("parley-operator")
    op = await start_operator(certs__check_interval=0.1)
    path = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/parley-operator"
    expected = base64.b64encode(op.ca_pem.encode()).decode()
    assert await ca_bundles(cluster, "mutatingwebhookconfigurations", expected) == [expected]
    await cluster._send("PATCH", path, [{"op": "remove", "path": "/webhooks/0/clientConfig/caBundle"}])  # helm upgrade
    assert await ca_bundles(cluster, "mutatingwebhookconfigurations", expected) == [expected]


async def test_mounted_cert_manager_files_are_used_instead(
    cluster: Cluster, start_operator: StartOperator, tmp_path: Path
) -> None:
    mounted = certs.generate(NAMES, ca_days=30, cert_days=30)
    (tmp_path / "mounted").mkdir()
    for name, data in (("tls.crt", mounted.cert_pem), ("tls.key", mounted.key_pem), ("ca.crt", mounted.ca_pem)):
        (tmp_path / "mounted" / name).write_bytes(data)
    op = await start_operator()
    assert op.ca_pem == mounted.ca_pem.decode()
    cert = await presented_certificate(op.stream_address, mounted.ca_pem.decode())
    assert cert.public_bytes(PEM) == mounted.cert_pem
    assert SECRET not in cluster.api.objects or cluster.api.objects[SECRET].deleted
    assert len(cluster.api["post /api/v1/namespaces/parley-system/secrets"]) == 0


async def test_renewed_mounted_files_are_served_without_a_restart(
    cluster: Cluster, start_operator: StartOperator, tmp_path: Path
) -> None:
    first = certs.generate(NAMES, ca_days=30, cert_days=30)
    directory = tmp_path / "mounted"
    directory.mkdir()

    def mount(bundle: certs.Bundle) -> None:
        for name, data in (("tls.crt", bundle.cert_pem), ("tls.key", bundle.key_pem), ("ca.crt", bundle.ca_pem)):
            (directory / name).write_bytes(data)

    mount(first)
    op = await start_operator(certs__check_interval=0.1)
    renewed = certs.renew(first, NAMES, cert_days=60)
    mount(renewed)
    for _ in range(100):  # up to 5 s
        cert = await presented_certificate(op.stream_address, first.ca_pem.decode())
        if cert.public_bytes(PEM) == renewed.cert_pem:
            break
        await asyncio.sleep(0.05)
    assert cert.public_bytes(PEM) == renewed.cert_pem


async def test_a_serving_certificate_near_expiry_is_renewed_under_the_same_ca(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    now = datetime.datetime.now(datetime.UTC)
    old = certs.generate(NAMES, ca_days=3650, cert_days=365, now=now - datetime.timedelta(days=360))
    await cluster._send("POST", "/api/v1/namespaces/parley-system/secrets", {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "parley-operator-tls", "namespace": "parley-system", "resourceVersion": "7"},
        "data": {k: base64.b64encode(v).decode() for k, v in (
            ("ca.crt", old.ca_pem), ("ca.key", old.ca_key_pem), ("tls.crt", old.cert_pem), ("tls.key", old.key_pem))}})
    op = await start_operator()
    data: dict[str, Any] = secret_data(cluster)
    assert data["ca.crt"] == old.ca_pem and data["tls.crt"] != old.cert_pem
    cert = await presented_certificate(op.stream_address, old.ca_pem.decode())
    assert cert.not_valid_after_utc - now > datetime.timedelta(days=300)
