#!/usr/bin/env bash
# parley end to end on kind, in one command:
#   tests/e2e/run.sh            # create cluster parley-e2e, build + load both images, install, check, delete
#   PARLEY_E2E_KEEP=1 tests/e2e/run.sh   # keep the cluster afterwards (kubectl --context kind-parley-e2e)
# Needs docker (a running daemon), kind and kubectl on PATH, and network access for the base image
# and kind's node image. PARLEY_BASE_IMAGE overrides the images' Python base (a build argument).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PARLEY_E2E=1
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] && python=.venv/bin/python
exec "$python" -m pytest -p no:cacheprovider -v tests/e2e "$@"
