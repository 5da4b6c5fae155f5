"""Serving certificates for the webhook (:9443) and the component stream (:6500), and the CA that
the API server and the sidecars trust.

Two sources, in this order:

1. **Mounted** (cert-manager): ``tls.crt``/``tls.key`` (and ``ca.crt``) in ``CertSettings.mounted_dir``.
   Used as they are; re-read every ``check_interval``, so a renewal is picked up without a restart.
2. **Generated**: a CA and a serving certificate kept in the Secret ``CertSettings.secret_name``.
   Replicas starting together race to *create* it; the API server lets exactly one create win
   (409 for the others, who then read the winner's), so all replicas present one CA. A serving
   certificate near expiry is renewed with a JSON Patch guarded by a ``test`` of the Secret's
   ``resourceVersion``, the same compare-and-swap, keeping the CA so injected sidecars still trust it.

Either way the CA is patched into the ``caBundle`` of the operator's webhook configurations and
re-checked every ``check_interval`` (a ``helm upgrade`` that resets it is repaired within a minute).
Uses ``cryptography`` (kopf's self-signed mode needs oscrypto, which breaks on OpenSSL ≥ 3.0.10).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime
import ipaddress
import logging
import os
import ssl
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from parley_operator import kube
from parley_operator.settings import CertSettings, WebhookSettings

__all__ = ["Bundle", "CertManager", "generate", "needs_renewal", "service_names"]

log = logging.getLogger("parley.operator.certs")

_KINDS = ("mutatingwebhookconfigurations", "validatingwebhookconfigurations")


@dataclasses.dataclass(frozen=True, slots=True)
class Bundle:
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes = dataclasses.field(repr=False)
    ca_key_pem: bytes = dataclasses.field(default=b"", repr=False)
    """Only for generated bundles: needed to renew the serving certificate under the same CA."""

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)


def service_names(settings: CertSettings) -> list[str]:
    """The DNS names the API server and sidecars use to reach the Service, plus extras."""
    svc, ns = settings.service_name, settings.namespace
    return [svc, f"{svc}.{ns}", f"{svc}.{ns}.svc", f"{svc}.{ns}.svc.cluster.local", *settings.extra_sans]


def _san(names: Iterable[str]) -> x509.SubjectAlternativeName:
    general: list[x509.GeneralName] = []
    for name in names:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(general)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _serving_cert(
    names: list[str], ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, *, days: int,
    now: datetime.datetime,
) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(_san(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, content_commitment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _pem_key(key)


def generate(names: list[str], *, ca_days: int, cert_days: int, now: datetime.datetime | None = None) -> Bundle:
    """A new CA (ECDSA P-256) and a serving certificate for ``names`` signed by it. No I/O."""
    now = now or datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "parley-operator-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=ca_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, content_commitment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    cert_pem, key_pem = _serving_cert(names, ca_cert, ca_key, days=cert_days, now=now)
    return Bundle(ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM), cert_pem=cert_pem, key_pem=key_pem,
                  ca_key_pem=_pem_key(ca_key))


def renew(bundle: Bundle, names: list[str], *, cert_days: int, now: datetime.datetime | None = None) -> Bundle:
    """A fresh serving certificate under the bundle's existing CA. No I/O."""
    now = now or datetime.datetime.now(datetime.UTC)
    ca_cert = x509.load_pem_x509_certificate(bundle.ca_pem)
    ca_key = serialization.load_pem_private_key(bundle.ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the stored CA key is not an EC key")
    cert_pem, key_pem = _serving_cert(names, ca_cert, ca_key, days=cert_days, now=now)
    return dataclasses.replace(bundle, cert_pem=cert_pem, key_pem=key_pem)


def needs_renewal(bundle: Bundle, names: list[str], *, renew_days: int, now: datetime.datetime | None = None) -> bool:
    """True when the serving certificate expires within ``renew_days`` or lacks one of ``names``."""
    now = now or datetime.datetime.now(datetime.UTC)
    cert = bundle.certificate
    if cert.not_valid_after_utc - now < datetime.timedelta(days=renew_days):
        return True
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return True
    have = {str(v) for v in san.get_values_for_type(x509.DNSName)}
    have |= {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    return not set(names) <= have


def _from_secret(secret: Mapping[str, Any]) -> Bundle | None:
    data = secret.get("data") or {}
    try:
        parts = {k: base64.b64decode(data[k]) for k in ("ca.crt", "ca.key", "tls.crt", "tls.key")}
        bundle = Bundle(ca_pem=parts["ca.crt"], cert_pem=parts["tls.crt"], key_pem=parts["tls.key"],
                        ca_key_pem=parts["ca.key"])
        bundle.certificate  # noqa: B018 - parse once: a damaged Secret is treated as absent
    except (KeyError, ValueError):
        return None
    return bundle


def _secret_data(bundle: Bundle) -> dict[str, str]:
    raw = {"ca.crt": bundle.ca_pem, "ca.key": bundle.ca_key_pem, "tls.crt": bundle.cert_pem,
           "tls.key": bundle.key_pem}
    return {k: base64.b64encode(v).decode() for k, v in raw.items()}


def _read_mounted(directory: Path) -> Bundle | None:
    cert, key, ca = directory / "tls.crt", directory / "tls.key", directory / "ca.crt"
    if not (cert.is_file() and key.is_file()):
        return None
    cert_pem = cert.read_bytes()
    return Bundle(ca_pem=ca.read_bytes() if ca.is_file() else cert_pem, cert_pem=cert_pem,
                  key_pem=key.read_bytes())


class CertManager:
    """Owns the current :class:`Bundle`, its files on disk and the webhook ``caBundle`` patches."""

    def __init__(self, settings: CertSettings, webhook: WebhookSettings, client: kube.KubeClient) -> None:
        self.settings = settings
        self.webhook = webhook
        self.client = client
        self.bundle: Bundle | None = None
        self.source = ""
        """``mounted`` or ``secret``, for logs."""
        self.cert_file = settings.work_dir / "tls.crt"
        self.key_file = settings.work_dir / "tls.key"
        self.listeners: list[Callable[[Bundle], None]] = []
        """Called after the bundle changed (the stream server reloads its TLS context)."""

    @property
    def ca_pem(self) -> str:
        if self.bundle is None:
            raise RuntimeError("certificates are not loaded yet")
        return self.bundle.ca_pem.decode()

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx

    def _secret_path(self, name: str = "") -> str:
        base = f"/api/v1/namespaces/{self.settings.namespace}/secrets"
        return f"{base}/{name}" if name else base

    async def _from_secret_store(self) -> Bundle:
        names = service_names(self.settings)
        for _ in range(5):
            try:
                secret = await self.client.get(self._secret_path(self.settings.secret_name))
            except kube.APINotFound:
                bundle = generate(names, ca_days=self.settings.ca_days, cert_days=self.settings.cert_days)
                body = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                        "metadata": {"name": self.settings.secret_name, "namespace": self.settings.namespace,
                                     "labels": {"app.kubernetes.io/managed-by": "parley-operator"}},
                        "data": _secret_data(bundle)}
                try:
                    await self.client.create(self._secret_path(), body)
                except kube.APIConflict:
                    continue  # another replica created it first: use theirs
                log.info("created CA and serving certificate in Secret %s/%s",
                         self.settings.namespace, self.settings.secret_name)
                return bundle
            current = _from_secret(secret)
            if current is not None and not needs_renewal(current, names, renew_days=self.settings.renew_days):
                return current
            bundle = (renew(current, names, cert_days=self.settings.cert_days) if current is not None
                      else generate(names, ca_days=self.settings.ca_days, cert_days=self.settings.cert_days))
            version = str((secret.get("metadata") or {}).get("resourceVersion", ""))
            ops: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/resourceVersion", "value": version},
                                         {"op": "replace", "path": "/data", "value": _secret_data(bundle)}]
            try:
                await self.client.json_patch(self._secret_path(self.settings.secret_name), ops)
            except (kube.APIConflict, kube.APIInvalid):
                continue  # changed underneath us (another replica renewed): read again
            log.info("renewed the serving certificate in Secret %s/%s", self.settings.namespace,
                     self.settings.secret_name)
            return bundle
        raise RuntimeError(f"could not settle Secret {self.settings.secret_name}: too many concurrent changes")

    async def load(self) -> Bundle:
        """Find or make the bundle and write it for the TLS servers; notify listeners on change."""
        mounted = _read_mounted(self.settings.mounted_dir)
        bundle = mounted if mounted is not None else await self._from_secret_store()
        self.source = "mounted" if mounted is not None else "secret"
        if bundle != self.bundle:
            self._write(bundle)
            self.bundle = bundle
            for listener in self.listeners:
                listener(bundle)
        return bundle

    def _write(self, bundle: Bundle) -> None:
        self.settings.work_dir.mkdir(parents=True, exist_ok=True)
        # Write-then-rename: kopf's server re-reads these files and must never see half a key.
        for path, data, mode in ((self.key_file, bundle.key_pem, 0o600), (self.cert_file, bundle.cert_pem, 0o644)):
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            tmp.replace(path)

    async def patch_ca_bundles(self) -> None:
        """Put the CA into every webhook of the operator's configurations (only where it differs)."""
        if self.bundle is None:
            return
        ca = base64.b64encode(self.bundle.ca_pem).decode()
        for kind, name in zip(_KINDS, (self.webhook.mutating_configuration,
                                       self.webhook.validating_configuration), strict=True):
            if not name:
                continue
            path = f"/apis/admissionregistration.k8s.io/v1/{kind}/{name}"
            try:
                current = await self.client.get(path)
            except kube.APINotFound:
                log.warning("%s %s not found: its caBundle is set once it exists", kind, name)
                continue
            ops = [
                {"op": "add", "path": f"/webhooks/{i}/clientConfig/caBundle", "value": ca}
                for i, hook in enumerate(current.get("webhooks") or ())
                if (hook.get("clientConfig") or {}).get("caBundle") != ca
            ]
            if ops:
                await self.client.json_patch(path, ops)
                log.info("patched caBundle into %d webhook(s) of %s %s", len(ops), kind, name)

    async def keep_current(self) -> None:
        """Every ``check_interval``: reload the bundle and re-assert the caBundles. Runs until cancelled."""
        while True:
            await asyncio.sleep(self.settings.check_interval)
            try:
                await self.load()
                await self.patch_ca_bundles()
            except (kube.APIError, OSError, ValueError, RuntimeError) as exc:
                log.warning("certificate check failed, retrying in %gs: %s", self.settings.check_interval, exc)
