"""A real kube-apiserver + etcd on 127.0.0.1 for tests, and a small synchronous API client.

Binaries come from ``tests/envtest/setup-k8s.sh`` (built from the k8s.io/kubernetes Go module,
cached outside the repo). The control plane runs with RBAC, the default admission plugins
(ServiceAccount, PodSecurity, MutatingAdmissionWebhook, ValidatingAdmissionWebhook, …), anonymous
auth off, and an audit log of everything parley-operator's ServiceAccount does. No controller
manager, scheduler or kubelet: objects are stored, pods are never started.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

K8S_VERSION = "v1.33.13"
OPERATOR_USER = "system:serviceaccount:parley-system:parley-operator"


def bin_dir() -> Path:
    cache = Path(os.environ.get("PARLEY_CACHE") or Path.home() / ".cache" / "parley")
    return Path(os.environ.get("PARLEY_K8S_BIN") or cache / "k8s" / K8S_VERSION / "bin")


def missing_binaries() -> list[str]:
    return [name for name in ("kube-apiserver", "etcd") if not os.access(bin_dir() / name, os.X_OK)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- PKI ------------------------------------------------------------------------------------------

def _pem_key(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert(subject: x509.Name, key: Any, issuer: x509.Name, issuer_key: Any, *, ca: bool = False,
          sans: list[x509.GeneralName] | None = None, client: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if not ca:
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@dataclasses.dataclass(frozen=True)
class Pki:
    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.crt"

    @property
    def serving_cert(self) -> Path:
        return self.dir / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.dir / "apiserver.key"

    @property
    def admin_cert(self) -> Path:
        return self.dir / "admin.crt"

    @property
    def admin_key(self) -> Path:
        return self.dir / "admin.key"

    @property
    def sa_key(self) -> Path:
        return self.dir / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.dir / "sa.pub"

    @classmethod
    def create(cls, directory: Path) -> Pki:
        directory.mkdir(parents=True, exist_ok=True)
        pki = cls(directory)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "parley-envtest-ca")])
        ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
        serving_key = ec.generate_private_key(ec.SECP256R1())
        serving = _cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]), serving_key,
                        ca_name, ca_key, sans=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                               x509.DNSName("localhost")])
        admin_key = ec.generate_private_key(ec.SECP256R1())
        admin = _cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "parley-envtest-admin"),
                                 x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters")]),
                      admin_key, ca_name, ca_key, client=True)
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        files = {
            pki.ca: ca.public_bytes(serialization.Encoding.PEM),
            pki.serving_cert: serving.public_bytes(serialization.Encoding.PEM),
            pki.serving_key: _pem_key(serving_key),
            pki.admin_cert: admin.public_bytes(serialization.Encoding.PEM),
            pki.admin_key: _pem_key(admin_key),
            pki.sa_key: _pem_key(sa_key),
            pki.sa_pub: sa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo),
        }
        for path, data in files.items():
            path.write_bytes(data)
            path.chmod(0o600)
        return pki


# -- API client ---------------------------------------------------------------------------------

class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else str(body)
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.body = body
        self.message = str(message)


class Kube:
    """Just enough of a Kubernetes client: JSON in, JSON out, one credential."""

    def __init__(self, server: str, ca: Path, *, cert: tuple[Path, Path] | None = None, token: str = "") -> None:
        self.server = server.rstrip("/")
        self.ca = ca
        self.token = token
        self._ctx = ssl.create_default_context(cafile=str(ca))
        if cert:
            self._ctx.load_cert_chain(str(cert[0]), str(cert[1]))

    def with_token(self, token: str) -> Kube:
        return Kube(self.server, self.ca, token=token)

    def request(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
                params: Mapping[str, str] | None = None, timeout: float = 30.0) -> Any:
        url = self.server + path + ("?" + urllib.parse.urlencode(params) if params else "")
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, context=self._ctx, timeout=timeout) as resp:
                text = resp.read().decode()
        except urllib.error.HTTPError as exc:
            text = exc.read().decode()
            try:
                parsed: Any = json.loads(text)
            except ValueError:
                parsed = text
            raise ApiError(exc.code, parsed) from None
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return text  # /readyz, /livez answer plain text

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def create(self, path: str, body: Any, **kw: Any) -> Any:
        return self.request("POST", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)

    def merge_patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body, content_type="application/merge-patch+json")

    def apply(self, obj: Mapping[str, Any]) -> Any:
        """Create ``obj`` (or replace it if it exists), like ``kubectl apply`` for a fresh object."""
        path = object_path(obj)
        try:
            return self.create(collection_path(obj), obj)
        except ApiError as exc:
            if exc.status != 409:
                raise
            current = self.get(path)
            return self.request("PUT", path, {**obj, "metadata": {**obj["metadata"],
                                "resourceVersion": current["metadata"]["resourceVersion"]}})

    def token_for(self, namespace: str, service_account: str, *, audience: str, pod: Mapping[str, Any] | None = None,
                  seconds: int = 3600) -> str:
        spec: dict[str, Any] = {"audiences": [audience], "expirationSeconds": seconds}
        if pod is not None:
            spec["boundObjectRef"] = {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"],
                                      "uid": pod["metadata"]["uid"]}
        review = self.create(f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
                             {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
        return str(review["status"]["token"])


_PLURALS = {"CustomResourceDefinition": "customresourcedefinitions", "Namespace": "namespaces",
            "ServiceAccount": "serviceaccounts", "ClusterRole": "clusterroles",
            "ClusterRoleBinding": "clusterrolebindings", "Role": "roles", "RoleBinding": "rolebindings",
            "Service": "services", "Deployment": "deployments", "PodDisruptionBudget": "poddisruptionbudgets",
            "MutatingWebhookConfiguration": "mutatingwebhookconfigurations",
            "ValidatingWebhookConfiguration": "validatingwebhookconfigurations", "Pod": "pods",
            "Secret": "secrets", "Component": "components", "Resiliency": "resiliencies",
            "Configuration": "configurations"}


def collection_path(obj: Mapping[str, Any]) -> str:
    api_version, kind = obj["apiVersion"], obj["kind"]
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    namespace = obj["metadata"].get("namespace")
    ns = f"/namespaces/{namespace}" if namespace else ""
    return f"{prefix}{ns}/{_PLURALS[kind]}"


def object_path(obj: Mapping[str, Any]) -> str:
    return f"{collection_path(obj)}/{obj['metadata']['name']}"


def load_yaml(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


# -- processes ----------------------------------------------------------------------------------

AUDIT_POLICY = f"""\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  users: ["{OPERATOR_USER}"]
- level: None
"""


@dataclasses.dataclass
class ControlPlane:
    dir: Path
    pki: Pki
    etcd: subprocess.Popen[bytes]
    apiserver: subprocess.Popen[bytes]
    port: int
    started_in: float

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def audit_log(self) -> Path:
        return self.dir / "audit.log"

    def admin(self) -> Kube:
        return Kube(self.server, self.pki.ca, cert=(self.pki.admin_cert, self.pki.admin_key))

    def kubeconfig(self, path: Path, *, token: str) -> Path:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "envtest",
            # A CA file, not certificate-authority-data: parley_operator.kube hands kopf's ca_data to ssl
            # without base64-decoding it (reported to the operator's author).
            "clusters": [{"name": "envtest", "cluster": {"server": self.server,
                                                          "certificate-authority": str(self.pki.ca)}}],
            "users": [{"name": "sa", "user": {"token": token}}],
            "contexts": [{"name": "envtest", "context": {"cluster": "envtest", "user": "sa"}}],
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def audit_events(self) -> Iterator[dict[str, Any]]:
        if not self.audit_log.exists():
            return
        for line in self.audit_log.read_text().splitlines():
            if line.strip():
                yield json.loads(line)

    def stop(self) -> None:
        # Nothing here needs a graceful shutdown (the data dir is thrown away): keep teardown short.
        stop_process(self.apiserver, timeout=2)
        stop_process(self.etcd, timeout=2)


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _wait(check: Any, *, timeout: float, what: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{_tail(log)}")
        try:
            if check():
                return
        except (OSError, ApiError, ssl.SSLError) as exc:
            last = exc
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {timeout:.0f}s (last error: {last}):\n{_tail(log)}")


def start(directory: Path, *, timeout: float = 90.0) -> ControlPlane:
    """etcd, then kube-apiserver, each on free loopback ports; returns once ``/readyz`` says ok."""
    started = time.monotonic()
    binaries = bin_dir()
    pki = Pki.create(directory / "pki")
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    peer_url = f"http://127.0.0.1:{peer_port}"
    etcd_log = directory / "etcd.log"
    etcd = subprocess.Popen(
        [str(binaries / "etcd"), "--name", "envtest", "--data-dir", str(directory / "etcd"),
         "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
         "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
         "--initial-cluster", f"envtest={peer_url}", "--logger", "zap", "--log-level", "warn",
         "--unsafe-no-fsync"],
        stdout=etcd_log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)

    def etcd_healthy() -> bool:
        with urllib.request.urlopen(f"{etcd_url}/health", timeout=2) as resp:
            return bool(json.loads(resp.read()).get("health") == "true")

    try:
        _wait(etcd_healthy, timeout=timeout, what="etcd", proc=etcd, log=etcd_log)
    except BaseException:
        stop_process(etcd)
        raise
    (directory / "audit-policy.yaml").write_text(AUDIT_POLICY)
    api_log = directory / "kube-apiserver.log"
    (directory / "cert-dir").mkdir(exist_ok=True)
    apiserver = subprocess.Popen(
        [str(binaries / "kube-apiserver"),
         f"--etcd-servers={etcd_url}",
         "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
         f"--cert-dir={directory / 'cert-dir'}",
         f"--tls-cert-file={pki.serving_cert}", f"--tls-private-key-file={pki.serving_key}",
         f"--client-ca-file={pki.ca}", "--anonymous-auth=false",
         "--authorization-mode=RBAC",
         "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
         f"--service-account-key-file={pki.sa_pub}", f"--service-account-signing-key-file={pki.sa_key}",
         "--service-cluster-ip-range=10.0.0.0/24", "--endpoint-reconciler-type=none",
         f"--audit-policy-file={directory / 'audit-policy.yaml'}", f"--audit-log-path={directory / 'audit.log'}",
         "--audit-log-format=json", "--profiling=false", "--v=1"],
        stdout=api_log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    plane = ControlPlane(directory, pki, etcd, apiserver, api_port, 0.0)
    admin = plane.admin()
    try:
        _wait(lambda: admin.request("GET", "/readyz", timeout=5) == "ok", timeout=timeout,
              what="kube-apiserver", proc=apiserver, log=api_log)
    except BaseException:
        plane.stop()
        raise
    plane.started_in = time.monotonic() - started
    return plane


def wait_for(check: Any, *, timeout: float, interval: float = 0.2, what: str = "condition") -> Any:
    """Poll ``check()`` until it returns something truthy; its last error is in the failure message."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (ApiError, OSError, AssertionError, KeyError, ValueError) as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout:.0f}s (last: {last!r})")
