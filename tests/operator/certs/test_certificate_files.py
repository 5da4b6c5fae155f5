"""Generated certificates: a CA and a serving certificate the API server and sidecars can verify."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from pathlib import Path

from cryptography import x509

from parley_operator import certs
from parley_operator.settings import CertSettings

NAMES = ["parley-operator", "parley-operator.parley-system.svc", "127.0.0.1"]


def test_serving_certificate_is_signed_by_the_ca_and_names_the_service() -> None:
    bundle = certs.generate(NAMES, ca_days=3650, cert_days=365)
    ca = x509.load_pem_x509_certificate(bundle.ca_pem)
    cert = bundle.certificate
    cert.verify_directly_issued_by(ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == NAMES[:2]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False


async def test_a_tls_client_trusting_the_ca_completes_a_handshake(tmp_path: Path) -> None:
    bundle = certs.generate(NAMES, ca_days=3650, cert_days=365)
    (tmp_path / "tls.crt").write_bytes(bundle.cert_pem)
    (tmp_path / "tls.key").write_bytes(bundle.key_pem)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    client_ctx = ssl.create_default_context(cadata=bundle.ca_pem.decode())
    for host in ("127.0.0.1", "parley-operator.parley-system.svc"):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx, server_hostname=host)
        assert await reader.read() == b"ok"
        writer.close()
    server.close()
    await server.wait_closed()


def test_renewal_is_due_near_expiry_or_for_a_new_name() -> None:
    now = datetime.datetime.now(datetime.UTC)
    fresh = certs.generate(NAMES, ca_days=3650, cert_days=365)
    assert not certs.needs_renewal(fresh, NAMES, renew_days=30)
    assert certs.needs_renewal(fresh, [*NAMES, "extra.example"], renew_days=30)
    old = certs.generate(NAMES, ca_days=3650, cert_days=365, now=now - datetime.timedelta(days=350))
    assert certs.needs_renewal(old, NAMES, renew_days=30)
    renewed = certs.renew(old, NAMES, cert_days=365)
    assert renewed.ca_pem == old.ca_pem and renewed.cert_pem != old.cert_pem
    assert not certs.needs_renewal(renewed, NAMES, renew_days=30)
    renewed.certificate.verify_directly_issued_by(x509.load_pem_x509_certificate(old.ca_pem))


def test_service_names_cover_every_way_to_address_the_service() -> None:
    names = certs.service_names(CertSettings(service_name="op", namespace="sys", extra_sans=("10.0.0.1",)))
    assert names == ["op", "op.sys", "op.sys.svc", "op.sys.svc.cluster.local", "10.0.0.1"]
