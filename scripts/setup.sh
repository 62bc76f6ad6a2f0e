#!/usr/bin/env bash
# Install what cloudiag needs on Debian/Ubuntu: the network tools (when missing), a
# virtualenv in .venv and the package. Usage: scripts/setup.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# command -> Debian package
declare -A tools=(
  [ip]=iproute2 [ping]=iputils-ping [traceroute]=traceroute [arping]=iputils-arping
  [tracepath]=iputils-tracepath [mtr]=mtr-tiny [dnsmasq]=dnsmasq-base
)
missing=()
for tool in "${!tools[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || missing+=("${tools[$tool]}")
done

# The UI tests drive Debian's chromium (Playwright's own browser download is not used).
if [ "${1:-}" = "--test" ] && ! command -v chromium >/dev/null 2>&1; then
  missing+=(chromium)
fi

# The TCP traceroute tests filter ICMP and ports inside a lab namespace with nftables.
if [ "${1:-}" = "--test" ] && ! command -v nft >/dev/null 2>&1 && ! [ -x /usr/sbin/nft ]; then
  missing+=(nftables)
fi

# The SSH executor's tests run a real OpenSSH server in each lab system VM.
if [ "${1:-}" = "--test" ] && ! [ -x /usr/sbin/sshd ]; then
  missing+=(openssh-server)
fi

# The fault tests start and stop PostgreSQL servers of their own (tests/pg_server.py): they
# need the server binaries (initdb, pg_ctl), not only a reachable database.
if [ "${1:-}" = "--test" ]; then
  pg_bindir=$(pg_config --bindir 2>/dev/null || true)
  if ! [ -x "$pg_bindir/initdb" ] && ! compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    missing+=(postgresql)
  fi
fi

# The interpreter: python3 >= 3.11, resolved past any pyenv shim (the shim costs ~70 ms a start).
PY=${PYTHON:-python3}
if ! command -v "$PY" >/dev/null 2>&1; then missing+=(python3 python3-venv); fi
if command -v "$PY" >/dev/null 2>&1 && ! "$PY" -c 'import ensurepip, venv' 2>/dev/null; then
  missing+=(python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  as_root apt-get update -qq
  # openssh-server would start a system-wide sshd on port 22: the lab runs its own sshd per
  # VM and needs none, so services are not started by this install (policy-rc.d, only
  # while installing, and only when the machine has none of its own).
  guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    guard=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$guard" >/dev/null
    as_root chmod 755 "$guard"
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  if [ -n "$guard" ]; then as_root rm -f "$guard"; fi
fi
PY=$("$PY" -c 'import sys; print(sys.executable)')
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "cloudiag needs Python 3.11 or newer; $PY is $("$PY" --version)" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
extra="[clients]"
if [ "${1:-}" = "--test" ]; then extra="[clients,test]"; fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".${extra}"

# The legacy cloudmonkey runs only on Python 2.7: where one exists, install it for its test.
if [ "${1:-}" = "--test" ] && [ ! -d .py2/lib/cloudmonkey ]; then
  py2=""
  # A real interpreter, not a pyenv shim (a shim for a version that is not selected fails).
  for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/2.7*/bin/python2.7 \
                   "$(command -v python2.7 || true)"; do
    if [ -x "$candidate" ] && "$candidate" -c 'import sys' >/dev/null 2>&1; then
      py2=$candidate; break
    fi
  done
  if [ -n "$py2" ] && "$py2" -m pip --version >/dev/null 2>&1; then
    mkdir -p .py2
    if "$py2" -m pip install -q --disable-pip-version-check --target .py2/lib \
        cloudmonkey==5.3.3.1 >/dev/null 2>&1; then
      ln -sf "$py2" .py2/python
    else
      echo "note: could not install cloudmonkey for Python 2.7; its test will skip"
    fi
  fi
fi
