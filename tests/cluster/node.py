"""A real single-node Kubernetes on this machine, in a network namespace of its own, and its teardown.

    python -m tests.cluster.node up      # build/take binaries and images, start everything, wait for Ready
    python -m tests.cluster.node down    # stop exactly what ``up`` started; remove netns, mounts, cgroups, files
    python -m tests.cluster.node run -- CMD...   # CMD inside the node's network namespace, KUBECONFIG set

etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd, kubelet and kube-proxy
(iptables mode) all run inside the network namespace ``parley-node``: loopback, a dummy interface with
the node IP and, once the first pod starts, the CNI bridge. It has no default route and no link to
the host, so no packet the node or its pods send can leave the machine; ``up`` proves that with
``ip route get`` before anything runs. Processes join only that network namespace (``nsenter --net``),
not a mount namespace, so kubelet's volume mounts are visible to containerd and teardown can undo them.

Everything lives under ``$PARLEY_NODE_DIR`` (default /tmp/parley-node); binaries and images come
from caches under ``$PARLEY_CACHE``. See /docs/kubernetes.md ("The real-node tier").
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.envtest.cluster import _cert, _pem_key

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
NETNS = "parley-node"
NODE_NAME = "parley-node"
NODE_IP = "10.250.0.10"
POD_CIDR = "10.244.0.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
API_SERVICE_IP = "10.96.0.1"
DNS_SERVICE_IP = "10.96.0.10"
BRIDGE = "cni0"
CGROUP_ROOT = "/parley-node"
K8S_BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy",
                "kubectl")
DEBIAN_PACKAGES = {"containerd": "/usr/bin/containerd", "runc": "/usr/sbin/runc",
                   "containernetworking-plugins": "/usr/lib/cni/bridge", "iptables": "/usr/sbin/iptables",
                   "conntrack": "/usr/sbin/conntrack", "nftables": "/usr/sbin/nft", "iproute2": "/usr/sbin/ip", "util-linux": "/usr/bin/nsenter",
                   "curl": "/usr/bin/curl"}
NETNS_DIR = Path("/var/run/netns")


def log(message: str) -> None:
    print(f"node: {message}", file=sys.stderr, flush=True)


def node_dir() -> Path:
    return Path(os.environ.get("PARLEY_NODE_DIR") or "/tmp/parley-node")


def cache_dir() -> Path:
    return Path(os.environ.get("PARLEY_CACHE") or Path.home() / ".cache" / "parley")


def sh(*argv: str, check: bool = True, input: bytes | None = None, timeout: float = 600) -> str:
    out = subprocess.run(list(argv), capture_output=True, input=input, timeout=timeout, check=False)
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({out.returncode}): {out.stderr.decode(errors='replace')[-3000:]}")
    return out.stdout.decode(errors="replace")


def in_netns(*argv: str) -> list[str]:
    """``argv`` in the node's network namespace only: same mounts, same cgroups, same filesystem."""
    return ["nsenter", f"--net={NETNS_DIR / NETNS}", "--", *argv]


# -- layout ---------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Layout:
    dir: Path

    pki = property(lambda self: self.dir / "pki")
    logs = property(lambda self: self.dir / "logs")
    state = property(lambda self: self.dir / "state.json")
    containerd_sock = property(lambda self: self.dir / "containerd" / "containerd.sock")
    admin_kubeconfig = property(lambda self: self.dir / "admin.kubeconfig")
    env_file = property(lambda self: self.dir / "env")

    def kubeconfig(self, who: str) -> Path:
        return self.dir / f"{who}.kubeconfig"


def load_state(layout: Layout) -> dict[str, Any]:
    try:
        return dict(json.loads(layout.state.read_text()))
    except (OSError, ValueError):
        return {"pids": {}}


def save_state(layout: Layout, state: dict[str, Any]) -> None:
    layout.state.write_text(json.dumps(state, indent=1))


# -- PKI ------------------------------------------------------------------------------------------

def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def make_pki(layout: Layout) -> None:
    """One cluster CA, the serving certificates and one client certificate per component."""
    pki = layout.pki
    pki.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("parley-node-ca")
    files: dict[str, bytes] = {"ca.crt": _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
                               .public_bytes(serialization.Encoding.PEM), "ca.key": _pem_key(ca_key)}

    def issue(stem: str, subject: x509.Name, *, client: bool, sans: list[x509.GeneralName] | None = None) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(subject, key, ca_name, ca_key, client=client, sans=sans)
        files[f"{stem}.crt"] = cert.public_bytes(serialization.Encoding.PEM)
        files[f"{stem}.key"] = _pem_key(key)

    ips: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", NODE_IP, API_SERVICE_IP)]
    dns: list[x509.GeneralName] = [x509.DNSName(n) for n in ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                                      "kubernetes.default.svc.cluster.local")]
    issue("apiserver", _name("kube-apiserver"), client=False, sans=ips + dns)
    issue("kubelet-serving", _name(NODE_NAME), client=False,
          sans=[x509.IPAddress(ipaddress.ip_address(NODE_IP)), x509.DNSName(NODE_NAME)])
    issue("admin", _name("parley-node-admin", "system:masters"), client=True)
    issue("apiserver-kubelet-client", _name("kube-apiserver-kubelet-client", "system:masters"), client=True)
    issue("controller-manager", _name("system:kube-controller-manager"), client=True)
    issue("scheduler", _name("system:kube-scheduler"), client=True)
    issue("kubelet", _name(f"system:node:{NODE_NAME}", "system:nodes"), client=True)
    issue("kube-proxy", _name("system:kube-proxy"), client=True)
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    files["sa.key"] = _pem_key(sa_key)
    files["sa.pub"] = sa_key.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)
    for name, data in files.items():
        path = pki / name
        path.write_bytes(data)
        path.chmod(0o600)
    for who in ("admin", "controller-manager", "scheduler", "kubelet", "kube-proxy"):
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "parley-node",
            "clusters": [{"name": "parley-node", "cluster": {"server": f"https://{NODE_IP}:6443",
                                                             "certificate-authority": str(pki / "ca.crt")}}],
            "users": [{"name": who, "user": {"client-certificate": str(pki / f"{who}.crt"),
                                             "client-key": str(pki / f"{who}.key")}}],
            "contexts": [{"name": "parley-node", "context": {"cluster": "parley-node", "user": who}}],
        }
        path = layout.kubeconfig(who)
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)


# -- configuration files --------------------------------------------------------------------------

def containerd_config(layout: Layout) -> str:
    d = layout.dir / "containerd"
    # restrict_oom_score_adj: this machine lacks CAP_SYS_RESOURCE, so runc cannot lower oom_score_adj
    # and every sandbox would fail (seen on this machine kind). No AppArmor and no hugetlb controller here.
    return f"""\
version = 2
root = "{d / 'root'}"
state = "{d / 'state'}"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
                    "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
                    "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{layout.containerd_sock}"
[ttrpc]
  address = "{d / 'containerd.sock.ttrpc'}"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{d / 'opt'}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "parley.local/pause:3.10"
  restrict_oom_score_adj = true
  disable_apparmor = true
  disable_hugetlb_controller = true
  tolerate_missing_hugetlb_controller = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{layout.dir / 'cni' / 'net.d'}"
"""


def cni_config() -> dict[str, Any]:
    return {
        "cniVersion": "0.4.0", "name": "parley-node",
        "plugins": [
            {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False, "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_CIDR}]],
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def kubelet_config(layout: Layout) -> dict[str, Any]:
    pki = layout.pki
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(pki / "ca.crt")}},
        "authorization": {"mode": "Webhook"},
        "tlsCertFile": str(pki / "kubelet-serving.crt"), "tlsPrivateKeyFile": str(pki / "kubelet-serving.key"),
        "address": NODE_IP, "readOnlyPort": 0, "healthzBindAddress": "127.0.0.1", "healthzPort": 10248,
        "containerRuntimeEndpoint": f"unix://{layout.containerd_sock}",
        # cgroup v1 here and containerd 1.6 cannot tell kubelet its driver: cgroupfs everywhere, under
        # a root of our own so that teardown removes exactly what the node made.
        "cgroupDriver": "cgroupfs", "cgroupRoot": CGROUP_ROOT, "cgroupsPerQOS": True,
        "enforceNodeAllocatable": ["pods"],
        "oomScoreAdj": 0, "failSwapOn": False, "protectKernelDefaults": False,
        "clusterDNS": [DNS_SERVICE_IP], "clusterDomain": "cluster.local",
        "resolvConf": str(layout.dir / "resolv.conf"),
        "podCIDR": POD_CIDR, "maxPods": 110, "serializeImagePulls": False,
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "2%", "imagefs.available": "2%",
                         "nodefs.inodesFree": "2%"},
        "imageGCHighThresholdPercent": 99, "imageGCLowThresholdPercent": 98,
        "syncFrequency": "10s", "fileCheckFrequency": "10s",
        "rotateCertificates": False, "serverTLSBootstrap": False,
        "registerNode": True, "staticPodPath": "",
        "shutdownGracePeriod": "0s",
    }


def kube_proxy_config(layout: Layout) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
        "mode": "iptables", "clusterCIDR": CLUSTER_CIDR, "hostnameOverride": NODE_NAME,
        "bindAddress": "0.0.0.0", "healthzBindAddress": "127.0.0.1:10256", "metricsBindAddress": "127.0.0.1:10249",
        "clientConnection": {"kubeconfig": str(layout.kubeconfig("kube-proxy"))},
        # Leave the host's conntrack sysctls alone (they are not per network namespace).
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
        "nodePortAddresses": ["primary"],
    }


def write_configs(layout: Layout) -> None:
    (layout.dir / "containerd").mkdir(parents=True, exist_ok=True)
    (layout.dir / "containerd.toml").write_text(containerd_config(layout))
    net_d = layout.dir / "cni" / "net.d"
    net_d.mkdir(parents=True, exist_ok=True)
    (net_d / "10-parley-node.conflist").write_text(json.dumps(cni_config(), indent=1))
    # Pods with dnsPolicy Default (CoreDNS itself) get this: no upstream, nothing leaves the machine.
    (layout.dir / "resolv.conf").write_text("options ndots:1\n")
    (layout.dir / "kubelet.yaml").write_text(yaml.safe_dump(kubelet_config(layout)))
    (layout.dir / "kube-proxy.yaml").write_text(yaml.safe_dump(kube_proxy_config(layout)))


# -- the network namespace ------------------------------------------------------------------------

def make_netns() -> None:
    sh("ip", "netns", "add", NETNS)
    for cmd in (["ip", "link", "set", "lo", "up"],
                # The node's address lives on a veth pair whose both ends stay in the namespace (this
                # kernel has no dummy interfaces): an always-up link that leads nowhere.
                ["ip", "link", "add", "node0", "type", "veth", "peer", "name", "node1"],
                ["ip", "addr", "add", f"{NODE_IP}/32", "dev", "node0"],
                ["ip", "link", "set", "node1", "up"],
                ["ip", "link", "set", "node0", "up"],
                # Node-local clients of a Service (kube-apiserver calling the webhook's ClusterIP) need a
                # route for the first lookup; kube-proxy's DNAT then reroutes to the pod.
                ["ip", "route", "add", SERVICE_CIDR, "dev", "node0"],
                ["sysctl", "-qw", "net.ipv4.ip_forward=1"],
                ["sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1"]):
        sh(*in_netns(*cmd))


def check_no_route_out() -> None:
    """Nothing in the node's namespace may reach the host's network or beyond. Raise otherwise."""
    routes = sh(*in_netns("ip", "-4", "route", "show", "table", "all"))
    if "default" in routes.split():
        raise RuntimeError(f"the node namespace has a default route:\n{routes}")
    links = json.loads(sh(*in_netns("ip", "-j", "link", "show")))
    foreign = [link["ifname"] for link in links
               if link["ifname"] not in ("lo", "node0", "node1", BRIDGE) and not link["ifname"].startswith("veth")]
    if foreign:
        raise RuntimeError(f"the node namespace has links it should not: {foreign}")
    for probe in ("1.1.1.1", "8.8.8.8", "10.0.0.1", "192.168.0.1", "172.16.0.1"):
        out = subprocess.run(in_netns("ip", "route", "get", probe), capture_output=True, text=True, check=False)
        if out.returncode == 0 and " dev node0" not in out.stdout:
            raise RuntimeError(f"{probe} is routable from the node namespace: {out.stdout.strip()}")
    log("no route out of the node namespace (no default route; only lo, the node0/node1 pair, the pod bridge and its veths)")


# -- processes ------------------------------------------------------------------------------------

def start(layout: Layout, state: dict[str, Any], name: str, argv: Sequence[str]) -> None:
    log_path = layout.logs / f"{name}.log"
    proc = subprocess.Popen(in_netns(*argv), stdout=log_path.open("ab"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    state["pids"][name] = proc.pid
    save_state(layout, state)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of ours counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def wait(check: Callable[[], bool], *, what: str, timeout: float, layout: Layout, name: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if name is not None and not alive(load_state(layout)["pids"][name]):
            raise RuntimeError(f"{name} exited:\n{tail(layout.logs / f'{name}.log')}")
        try:
            if check():
                return
        except (OSError, RuntimeError, subprocess.SubprocessError):
            pass
        time.sleep(0.5)
    hint = f":\n{tail(layout.logs / f'{name}.log')}" if name else ""
    raise RuntimeError(f"{what} not within {timeout:.0f}s{hint}")


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def kubectl(layout: Layout, *argv: str, check: bool = True, input: bytes | None = None, timeout: float = 120) -> str:
    return sh(*in_netns(str(binaries()["kubectl"]), "--kubeconfig", str(layout.admin_kubeconfig), *argv),
              check=check, input=input, timeout=timeout)


def ctr(layout: Layout, *argv: str, check: bool = True, input: bytes | None = None) -> str:
    return sh("ctr", "--address", str(layout.containerd_sock), "--namespace", "k8s.io", *argv, check=check,
              input=input)


# -- inputs ---------------------------------------------------------------------------------------

_BINARIES: dict[str, Path] = {}


def binaries() -> dict[str, Path]:
    if not _BINARIES:
        # Its progress (minutes, when a binary is not cached yet) goes straight to our stderr.
        out = subprocess.run(["bash", str(ROOT / "tests/envtest/setup-k8s.sh"), *K8S_BINARIES],
                             stdout=subprocess.PIPE, check=True, timeout=7200, text=True).stdout
        for path in out.split():
            _BINARIES[Path(path).name] = Path(path)
    return _BINARIES


def install_packages() -> None:
    missing = [pkg for pkg, probe in DEBIAN_PACKAGES.items() if not Path(probe).exists()]
    if not missing:
        return
    log(f"installing from Debian: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    # No service may start on install: a host containerd is not the node's, and nothing should outlive us.
    policy = Path("/usr/sbin/policy-rc.d")
    ours = not policy.exists()
    if ours:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing], check=True,
                       capture_output=True, env=env)
    finally:
        if ours:
            policy.unlink(missing_ok=True)


def images() -> list[Path]:
    if os.environ.get("PARLEY_NODE_IMAGES") == "none":  # bring-up work on the node alone
        return []
    out = subprocess.run(["bash", str(HERE / "images.sh")], stdout=subprocess.PIPE, check=True, timeout=7200)
    return [Path(p) for p in out.stdout.decode().split()]


# -- up -------------------------------------------------------------------------------------------

def up(layout: Layout, *, manifests: bool = True) -> dict[str, float]:
    preflight()
    if (NETNS_DIR / NETNS).exists() or layout.state.exists():
        log("a previous node is still there; tearing it down first")
        down(layout)
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    install_packages()
    bins = binaries()
    tars = images()
    timings["inputs"] = time.monotonic() - t0
    t1 = time.monotonic()
    layout.dir.mkdir(parents=True, exist_ok=True)
    layout.logs.mkdir(exist_ok=True)
    before = sorted(p.name for p in NETNS_DIR.glob("cni-*")) if NETNS_DIR.exists() else []
    state: dict[str, Any] = {"pids": {}, "netns_before": before, "started": time.time()}
    save_state(layout, state)
    make_netns()
    state["netns"] = NETNS
    save_state(layout, state)
    check_no_route_out()
    make_pki(layout)
    write_configs(layout)
    for controller in cgroup_controllers():
        (controller / CGROUP_ROOT.lstrip("/")).mkdir(exist_ok=True)
    state["cgroup_root"] = CGROUP_ROOT
    save_state(layout, state)
    pki = layout.pki

    start(layout, state, "etcd", [str(bins["etcd"]), "--name", NODE_NAME, "--data-dir", str(layout.dir / "etcd"),
                                  "--listen-client-urls", "http://127.0.0.1:2379",
                                  "--advertise-client-urls", "http://127.0.0.1:2379",
                                  "--listen-peer-urls", "http://127.0.0.1:2380",
                                  "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
                                  "--initial-cluster", f"{NODE_NAME}=http://127.0.0.1:2380",
                                  "--listen-metrics-urls", "http://127.0.0.1:2381",
                                  "--logger", "zap", "--log-level", "warn", "--unsafe-no-fsync"])
    wait(lambda: '"health":"true"' in sh(*in_netns("curl", "-sf", "http://127.0.0.1:2379/health")).replace(" ", ""),
         what="etcd healthy", timeout=60, layout=layout, name="etcd")
    start(layout, state, "kube-apiserver", [
        str(bins["kube-apiserver"]), "--etcd-servers=http://127.0.0.1:2379",
        "--bind-address=0.0.0.0", f"--advertise-address={NODE_IP}", "--secure-port=6443",
        f"--cert-dir={layout.dir / 'apiserver-certs'}",
        f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}", "--anonymous-auth=false",
        f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        f"--kubelet-certificate-authority={pki / 'ca.crt'}",
        "--kubelet-preferred-address-types=InternalIP",
        "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki / 'sa.pub'}", f"--service-account-signing-key-file={pki / 'sa.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}", "--profiling=false", "--v=1"])
    wait(lambda: kubectl(layout, "get", "--raw", "/readyz", timeout=10).strip() == "ok",
         what="kube-apiserver ready", timeout=120, layout=layout, name="kube-apiserver")
    start(layout, state, "kube-controller-manager", [
        str(bins["kube-controller-manager"]), f"--kubeconfig={layout.kubeconfig('controller-manager')}",
        f"--authentication-kubeconfig={layout.kubeconfig('controller-manager')}",
        f"--authorization-kubeconfig={layout.kubeconfig('controller-manager')}",
        "--bind-address=127.0.0.1", "--leader-elect=false", "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'ca.crt'}",
        f"--cluster-signing-cert-file={pki / 'ca.crt'}", f"--cluster-signing-key-file={pki / 'ca.key'}",
        "--allocate-node-cidrs=true", f"--cluster-cidr={CLUSTER_CIDR}", "--node-cidr-mask-size=24",
        f"--service-cluster-ip-range={SERVICE_CIDR}", "--concurrent-deployment-syncs=10",
        "--concurrent-replicaset-syncs=10", "--profiling=false", "--v=1"])
    start(layout, state, "kube-scheduler", [
        str(bins["kube-scheduler"]), f"--kubeconfig={layout.kubeconfig('scheduler')}",
        f"--authentication-kubeconfig={layout.kubeconfig('scheduler')}",
        f"--authorization-kubeconfig={layout.kubeconfig('scheduler')}",
        "--bind-address=127.0.0.1", "--leader-elect=false", "--profiling=false", "--v=1"])
    start(layout, state, "containerd", ["containerd", "--config", str(layout.dir / "containerd.toml")])
    wait(lambda: layout.containerd_sock.exists() and "cri" in ctr(layout, "plugins", "ls"),
         what="containerd serving", timeout=60, layout=layout, name="containerd")
    for tar in tars:
        ctr(layout, "images", "import", "--all-platforms", str(tar))
    state["images"] = [str(t) for t in tars]
    save_state(layout, state)
    start(layout, state, "kubelet", [
        str(bins["kubelet"]), f"--config={layout.dir / 'kubelet.yaml'}",
        f"--kubeconfig={layout.kubeconfig('kubelet')}", f"--root-dir={layout.dir / 'kubelet'}",
        f"--cert-dir={layout.dir / 'kubelet-certs'}", f"--hostname-override={NODE_NAME}", f"--node-ip={NODE_IP}",
        "--v=1"])
    start(layout, state, "kube-proxy", [str(bins["kube-proxy"]), f"--config={layout.dir / 'kube-proxy.yaml'}",
                                        "--v=1"])

    def node_ready() -> bool:
        node = json.loads(kubectl(layout, "get", "node", NODE_NAME, "-o", "json", timeout=10))
        return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])

    wait(node_ready, what=f"node {NODE_NAME} Ready", timeout=180, layout=layout, name="kubelet")
    timings["node_ready"] = time.monotonic() - t1
    log(f"node {NODE_NAME} Ready {timings['node_ready']:.1f} s after the first process started")
    if manifests:
        t2 = time.monotonic()
        kubectl(layout, "apply", "-f", str(HERE / "manifests" / "coredns.yaml"))
        kubectl(layout, "-n", "kube-system", "rollout", "status", "deploy/coredns", "--timeout=180s", timeout=200)
        timings["dns_ready"] = time.monotonic() - t2
        log(f"cluster DNS ({DNS_SERVICE_IP}) ready in {timings['dns_ready']:.1f} s")
    check_no_route_out()
    layout.env_file.write_text(f"KUBECONFIG={layout.admin_kubeconfig}\nPARLEY_NODE_DIR={layout.dir}\n"
                               f"PARLEY_NODE_NETNS={NETNS}\nPARLEY_KUBECTL={bins['kubectl']}\n")
    state["timings"] = timings
    save_state(layout, state)
    return timings


class CannotRunHere(Exception):
    """This machine cannot run a node at all (not a bug in the node): the tier skips, saying why."""


def preflight() -> None:
    """What a node needs from the machine, each tried for real; the first failure names itself."""
    if os.geteuid() != 0:
        raise CannotRunHere("not root: a node needs a network namespace, mounts and cgroups")
    try:
        install_packages()
    except subprocess.CalledProcessError as exc:
        raise CannotRunHere(f"apt-get could not install the node's packages: {exc.stderr.decode()[-500:]}") from None
    probe = f"{NETNS}-probe"
    out = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise CannotRunHere(f"ip netns add: {out.stderr.strip()}")
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True, check=False)
    if "overlay" not in Path("/proc/filesystems").read_text():
        raise CannotRunHere("the kernel has no overlay filesystem (containerd's snapshotter)")
    memory = Path("/sys/fs/cgroup/memory")
    if not (memory / "cgroup.procs").exists():
        raise CannotRunHere("no cgroup v1 memory hierarchy at /sys/fs/cgroup/memory (kubelet runs cgroupfs on v1 here)")
    try:
        (memory / "parley-node-probe").mkdir()
        (memory / "parley-node-probe").rmdir()
    except OSError as exc:
        raise CannotRunHere(f"cannot make a cgroup: {exc}") from None
    if shutil.which("go") is None:
        raise CannotRunHere("no Go toolchain: Kubernetes, CoreDNS and pause are built from Go modules")


def cgroup_controllers() -> list[Path]:
    """Every cgroup v1 hierarchy kubelet will use (cgroup v2's unified tree is left alone)."""
    root = Path("/sys/fs/cgroup")
    return [p for p in sorted(root.iterdir()) if p.is_dir() and p.name != "unified" and (p / "cgroup.procs").exists()]


# -- down -----------------------------------------------------------------------------------------

def our_shims(layout: Layout) -> list[int]:
    """containerd-shim processes started by our containerd (they name its address on their command line)."""
    pids = []
    needle = str(layout.containerd_sock).encode()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"containerd-shim" in cmdline and needle in cmdline:
            pids.append(int(proc.name))
    return pids


def stop_pid(pid: int, name: str, timeout: float = 15.0) -> None:
    if not alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        log(f"{name} ({pid}) ignored SIGTERM; killing it")
        os.kill(pid, signal.SIGKILL)


def down(layout: Layout) -> None:
    state = load_state(layout)
    pids: dict[str, int] = state.get("pids", {})
    if layout.containerd_sock.exists() and alive(pids.get("containerd", 0) or 0) and NETNS_DIR.joinpath(NETNS).exists():
        # Pods first, while kubelet and containerd still run, so that CNI releases what it made.
        stop_pid(pids.get("kube-controller-manager", 0) or 0, "kube-controller-manager")
        kubectl(layout, "delete", "pods", "--all", "--all-namespaces", "--grace-period=1", "--wait=false",
                check=False, timeout=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and ctr(layout, "tasks", "ls", "-q", check=False).split():
            time.sleep(1)
    for name in ("kube-proxy", "kubelet", "kube-scheduler", "kube-controller-manager"):
        if pids.get(name):
            stop_pid(pids[name], name)
    if layout.containerd_sock.exists() and alive(pids.get("containerd", 0) or 0):
        for task in ctr(layout, "tasks", "ls", "-q", check=False).split():
            ctr(layout, "tasks", "kill", "-s", "SIGKILL", task, check=False)
            time.sleep(0.2)
            ctr(layout, "tasks", "delete", "-f", task, check=False)
    for name in ("containerd", "kube-apiserver", "etcd"):
        if pids.get(name):
            stop_pid(pids[name], name)
    shims = our_shims(layout)
    for pid in shims:
        stop_pid(pid, f"containerd-shim {pid}", timeout=5)
    unmount_under(layout.dir)
    before = set(state.get("netns_before", []))
    for leftover in NETNS_DIR.glob("cni-*") if "netns" in state and NETNS_DIR.exists() else []:
        if leftover.name not in before:
            subprocess.run(["umount", str(leftover)], capture_output=True, check=False)
            leftover.unlink(missing_ok=True)
    if state.get("cgroup_root") or (NETNS_DIR / NETNS).exists():
        remove_cgroups(CGROUP_ROOT)
    if (NETNS_DIR / NETNS).exists():
        sh("ip", "netns", "delete", NETNS)
    shutil.rmtree(layout.dir, ignore_errors=True)
    left = leftovers(layout, pids, shims, before)
    if left:
        raise RuntimeError("teardown left a trace: " + "; ".join(left))
    log("node torn down: processes, pod network namespaces, mounts, cgroups and files removed (checked)")


def leftovers(layout: Layout, pids: dict[str, int], shims: list[int], netns_before: set[str]) -> list[str]:
    """Whatever ``up`` made that still exists: nothing, after a good teardown."""
    left = [f"{name} (pid {pid}) still runs" for name, pid in pids.items() if pid and alive(pid)]
    left += [f"shim pid {pid} still runs" for pid in shims if alive(pid)]
    prefix = str(layout.dir) + "/"
    left += [f"mount {m}" for m in (line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines())
             if m.startswith(prefix) or m == str(layout.dir)]
    if (NETNS_DIR / NETNS).exists():
        left.append(f"network namespace {NETNS}")
    if NETNS_DIR.exists():
        left += [f"pod network namespace {p.name}" for p in NETNS_DIR.glob("cni-*") if p.name not in netns_before]
    left += [f"cgroup {c / CGROUP_ROOT.lstrip('/')}" for c in cgroup_controllers() if (c / CGROUP_ROOT.lstrip("/")).exists()]
    if layout.dir.exists():
        left.append(f"directory {layout.dir}")
    return left


def unmount_under(directory: Path) -> None:
    prefix = str(directory.resolve()) + "/"
    for _ in range(5):
        mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
        ours = sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True)
        if not ours:
            return
        for mount in ours:
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
    raise RuntimeError(f"mounts under {directory} would not go away")


def remove_cgroups(root: str) -> None:
    for controller in cgroup_controllers():
        top = controller / root.lstrip("/")
        if not top.exists():
            continue
        for _ in range(20):
            dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True)
            for d in [*dirs, top]:
                with contextlib.suppress(OSError):  # busy or already gone: the next round retries
                    d.rmdir()
            if not top.exists():
                break
            time.sleep(0.5)
        if top.exists():
            raise RuntimeError(f"cgroup {top} still has processes: {(top / 'cgroup.procs').read_text()!r}")


# -- command line ---------------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster.node", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up_p = sub.add_parser("up", help="start the node and wait until it is Ready")
    up_p.add_argument("--no-manifests", action="store_true", help="skip cluster DNS")
    sub.add_parser("down", help="stop everything up started and remove every trace")
    sub.add_parser("preflight", help="exit 77 (naming the reason) if this machine cannot run a node")
    run_p = sub.add_parser("run", help="run a command in the node's network namespace with KUBECONFIG set")
    run_p.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    layout = Layout(node_dir())
    if args.command == "up":
        try:
            timings = up(layout, manifests=not args.no_manifests)
        except BaseException:
            log(f"bring-up failed; logs are in {layout.logs} (kept until `down`)")
            raise
        print(layout.env_file.read_text(), end="")
        log("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
        return 0
    if args.command == "down":
        down(layout)
        return 0
    if args.command == "preflight":
        try:
            preflight()
        except CannotRunHere as exc:
            log(f"cannot run a node here: {exc}")
            return 77
        log("this machine can run a node")
        return 0
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    env = {**os.environ, "KUBECONFIG": str(layout.admin_kubeconfig), "PARLEY_NODE_DIR": str(layout.dir)}
    return subprocess.run(in_netns(*cmd), env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
