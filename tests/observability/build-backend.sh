#!/usr/bin/env bash
# Build Jaeger v2 (github.com/jaegertracing/jaeger/cmd/jaeger), the trace backend the tracing tier
# sends spans to: it receives OTLP over HTTP and gRPC (it is an OpenTelemetry Collector
# distribution) and answers queries, so a test reads back what it stored. Built from the Go module
# proxy in a throw-away module of its own (`go get -tool`), cached outside the repository.
#
# stdout: the absolute path of the binary, as the LAST line (progress goes to stderr).
#
# Environment:
#   PARLEY_CACHE           where binaries are cached (default: $HOME/.cache/parley)
#   PARLEY_JAEGER_VERSION  module version (default: v1.75.0, the Jaeger v2 release of that tag)
#   PARLEY_REBUILD=1       rebuild even if the cached binary exists
set -euo pipefail

version="${PARLEY_JAEGER_VERSION:-v1.75.0}"
cache_root="${PARLEY_CACHE:-$HOME/.cache/parley}"
out_dir="$cache_root/jaeger/$version"
bin="$out_dir/jaeger"

source "$(dirname "${BASH_SOURCE[0]}")/../go-build-lib.sh"
go_build_begin build-backend.sh
src="$out_dir/src"
rm -rf "$src"
mkdir -p "$src"
(cd "$src" && go mod init parley.local/jaeger >&2 \
    && go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$version" >&2)
tmp_bin="$out_dir/.jaeger.tmp.$$"
trap 'rm -f "$tmp_bin"' EXIT
log "building jaeger $version in $src"
(cd "$src" && go build -trimpath -ldflags "-s -w" -o "$tmp_bin" github.com/jaegertracing/jaeger/cmd/jaeger) >&2
mv -f "$tmp_bin" "$bin"
trap - EXIT
log "built in $(($(date +%s) - start)) s"
echo "$bin"
