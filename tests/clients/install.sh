#!/usr/bin/env bash
# Install the real clients tests/clients runs, each outside this project's venv, cached under
# $PARLEY_CACHE/clients (default ~/.cache/parley/clients):
#   dapr-agents-1.0.9/venv   a venv of its own (dapr-agents pins dapr 1.18.x; parley's venv has 1.19)
#   dapr-js-3.18.0/          an npm project (tests/clients/js/package.json + its lockfile, `npm ci`)
#   openai-js-7.55.0/        an npm project with the openai package (tests/clients/openai_js/, `npm ci`)
# Idempotent: a client whose marker matches what would be installed is left alone (a second or two in
# all). Only registry packages are downloaded (pip from PyPI, npm ci from the npm registry). A client
# that cannot be installed is reported and skipped; its tests then skip, saying why. Exit status 0.
set -uo pipefail
cd "$(dirname "$0")"
CACHE="${PARLEY_CACHE:-$HOME/.cache/parley}/clients"
mkdir -p "$CACHE"

AGENTS_VERSION=1.0.9
JS_VERSION=3.18.0
OPENAI_JS_VERSION=7.55.0

install_agents() {
  local home="$CACHE/dapr-agents-$AGENTS_VERSION" python
  python=$(command -v python3.11 || command -v python3.12 || command -v python3.13 || command -v python3) || {
    echo "dapr-agents: no python3 found (it needs 3.11-3.13): skipped"; return 0; }
  local want="dapr-agents==$AGENTS_VERSION $("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  if [ "$(cat "$home/.installed" 2>/dev/null)" = "$want" ] && [ -x "$home/venv/bin/python" ]; then
    echo "dapr-agents $AGENTS_VERSION: cached in $home"
    return 0
  fi
  echo "dapr-agents $AGENTS_VERSION: installing into $home (about 2 minutes) ..."
  local started=$SECONDS
  rm -rf "$home" && mkdir -p "$home"
  if "$python" -m venv "$home/venv" \
      && "$home/venv/bin/pip" install -q --disable-pip-version-check "dapr-agents==$AGENTS_VERSION" \
          >"$home/install.log" 2>&1; then
    echo "$want" >"$home/.installed"
    echo "dapr-agents $AGENTS_VERSION: installed in $((SECONDS - started)) s"
  else
    echo "dapr-agents $AGENTS_VERSION: install failed (its tests will skip); last lines of $home/install.log:"
    tail -n 15 "$home/install.log" 2>/dev/null
  fi
}

# install_npm LABEL DIR HOME MARKER_PATH DURATION: `npm ci` the project in DIR (package.json + lockfile)
# into HOME unless its marker matches; MARKER_PATH (under node_modules) must exist when cached.
install_npm() {
  local label=$1 dir=$2 home=$3 marker=$4 duration=$5
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "$label: node or npm not found: skipped"; return 0
  fi
  local want
  want="$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum | cut -d' ' -f1) node $(node --version)"
  if [ "$(cat "$home/.installed" 2>/dev/null)" = "$want" ] && [ -d "$home/node_modules/$marker" ]; then
    echo "$label: cached in $home"
    return 0
  fi
  echo "$label: installing into $home (npm ci, $duration) ..."
  local started=$SECONDS
  rm -rf "$home" && mkdir -p "$home"
  cp "$dir/package.json" "$dir/package-lock.json" "$home/"
  if (cd "$home" && npm ci --no-audit --no-fund --ignore-scripts >"$home/install.log" 2>&1); then
    echo "$want" >"$home/.installed"
    echo "$label: installed in $((SECONDS - started)) s"
  else
    echo "$label: npm ci failed (its tests will skip); last lines of $home/install.log:"
    tail -n 15 "$home/install.log" 2>/dev/null
  fi
}

install_agents
install_npm "@dapr/dapr $JS_VERSION" js "$CACHE/dapr-js-$JS_VERSION" @dapr/dapr "about 20 s"
install_npm "openai (npm) $OPENAI_JS_VERSION" openai_js "$CACHE/openai-js-$OPENAI_JS_VERSION" openai "a few seconds"
exit 0
