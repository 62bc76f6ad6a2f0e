#!/usr/bin/env bash
# Install the test dependencies and run the whole suite: lint, types, unit and end-to-end
# tests (lab namespaces need root; PostgreSQL is expected on 127.0.0.1:5432, see README).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then exec sudo -E "$0" "$@"; fi
scripts/setup.sh --test
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
