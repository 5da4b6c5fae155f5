#!/usr/bin/env bash
# Build (once) and print the paths of the static binaries the local cluster's images need.
#
#   tests/cluster/build-bins.sh                 # pause, then coredns
#   tests/cluster/build-bins.sh pause|coredns   # just those, in the order given
#
# pause:   the pod sandbox program in tests/cluster/pause (a few lines of Go, no dependencies).
# coredns: cluster DNS, `go install github.com/coredns/coredns@$COREDNS_VERSION` from the Go
#          module proxy (its go.mod has no replace directives, so no wrapper module is needed),
#          with CoreDNS's default plugin set.
# Both are cached outside the repo in ${PARLEY_CACHE:-$HOME/.cache/parley}/cluster/bin. A binary
# is rebuilt only when its source (pause) or version (coredns), this script's build flags or the
# Go version change, so a cached run takes well under a second. stdout carries only the absolute
# paths of the binaries that exist, one per line; progress and errors go to stderr.
# Exit status: 0 all built, 1 a build failed (the Go error is on stderr), 2 bad usage or no Go.
set -euo pipefail

COREDNS_VERSION=v1.15.0   # needs Go >= 1.26 (its go.mod says go 1.26.0)

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pause_dir="$here/pause"
cache_root="${PARLEY_CACHE:-$HOME/.cache/parley}"
bin_dir="$cache_root/cluster/bin"
ALL=(pause coredns)

log() { printf 'build-bins: %s\n' "$*" >&2; }

wanted=()
for a in "$@"; do
  case "$a" in
    pause|coredns) wanted+=("$a") ;;
    -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
    *) log "unknown binary '$a' (known: ${ALL[*]})"; exit 2 ;;
  esac
done
if [ ${#wanted[@]} -eq 0 ]; then wanted=("${ALL[@]}"); fi

if ! command -v go >/dev/null 2>&1; then
  log "go is not installed; cannot build the cluster binaries"
  exit 2
fi

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false

ldflags_of() {
  case "$1" in
    pause) printf '%s' "-s -w" ;;
    coredns) printf '%s' "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" ;;
  esac
}

# The cache key: what the binary is built from and how.
go_version="$(go env GOVERSION)"
stamp_of() {
  { case "$1" in
      pause) cat "$pause_dir/go.mod" "$pause_dir/main.go" ;;
      coredns) printf 'github.com/coredns/coredns@%s\n' "$COREDNS_VERSION" ;;
    esac
    printf '%s\n%s\n%s\n' "$1" "$(ldflags_of "$1")" "$go_version"
  } | sha256sum | cut -d' ' -f1
}

# Dedupe, keep order.
declare -A seen=()
order=()
for b in "${wanted[@]}"; do
  if [ -z "${seen[$b]+x}" ]; then seen[$b]=1; order+=("$b"); fi
done

current() {  # the binary exists and was built from exactly these inputs
  local stamp_file="$bin_dir/.$1.stamp"
  [ -x "$bin_dir/$1" ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$(stamp_of "$1")" ]
}

stale=0
for b in "${order[@]}"; do current "$b" || stale=1; done
if [ $stale = 0 ]; then  # the fast path: no lock, no build
  for b in "${order[@]}"; do printf '%s/%s\n' "$bin_dir" "$b"; done
  exit 0
fi

mkdir -p "$bin_dir"
exec 9>"$bin_dir/.lock"
flock 9   # one build at a time, even across concurrent callers

build() {  # build $1 into $2
  local ldflags; ldflags="$(ldflags_of "$1")"
  case "$1" in
    pause)
      (cd "$pause_dir" && go build -trimpath -ldflags "$ldflags" -o "$2" .) ;;
    coredns)
      # go install pkg@version (outside any module, into a scratch GOBIN): the module's own go.mod
      # and go.sum decide every dependency, checked against the checksum database.
      local gobin rc=0; gobin="$(mktemp -d)"
      if (cd "$gobin" && GOBIN="$gobin" go install -trimpath -ldflags "$ldflags" \
          "github.com/coredns/coredns@$COREDNS_VERSION"); then
        mv -f "$gobin/coredns" "$2" || rc=$?
      else
        rc=$?
      fi
      rm -rf "$gobin"
      return $rc ;;
  esac
}

status=0
for b in "${order[@]}"; do
  out="$bin_dir/$b"
  if current "$b"; then continue; fi  # (re-checked under the lock: another caller may have built it)
  if [ "$b" = coredns ]; then
    log "building coredns $COREDNS_VERSION into $bin_dir; a cold build takes minutes"
  else
    log "building $b into $bin_dir"
  fi
  start=$SECONDS
  errlog="$(mktemp)"
  if build "$b" "$out.tmp" 2>"$errlog"; then
    mv -f "$out.tmp" "$out"
    stamp_of "$b" >"$bin_dir/.$b.stamp"
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
  if [ -x "$bin_dir/$b" ] && current "$b"; then printf '%s/%s\n' "$bin_dir" "$b"; fi
done
exit $status
