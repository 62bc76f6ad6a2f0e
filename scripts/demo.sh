#!/usr/bin/env bash
# Install everything and run the demo: server, private NATS, local agent and the lab zone.
# The lab uses network namespaces, so this needs root. Extra arguments go to `cloudiag demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then exec sudo "$0" "$@"; fi
scripts/setup.sh
exec .venv/bin/cloudiag demo --data-dir "${CLOUDIAG_DATA_DIR:-$PWD/data}" "$@"
