#!/usr/bin/env bash
# Prepare the container images for the local single-node Kubernetes tier, without any image registry.
#
#   tests/cluster/images.sh            # prints one docker-archive tarball path per line on stdout
#
# Each tarball is what `docker save` writes; `ctr -n k8s.io images import FILE` accepts it.
# Progress and errors go to stderr, prefixed "images: ". Needs root (debootstrap, dockerd).
#
# Steps: Debian packages (debootstrap, docker.io, containerd, runc) if missing -> a debootstrapped
# bookworm base image (cached) -> a private dockerd (own data-root under the cache, own managed
# containerd, no bridge, no iptables; stopped on exit) -> docker build of Dockerfile.sidecar and
# Dockerfile.operator on that base, plus pause and coredns images FROM scratch from the static
# binaries of `tests/envtest/setup-k8s.sh pause coredns` -> docker save into $cache/cluster/images/.
#
# Environment:
#   PARLEY_CACHE           cache root (default ~/.cache/parley); everything goes under $PARLEY_CACHE/cluster
#   PARLEY_DEBIAN_MIRROR   Debian mirror for debootstrap (default: the one apt uses on this machine)
set -euo pipefail

log() { printf 'images: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${PARLEY_CACHE:-$HOME/.cache/parley}/cluster
docker=/usr/bin/docker   # /usr/local/bin/docker (first on PATH here) is a different, newer client
dockerd=/usr/sbin/dockerd
t_start=$SECONDS

[[ $(id -u) == 0 ]] || die "must run as root (debootstrap, dockerd)"
mkdir -p "$cache/base" "$cache/images" "$cache/docker"

# One run at a time: the dockerd data-root and the caches are shared.
exec 9>"$cache/.images.lock"
flock -n 9 || { log "another images.sh holds $cache/.images.lock; waiting"; flock 9; }

# ---------------------------------------------------------------------------------------------
# 1. Debian packages
# ---------------------------------------------------------------------------------------------
missing=()
for pkg in debootstrap docker.io containerd runc; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]} from Debian"
    # No service may start on install (no systemd here, and a host dockerd is exactly what we avoid).
    policy=/usr/sbin/policy-rc.d own_policy=''
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
    fi
    rc=0
    { DEBIAN_FRONTEND=noninteractive apt-get update -q \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } >&2 || rc=$?
    [[ -z $own_policy ]] || rm -f "$policy"
    ((rc == 0)) || die "apt-get install ${missing[*]} failed (exit $rc)"
fi
for f in /usr/sbin/debootstrap "$dockerd" "$docker" /usr/bin/containerd /usr/sbin/runc /usr/bin/unshare; do
    [[ -x $f ]] || die "$f is missing"
done

# ---------------------------------------------------------------------------------------------
# 2. Debian bookworm base image (debootstrap, cached)
# ---------------------------------------------------------------------------------------------
apt_mirror() {  # the Debian archive apt uses here (one-line and deb822 sources)
    {
        awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:\/\//) { print $i; break } }' \
            /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true
        awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' \
            /etc/apt/sources.list.d/*.sources 2>/dev/null || true
    } | grep -E '^https?://[^ ]+/debian/?$' | head -n1 | sed 's:/*$::'
}
mirror=${PARLEY_DEBIAN_MIRROR:-$(apt_mirror)}
mirror=${mirror:-http://deb.debian.org/debian}
suite=bookworm
include=python3,python3-venv,python3-pip,ca-certificates
base_image=parley.local/debian:bookworm
host_ca=/etc/ssl/certs/ca-certificates.crt
[[ -s $host_ca ]] || die "$host_ca is missing (the image needs the host's CA bundle to reach PyPI)"

recipe=2   # bump when the rootfs steps below change
rootfs_key=$(printf 'minbase %s %s %s %s\n' "$suite" "$include" "$mirror" "$recipe" | sha256sum | cut -c1-12)
rootfs=$cache/base/rootfs-$rootfs_key
if [[ ! -d $rootfs ]]; then
    log "debootstrap $suite (minbase + $include) from $mirror into $rootfs (takes a few minutes)"
    t0=$SECONDS
    rm -rf "$rootfs.tmp"
    debootstrap --variant=minbase --include="$include" "$suite" "$rootfs.tmp" "$mirror" >"$cache/base/debootstrap.log" 2>&1 \
        || { tail -n 30 "$cache/base/debootstrap.log" >&2; die "debootstrap failed (log: $cache/base/debootstrap.log)"; }
    rm -rf "$rootfs.tmp"/var/lib/apt/lists/* "$rootfs.tmp"/var/cache/apt/*.bin \
           "$rootfs.tmp"/var/cache/apt/archives/*.deb "$rootfs.tmp"/var/cache/apt/archives/partial/* \
           "$rootfs.tmp"/var/cache/debconf/*-old "$rootfs.tmp"/var/lib/dpkg/*-old \
           "$rootfs.tmp"/var/log/apt/* "$rootfs.tmp"/var/log/dpkg.log "$rootfs.tmp"/var/log/bootstrap.log
    # Slim like Debian's -slim images: no docs (but the copyright files), man pages or translations,
    # now or from later apt installs (about 50 MB less in every image).
    cat >"$rootfs.tmp/etc/dpkg/dpkg.cfg.d/parley-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
    find "$rootfs.tmp/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete
    find "$rootfs.tmp/usr/share/doc" -mindepth 1 -depth -type d -empty -delete
    for d in groff info linda lintian/overrides locale man; do
        [[ ! -d $rootfs.tmp/usr/share/$d ]] || find "$rootfs.tmp/usr/share/$d" -mindepth 1 -delete
    done
    # Host-specific files debootstrap copies in; the runtime provides its own.
    : >"$rootfs.tmp/etc/resolv.conf"
    rm -f "$rootfs.tmp/etc/hostname"
    mv "$rootfs.tmp" "$rootfs"
    find "$cache/base" -mindepth 1 -maxdepth 1 -type d -name 'rootfs-*' ! -name "rootfs-$rootfs_key" -exec rm -rf {} +
    log "debootstrap done in $((SECONDS - t0)) s"
fi
# The pack is keyed on the rootfs, the host CA bundle (this machine reaches PyPI through a TLS-
# intercepting proxy, so builds need its CA) and the packer itself.
base_key=$( { echo "$rootfs_key"; sha256sum "$host_ca" "$here/pack_rootfs.py" | cut -d' ' -f1; } | sha256sum | cut -c1-12)
base_tar=$cache/base/debian-$suite-$base_key.tar
if [[ ! -s $base_tar || ! -s $base_tar.id ]]; then
    log "packing $base_image into $base_tar"
    cp -L --preserve=timestamps "$host_ca" "$rootfs/etc/ssl/certs/ca-certificates.crt"  # same bytes, same layer
    python3 "$here/pack_rootfs.py" "$rootfs" "$base_tar" "$base_image" \
        --created-by "debootstrap --variant=minbase --include=$include $suite $mirror; host CA bundle" >"$base_tar.id.tmp"
    mv "$base_tar.id.tmp" "$base_tar.id"
    find "$cache/base" -maxdepth 1 -name "debian-$suite-*.tar*" ! -name "debian-$suite-$base_key.tar*" -delete
fi
base_id=$(cat "$base_tar.id")

# ---------------------------------------------------------------------------------------------
# 3. A private dockerd, used only for these builds
# ---------------------------------------------------------------------------------------------
# It runs in its own mount and PID namespaces: a tmpfs over /run/containerd hides any containerd
# socket there (dockerd 20.10 would otherwise adopt /run/containerd/containerd.sock instead of starting
# its own), the managed containerd's shim sockets stay private, and when dockerd (PID 1 there) exits
# the kernel kills whatever is left in the namespace. Nothing else on the machine is touched.
run=$(mktemp -d /tmp/parley-images.XXXXXX)
unshare_pid=
stop_dockerd() {
    [[ -n $unshare_pid ]] || return 0
    local d
    d=$(pgrep -P "$unshare_pid" 2>/dev/null | head -n1 || true)   # dockerd = PID 1 of the namespace
    if [[ -n $d ]]; then
        kill -TERM "$d" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$unshare_pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$unshare_pid" 2>/dev/null; then
            log "dockerd (pid $d) did not stop in 20 s; killing it (and with it its namespace)"
            kill -KILL "$d" 2>/dev/null || true
        fi
    fi
    kill -0 "$unshare_pid" 2>/dev/null && { sleep 1; kill -KILL "$unshare_pid" 2>/dev/null || true; }
    wait "$unshare_pid" 2>/dev/null || true
    unshare_pid=
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_dockerd
    rm -rf "$run"
    if ((rc != 0)); then log "failed (exit $rc) after $((SECONDS - t_start)) s"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$run/exec" "$run/dockercfg" /run/containerd
echo '{}' >"$run/daemon.json"
export DOCKER_HOST=unix://$run/docker.sock DOCKER_CONFIG=$run/dockercfg DOCKER_BUILDKIT=0
log "starting a private dockerd (data-root $cache/docker)"
unshare --mount --propagation private --pid --fork --mount-proc -- /bin/sh -c '
    mount -t tmpfs -o mode=0711 tmpfs /run/containerd || exit 1
    exec "$@"' sh \
    "$dockerd" --config-file "$run/daemon.json" \
        --data-root "$cache/docker" --exec-root "$run/exec" --pidfile "$run/docker.pid" \
        -H "unix://$run/docker.sock" \
        --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
        --userland-proxy=false --storage-driver=overlay2 \
        </dev/null >"$run/dockerd.log" 2>&1 &
unshare_pid=$!
for i in $(seq 150); do
    if "$docker" info >/dev/null 2>&1; then break; fi
    if ! kill -0 "$unshare_pid" 2>/dev/null || ((i == 150)); then
        tail -n 30 "$run/dockerd.log" >&2
        die "dockerd did not come up"
    fi
    sleep 0.2
done
log "dockerd is up ($("$docker" version -f '{{.Server.Version}}'), containerd $("$docker" info -f '{{.ContainerdCommit.ID}}'))"

# ---------------------------------------------------------------------------------------------
# 4. Builds
# ---------------------------------------------------------------------------------------------
if [[ $("$docker" image inspect -f '{{.Id}}' "$base_image" 2>/dev/null || true) != "$base_id" ]]; then
    log "docker load $base_image"
    "$docker" load -q -i "$base_tar" >&2
fi

build() {  # build TAG DOCKERFILE CONTEXT [docker build args...]
    local tag=$1 file=$2 ctx=$3 t0=$SECONDS
    shift 3
    log "building $tag"
    if ! "$docker" build -f "$file" -t "$tag" "$@" "$ctx" >"$run/build.log" 2>&1; then
        tail -n 60 "$run/build.log" >&2
        die "docker build of $tag failed"
    fi
    log "built $tag in $((SECONDS - t0)) s"
}
images=()
build_app() {  # build_app TAG DOCKERFILE
    local tag=$1 file=$2
    build "$tag" "$file" "$repo" --build-arg BASE_IMAGE="$base_image" --network host
    images+=("$tag")
    # Tag the (cached) build stage too, so the prune at the end keeps its pip-install layers.
    "$docker" build -q -f "$file" --target build -t "$tag-build" \
        --build-arg BASE_IMAGE="$base_image" --network host "$repo" >/dev/null 2>&1 \
        || log "note: could not tag the build stage of $file (no stage named 'build'?); it will be rebuilt next time"
}
build_app parley-sidecar:node "$repo/Dockerfile.sidecar"
build_app parley-operator:node "$repo/Dockerfile.operator"

# pause and coredns, FROM scratch, from the static binaries setup-k8s.sh prints. If one fails to
# build, the image of the other (recognised by its file name) is still built.
bins_script=$repo/tests/envtest/setup-k8s.sh
pause_bin='' coredns_bin='' bins_rc=0
log "running $bins_script pause coredns"
bins_out=$(bash "$bins_script" pause coredns) || bins_rc=$?
((bins_rc == 0)) || log "$bins_script exited $bins_rc and printed: ${bins_out:-nothing}"
while IFS= read -r b; do
    case ${b##*/} in pause) pause_bin=$b ;; coredns) coredns_bin=$b ;; esac
done <<<"$bins_out"
for v in pause_bin coredns_bin; do
    if [[ -n ${!v} && ! ( -f ${!v} && -x ${!v} ) ]]; then log "${!v} is not an executable file"; printf -v "$v" ''; fi
done
[[ -n $pause_bin ]] || log "SKIPPING the pause image: no pause binary from $bins_script"
[[ -n $coredns_bin ]] || log "SKIPPING the coredns image: no coredns binary from $bins_script"
scratch_build() {  # scratch_build TAG BINARY NAME [extra Dockerfile lines...]
    local tag=$1 bin=$2 name=$3 ctx
    shift 3
    ctx=$run/ctx-$name
    mkdir -p "$ctx"
    cp "$bin" "$ctx/$name"
    chmod 0755 "$ctx/$name"
    { echo "FROM scratch"; echo "COPY $name /$name"; printf '%s\n' "$@"; echo "ENTRYPOINT [\"/$name\"]"; } >"$ctx/Dockerfile"
    build "$tag" "$ctx/Dockerfile" "$ctx"
    images+=("$tag")
}
[[ -z $pause_bin ]] || scratch_build parley.local/pause:3.10 "$pause_bin" pause
[[ -z $coredns_bin ]] || scratch_build parley.local/coredns:node "$coredns_bin" coredns "EXPOSE 53 53/udp" "USER 65532"

# ---------------------------------------------------------------------------------------------
# 5. docker save (skipped when the tarball already holds this image ID)
# ---------------------------------------------------------------------------------------------
human() { awk -v b="$1" 'BEGIN { m = b / 1e6; if (m < 10) printf "%.1f MB", m; else printf "%d MB", m + 0.5 }'; }
paths=()
for img in "${images[@]}"; do
    name=${img##*/}
    name=${name%%:*}
    tar=$cache/images/$name.tar
    id=$("$docker" image inspect -f '{{.Id}}' "$img")
    if [[ -s $tar && $(cat "$tar.id" 2>/dev/null || true) == "$id" ]]; then
        :
    else
        rm -f "$tar.id"
        "$docker" save -o "$tar.tmp" "$img"
        chmod 0644 "$tar.tmp"
        mv "$tar.tmp" "$tar"
        echo "$id" >"$tar.id"
    fi
    log "$img $(human "$("$docker" image inspect -f '{{.Size}}' "$img")")"
    paths+=("$tar")
done
# Drop what older runs left untagged (replaced images, an older base), so the data-root stays bounded.
"$docker" image prune -f >/dev/null || log "note: docker image prune failed"

stop_dockerd
log "done in $((SECONDS - t_start)) s"
printf '%s\n' "${paths[@]}"
