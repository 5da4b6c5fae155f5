#!/usr/bin/env bash
# Build the Dapr CLI (github.com/dapr/cli) for tests that drive daprd (or parley) with `dapr run`.
# See tests/daprd/README.md.
#
# A `go install github.com/dapr/cli@v1.16.5` does not work here: the module proxy refuses the
# components-contrib version the CLI pins. So a throw-away wrapper module is generated at build
# time that requires the CLI, copies its go.sum and `replace`s each refused dapr-org module with
# a nearby served version. Nothing of dapr's lives in this repository; the binary is cached
# outside the repo.
#
# stdout: the absolute path of the binary, as the LAST line (progress goes to stderr).
#
# Environment:
#   PARLEY_CACHE            where binaries are cached (default: $HOME/.cache/parley)
#   PARLEY_DAPR_CLI_VERSION CLI module version (default: v1.16.5)
#   PARLEY_REBUILD=1        rebuild even if the cached binary exists
set -euo pipefail

version="${PARLEY_DAPR_CLI_VERSION:-v1.16.5}"
cache_root="${PARLEY_CACHE:-$HOME/.cache/parley}"
out_dir="$cache_root/dapr-cli/$version"
bin="$out_dir/dapr"

source "$(dirname "${BASH_SOURCE[0]}")/../go-build-lib.sh"
go_build_begin build-cli.sh

# Served replacements for versions the proxy here refuses (checked one by one below).
fallback_for() {
    case "$1" in
        github.com/dapr/components-contrib) echo v1.16.5 ;;
        *) return 1 ;;
    esac
}

log "downloading github.com/dapr/cli@$version"
dl_json=$(cd / && go mod download -json "github.com/dapr/cli@$version") || {
    log "the module proxy did not serve github.com/dapr/cli@$version"; exit 1; }
json_field() { sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}\$/\1/p" <<<"$dl_json" | head -n1; }
cli_dir=$(json_field Dir)
cli_sum=$(json_field Sum)
cli_modsum=$(json_field GoModSum)
cli_commit=$(json_field Hash)
[[ -d "$cli_dir" ]] || { log "no module directory for cli@$version"; exit 1; }

src="$out_dir/src"
rm -rf "$src"
mkdir -p "$src"

go_directive=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$cli_dir/go.mod" | head -n1)
{
    echo "module parley.local/dapr-cli"
    echo
    echo "go ${go_directive:-1.24}"
    echo
    echo "require github.com/dapr/cli $version"
    echo
    awk '
        /^replace[[:space:]]*\($/ { inblock = 1; print; next }
        inblock                   { print; if ($0 ~ /^\)/) { inblock = 0; print "" }; next }
        /^replace[[:space:]]/     { print }
    ' "$cli_dir/go.mod"
} >"$src/go.mod"
{
    cat "$cli_dir/go.sum"
    echo "github.com/dapr/cli $version $cli_sum"
    echo "github.com/dapr/cli $version/go.mod $cli_modsum"
} >"$src/go.sum"

# Each dapr-org module the CLI pins: keep it if the proxy serves it, else pin a served one.
while read -r mod ver; do
    if (cd / && go mod download "$mod@$ver") 2>/dev/null; then
        continue
    fi
    if alt=$(fallback_for "$mod"); then
        log "proxy refuses $mod@$ver; pinning $alt instead"
        printf 'replace %s => %s %s\n' "$mod" "$mod" "$alt" >>"$src/go.mod"
    else
        log "proxy refuses $mod@$ver and no fallback is known; add one to fallback_for"
        exit 1
    fi
done < <(awk '$1 ~ /^github\.com\/dapr\// && $2 ~ /^v/ { print $1, $2 }' "$cli_dir/go.mod")

# Build the CLI's own main package, stamped like its Makefile does.
ldflags="-s -w -X main.version=${version#v} -X github.com/dapr/cli/pkg/standalone.gitcommit=$cli_commit -X github.com/dapr/cli/pkg/standalone.gitversion=$version"
log "building dapr CLI $version in $src"
tmp_bin="$out_dir/.dapr.tmp.$$"
trap 'rm -f "$tmp_bin"' EXIT
(cd "$src" && go build -trimpath -ldflags "$ldflags" -o "$tmp_bin" github.com/dapr/cli) >&2
mv -f "$tmp_bin" "$bin"
trap - EXIT

log "built in $(($(date +%s) - start)) s"
echo "$bin"
