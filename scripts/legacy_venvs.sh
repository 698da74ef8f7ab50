#!/usr/bin/env bash
# The real old backends the import tests make their data with, each in its own venv with the
# dependency versions it runs with (today's releases break both):
#   .venv-legacy-0.1.5     ovos-local-backend 0.1.5 (JSON files)
#   .venv-legacy-0.2.0a23  ovos-local-backend 0.2.0a23 (SQLite), installed --no-deps from its pins
# Made once: a venv that already holds its backend is kept (CI builds them once per run).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

make_venv() {  # version, pip args...
  local venv=".venv-legacy-$1"
  shift
  if [ -x "$venv/bin/ovos-local-backend" ]; then return 0; fi
  echo "== making $venv (the real old backend the import tests run)"
  rm -rf "$venv"
  "$PYTHON" -m venv "$venv"
  # PyYAML 5.4.1 (0.1.5's) only builds from source with Cython < 3
  local build
  build=$(mktemp)
  echo "cython<3" > "$build"
  PIP_CONSTRAINT="$build" "$venv/bin/pip" install -q "$@"
  rm -f "$build"
}

make_venv 0.1.5 -r test/legacy/requirements-0.1.5.txt
make_venv 0.2.0a23 --no-deps -r test/legacy/requirements-0.2.0a23.txt
