# Shared start of the Go build scripts (tests/daprd/build.sh, tests/daprd/build-cli.sh,
# tests/observability/build-backend.sh); sourced, never run. Set $bin and $out_dir, then call
# `go_build_begin <script name>`: it prints $bin and exits when that binary is cached (unless
# PARLEY_REBUILD=1); otherwise it defines log, checks for go, sets the Go environment, serialises
# concurrent builds of the same key on $out_dir/.lock (re-checking the cache after the lock) and
# sets $start.

go_build_begin() {
    # Fast path: nothing but a file test.
    if [[ -x "$bin" && "${PARLEY_REBUILD:-0}" != 1 ]]; then
        echo "$bin"
        exit 0
    fi
    GO_BUILD_NAME=$1
    log() { echo "$GO_BUILD_NAME: $*" >&2; }

    command -v go >/dev/null || { log "go is not on PATH"; exit 1; }
    export GOTOOLCHAIN=local CGO_ENABLED=0
    # A go.work or a GOFLAGS=-mod=vendor from the caller would break the wrapper module.
    export GOWORK=off
    export GOFLAGS="${GOFLAGS:-} -mod=mod -buildvcs=false"

    mkdir -p "$out_dir"
    # Serialise concurrent builds of the same key (tests may race); re-check after the lock.
    if command -v flock >/dev/null; then
        exec 9>"$out_dir/.lock"
        flock 9
        if [[ -x "$bin" && "${PARLEY_REBUILD:-0}" != 1 ]]; then
            echo "$bin"
            exit 0
        fi
    fi
    start=$(date +%s)
}
