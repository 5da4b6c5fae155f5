#!/usr/bin/env bash
# Build (once) and print the paths of a real Kubernetes control plane for tests.
#
#   tests/envtest/setup-k8s.sh                      # kube-apiserver and etcd (what the envtest tier needs)
#   tests/envtest/setup-k8s.sh all                  # + kube-controller-manager kube-scheduler kubelet kube-proxy kubectl
#   tests/envtest/setup-k8s.sh kubectl kubelet ...  # any of those names
#   tests/envtest/setup-k8s.sh helm                 # helm (go install of helm.sh/helm/v3, for tests/k8s)
#   tests/envtest/setup-k8s.sh pause coredns        # the static binaries of tests/cluster's images
#
# Kubernetes binaries are built from the published k8s.io/kubernetes Go module through the
# wrapper module in tests/envtest/kube (go.mod/go.sum only, no Kubernetes source) and cached
# outside the repo in ${PARLEY_CACHE:-$HOME/.cache/parley}/k8s/v1.33.13/bin; helm goes to
# .../helm/<version>. pause (the pod sandbox program in tests/cluster/pause) and coredns (go
# install of github.com/coredns/coredns, default plugin set) go to .../cluster/bin. A binary is
# rebuilt only when what it is built from (the wrapper module, pause's source, helm's or
# coredns's version), this script's build flags or the Go version change, so a cached run takes
# well under a second. stdout carries only the absolute paths of the requested binaries that
# are built from exactly those inputs, one per line, in the order asked; progress and errors go
# to stderr. Exit status: 0 all built, 1 a build failed (the Go error is on stderr), 2 bad usage
# or no Go.
set -euo pipefail

K8S_VERSION=v1.33.13
K8S_MAJOR=1
K8S_MINOR=33
ETCD_VERSION=v3.5.21   # what k8s.io/kubernetes v1.33.13 requires; go.mod pins it
HELM_VERSION=v3.19.5
COREDNS_VERSION=v1.15.0   # needs Go >= 1.26 (its go.mod says go 1.26.0)

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
module_dir="$here/kube"
pause_dir="$here/../cluster/pause"
cache_root="${PARLEY_CACHE:-$HOME/.cache/parley}"
bin_dir="$cache_root/k8s/$K8S_VERSION/bin"

declare -A PKG=(
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
  [kubelet]=k8s.io/kubernetes/cmd/kubelet
  [kube-proxy]=k8s.io/kubernetes/cmd/kube-proxy
  [kubectl]=k8s.io/kubernetes/cmd/kubectl
  [etcd]=go.etcd.io/etcd/server/v3
  [helm]=helm.sh/helm/v3/cmd/helm@$HELM_VERSION
  [pause]=tests/cluster/pause
  [coredns]=github.com/coredns/coredns@$COREDNS_VERSION
)
ALL=(kube-apiserver etcd kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
helm_dir="$cache_root/helm/$HELM_VERSION"
cluster_bin_dir="$cache_root/cluster/bin"
# What helm's Makefile stamps: the Kubernetes version `helm template`/`lint` assume (helm v3.19 = k8s 1.34).
helm_k8s=""
for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  helm_k8s+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=34"
done
coredns_ldflags="-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION"
out_of() {
  case "$1" in
    helm) printf '%s/helm' "$helm_dir" ;;
    pause|coredns) printf '%s/%s' "$cluster_bin_dir" "$1" ;;
    *) printf '%s/%s' "$bin_dir" "$1" ;;
  esac
}

log() { printf 'setup-k8s: %s\n' "$*" >&2; }

wanted=()
if [ $# -eq 0 ]; then
  wanted=(kube-apiserver etcd)
else
  for a in "$@"; do
    case "$a" in
      all) wanted+=("${ALL[@]}") ;;
      -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
      *)
        if [ -z "${PKG[$a]+x}" ]; then log "unknown binary '$a' (known: ${ALL[*]} helm pause coredns)"; exit 2; fi
        wanted+=("$a") ;;
    esac
  done
fi

if ! command -v go >/dev/null 2>&1; then
  log "go is not installed; cannot build the Kubernetes test binaries"
  exit 2
fi

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false"

ver_pkgs=(k8s.io/component-base/version k8s.io/client-go/pkg/version)
ldflags="-s -w"
for p in "${ver_pkgs[@]}"; do
  ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=$K8S_MAJOR -X $p.gitMinor=$K8S_MINOR"
  ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done

# The cache key: what the binary is built from and how.
go_version="$(go env GOVERSION)"
stamp_of() {
  case "$1" in
    pause) cat "$pause_dir/go.mod" "$pause_dir/main.go"; printf '%s\n%s\n%s\n' "$1" "-s -w" "$go_version" ;;
    coredns) printf '%s\n%s\n%s\n%s\n' "${PKG[$1]}" "$1" "$coredns_ldflags" "$go_version" ;;
    *)
      # go.mod, not go.sum: -mod=mod appends to go.sum when a new binary needs more modules, which
      # changes nothing for the binaries already built.
      cat "$module_dir/go.mod"
      printf '%s\n%s\n%s\n%s\n' "$1" "${PKG[$1]}" "$ldflags" "$go_version"
      if [ "$1" = helm ]; then printf '%s\n' "$helm_k8s"; fi ;;
  esac | sha256sum | cut -d' ' -f1
}

# Dedupe, keep order.
declare -A seen=()
order=()
for b in "${wanted[@]}"; do
  if [ -z "${seen[$b]+x}" ]; then seen[$b]=1; order+=("$b"); fi
done

current() {  # the binary exists and was built from exactly these inputs
  local out stamp_file
  out="$(out_of "$1")"; stamp_file="$(dirname "$out")/.$1.stamp"
  [ -x "$out" ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$(stamp_of "$1")" ]
}

stale=0
for b in "${order[@]}"; do current "$b" || stale=1; done
if [ $stale = 0 ]; then  # the fast path: no lock, no build
  for b in "${order[@]}"; do out_of "$b"; printf '\n'; done
  exit 0
fi

mkdir -p "$bin_dir"
exec 9>"$bin_dir/.lock"
flock 9   # one build at a time, even across concurrent callers

# helm and coredns: a plain `go install pkg@version` (their go.mod has no replace directives, so it
# decides every dependency, checked against the checksum database) into a scratch GOBIN. helm pins
# k8s.io/* v0.34, so it cannot share the wrapper module.
go_install() {  # go_install NAME LDFLAGS OUT
  local gobin; gobin="$(mktemp -d)"
  (cd "$gobin" && GOFLAGS=-buildvcs=false GOBIN="$gobin" go install -trimpath -ldflags "$2" "${PKG[$1]}") \
    && mv -f "$gobin/$1" "$3"; local rc=$?; rm -rf "$gobin"; return $rc
}
build() {  # build NAME OUT
  case "$1" in
    helm) go_install helm "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION $helm_k8s" "$2" ;;
    coredns) go_install coredns "$coredns_ldflags" "$2" ;;
    pause) (cd "$pause_dir" && GOFLAGS=-buildvcs=false go build -trimpath -ldflags "-s -w" -o "$2" .) ;;
    *) (cd "$module_dir" && go build -trimpath -ldflags "$ldflags" -o "$2" "${PKG[$1]}") ;;
  esac
}

status=0
for b in "${order[@]}"; do
  out="$(out_of "$b")"
  stamp_file="$(dirname "$out")/.$b.stamp"
  if current "$b"; then continue; fi  # (re-checked under the lock: another caller may have built it)
  log "building $b (${PKG[$b]}) into $(dirname "$out")$([ "$b" = pause ] || echo '; a cold build takes minutes')"
  start=$SECONDS
  errlog="$(mktemp)"
  mkdir -p "$(dirname "$out")"
  if build "$b" "$out.tmp" 2>"$errlog"; then
    mv -f "$out.tmp" "$out"
    # go build -mod=mod may have completed go.sum on the first build: stamp afterwards.
    stamp_of "$b" >"$stamp_file"
    log "built $b in $((SECONDS - start)) s ($(du -h "$out" | cut -f1))"
  else
    rm -f "$out.tmp"
    log "FAILED to build $b after $((SECONDS - start)) s; go said:"
    cat "$errlog" >&2
    status=1
  fi
  rm -f "$errlog"
done

for b in "${order[@]}"; do
  if current "$b"; then out_of "$b"; printf '\n'; fi  # not a stale binary whose rebuild failed
done
exit $status
