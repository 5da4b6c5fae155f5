#!/usr/bin/env bash
# The real-node tier in one command (root; Debian 12 with cgroup v1 like this machine kind):
#   tests/cluster/run.sh                      # node up, tests/cluster inside its network namespace, node down
#   PARLEY_NODE_KEEP=1 tests/cluster/run.sh   # leave the node up (then: python -m tests.cluster.node down)
# Extra arguments go to pytest. Binaries, images and Debian packages come from tests/envtest/setup-k8s.sh,
# and tests/cluster/images.sh (cached under $PARLEY_CACHE after the first run).
# Exit status: pytest's; 0 with a "SKIPPED" line when this machine cannot run a node at all (the reason
# is printed verbatim).
set -euo pipefail
cd "$(dirname "$0")/../.."
python="${PYTHON:-python3}"
[ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ] && python="$PWD/.venv/bin/python"

set +e
"$python" -m tests.cluster.node preflight
rc=$?
set -e
if [ $rc = 77 ]; then
  echo "real-node tier SKIPPED: this machine cannot run a node (reason above)"
  exit 0
elif [ $rc != 0 ]; then
  exit $rc
fi

teardown() {
  if [ "${PARLEY_NODE_KEEP:-}" = 1 ]; then
    echo "node kept up; tear it down with: $python -m tests.cluster.node down" >&2
  else
    "$python" -m tests.cluster.node down
  fi
}
trap teardown EXIT
"$python" -m tests.cluster.node up
"$python" -m tests.cluster.node run -- "$python" -m pytest -p no:cacheprovider -v tests/cluster "$@"
