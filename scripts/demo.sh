#!/usr/bin/env bash
# Install everything and run the demo: server, private NATS, local agent and the lab zone.
# The lab uses network namespaces, so this needs root. Extra arguments go to `cloudiag demo`.
# Its data directory is every subcommand's default (CLOUDIAG_DATA_DIR, else root's
# ~/.local/share/cloudiag), so `cloudiag user create` as root finds the demo's users.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then exec sudo "$0" "$@"; fi
scripts/setup.sh
exec .venv/bin/cloudiag demo "$@"
