#!/usr/bin/env bash
# Build the real daprd (github.com/dapr/dapr) with only a few components compiled in,
# for use as a test oracle. See tests/daprd/README.md.
#
# Nothing of dapr's lives in this repository: a throw-away wrapper Go module is generated
# at build time from files in the Go module cache, and the binary is cached outside the repo.
#
# stdout: the absolute path of the binary, as the LAST line (progress goes to stderr).
#
# Environment:
#   PARLEY_CACHE                where binaries are cached (default: $HOME/.cache/parley)
#   PARLEY_DAPRD_VERSION        dapr module version (default: v1.18.3)
#   PARLEY_DAPRD_TAGS           comma-separated component tags; each names an upstream file
#                               cmd/daprd/components/<tag>.go (default:
#                               conversation_echo,conversation_openai)
#   PARLEY_DURABLETASK_VERSION  durabletask-go version used when the proxy refuses the one dapr
#                               pins (default: v0.12.1)
#   PARLEY_REBUILD=1            rebuild even if the cached binary exists
set -euo pipefail

version="${PARLEY_DAPRD_VERSION:-v1.18.3}"
tags="${PARLEY_DAPRD_TAGS:-conversation_echo,conversation_openai}"
cache_root="${PARLEY_CACHE:-$HOME/.cache/parley}"
out_dir="$cache_root/daprd/${version}-${tags//,/+}"
bin="$out_dir/daprd"

source "$(dirname "${BASH_SOURCE[0]}")/../go-build-lib.sh"
go_build_begin build.sh

# 1. The dapr module itself (module cache; GOMODCACHE defaults to $HOME/go/pkg/mod).
log "downloading github.com/dapr/dapr@$version"
dl_json=$(cd / && go mod download -json "github.com/dapr/dapr@$version") || {
    log "the module proxy did not serve github.com/dapr/dapr@$version"; exit 1; }
json_field() { sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}\$/\1/p" <<<"$dl_json" | head -n1; }
dapr_dir=$(json_field Dir)
dapr_sum=$(json_field Sum)
dapr_modsum=$(json_field GoModSum)
dapr_commit=$(json_field Hash)
[[ -d "$dapr_dir" ]] || { log "no module directory for dapr@$version"; exit 1; }

# 2. A fresh wrapper module.
src="$out_dir/src"
rm -rf "$src"
mkdir -p "$src/app" "$src/components"
wrapper=parley.local/daprd

# go.mod: require dapr, copy dapr's `replace` directives (single lines and blocks).
go_directive=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$dapr_dir/go.mod" | head -n1)
{
    echo "module $wrapper"
    echo
    echo "go ${go_directive:-1.26}"
    echo
    echo "require github.com/dapr/dapr $version"
    echo
    awk '
        /^replace[[:space:]]*\($/ { inblock = 1; print; next }
        inblock                   { print; if ($0 ~ /^\)/) { inblock = 0; print "" }; next }
        /^replace[[:space:]]/     { print }
    ' "$dapr_dir/go.mod"
} >"$src/go.mod"
chmod u+w "$src/go.mod"

# go.sum: dapr's own (covers its whole dependency graph) plus dapr's entry.
{
    cat "$dapr_dir/go.sum"
    echo "github.com/dapr/dapr $version $dapr_sum"
    echo "github.com/dapr/dapr $version/go.mod $dapr_modsum"
} >"$src/go.sum"

# The proxy here refuses some dapr-org versions (e.g. durabletask-go v0.12.4, which v1.18.3
# pins): if the pinned one is not served, pin a nearby served one with a replace.
dt_pinned=$(awk '$1 == "github.com/dapr/durabletask-go" { print $2; exit }' "$dapr_dir/go.mod")
if [[ -n "$dt_pinned" ]] && ! (cd / && go mod download "github.com/dapr/durabletask-go@$dt_pinned") 2>/dev/null; then
    dt_fallback="${PARLEY_DURABLETASK_VERSION:-v0.12.1}"
    log "proxy refuses github.com/dapr/durabletask-go@$dt_pinned; pinning $dt_fallback instead"
    printf 'replace github.com/dapr/durabletask-go => github.com/dapr/durabletask-go %s\n' "$dt_fallback" >>"$src/go.mod"
fi

# main package and app package: upstream files, one import line changed in each.
up="$dapr_dir/cmd/daprd"
sed 's#"github.com/dapr/dapr/cmd/daprd/app"#"'"$wrapper"'/app"#' "$up/main.go" >"$src/main.go"
sed 's#_ "github.com/dapr/dapr/cmd/daprd/components"#_ "'"$wrapper"'/components"#' "$up/app/app.go" >"$src/app/app.go"
grep -q "\"$wrapper/app\"" "$src/main.go" || { log "upstream main.go changed shape: app import not found"; exit 1; }
grep -q "\"$wrapper/components\"" "$src/app/app.go" || { log "upstream app.go changed shape: components import not found"; exit 1; }

# components package: only the requested upstream registration files, each gated on its own tag.
{
    echo "// Package components registers only the components selected by build tags."
    echo "package components"
} >"$src/components/doc.go"
IFS=, read -r -a tag_list <<<"$tags"
for tag in "${tag_list[@]}"; do
    [[ "$tag" =~ ^[a-z0-9_]+$ ]] || { log "bad tag '$tag'"; exit 1; }
    f="$up/components/$tag.go"
    [[ -f "$f" ]] || { log "no upstream component file cmd/daprd/components/$tag.go for tag '$tag'"; exit 1; }
    sed "1s#^//go:build .*#//go:build $tag#" "$f" >"$src/components/$tag.go"
    head -n1 "$src/components/$tag.go" | grep -qx "//go:build $tag" || { log "$tag.go: no //go:build first line"; exit 1; }
done

# 3. Build (release-like: static, stripped, version stamped like dapr's Makefile does).
bi=github.com/dapr/dapr/pkg/buildinfo
ldflags="-s -w -X $bi.version=${version#v} -X $bi.gitversion=$version -X $bi.gitcommit=$dapr_commit"
ldflags+=" -X github.com/dapr/kit/logger.DaprVersion=${version#v}" # the `ver` field of every log line
log "building daprd $version with tags $tags in $src (cold: ~3-5 min, ~1 GB RAM)"
tmp_bin="$out_dir/.daprd.tmp.$$"
trap 'rm -f "$tmp_bin"' EXIT
(cd "$src" && go build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$tmp_bin" .) >&2
mv -f "$tmp_bin" "$bin"
trap - EXIT

log "built in $(($(date +%s) - start)) s: $("$bin" --version)"
echo "$bin"
