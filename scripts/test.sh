#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian/Ubuntu machine, then run it.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k pairing`).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: espeak-ng + sox make real speech for the STT tests, openssl a certificate for
# the SMTP TLS tests, chromium drives the web page tests
DEBS="espeak-ng sox openssl chromium chromium-driver"
missing=$(for p in $DEBS; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
  else
    echo "missing Debian packages: $missing (run: sudo apt-get install $missing)" >&2
  fi
fi

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
# the package itself (not editable: this also proves its files are packaged), then the pinned test stack
.venv/bin/pip install -q -c test/constraints.txt . -r test/requirements.txt
cd test
exec ../.venv/bin/python -m pytest "$@"
