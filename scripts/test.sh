#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian/Ubuntu machine, then run it.
# Extra arguments go to pytest, in both venvs (e.g. `bash scripts/test.sh -k pairing`).
#
# Two venvs, because no single one is both what the tests need and what a device runs:
# - .venv: the whole suite. It holds the real ovos-backend-client (the client devices and
#   tests talk to the server with), which pins ovos-config<1, so it gets ovos-config 0.4.6.
# - .venv-device: what a current OpenVoiceOS device runs (ovos-core 2.1, ovos-config 2.x, no
#   ovos-backend-client). The test_device_*.py files run here too.
# - .venv-padatious: .venv plus the Padatious intent engine (ovos-padatious), which OVOS images
#   run by default; test_skill_padatious.py runs there, in its own process: every MiniCroft loads
#   and trains each installed intent engine, so it cannot share .venv.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: espeak-ng + sox make real speech for the STT tests, openssl a certificate for
# the SMTP TLS tests, chromium drives the web page tests, swig + libfann-dev build fann2 (Padatious)
DEBS="espeak-ng sox openssl chromium chromium-driver swig libfann-dev"
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

# keep going after a failing step, so one run shows every problem; the exit status says if any failed
failed=()

# Both venvs install the package from one wheel (not editable: this also proves its files are
# packaged), built from a copy of the working tree as git sees it (tracked and new files, nothing
# .gitignore names): a build/ or *.egg-info left by an in-place build cannot slip stale files in
dist=$(mktemp -d)
trap 'rm -rf "$dist"' EXIT
mkdir "$dist/src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do if [ -e "$f" ]; then printf '%s\0' "$f"; fi; done |
    tar -c --null -T - | tar -x -C "$dist/src"
else
  tar -c --exclude='./.venv*' --exclude=./build --exclude='*.egg-info' . | tar -x -C "$dist/src"
fi

python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
# any warning from the build (setuptools taking a data folder for a package, a MANIFEST.in line
# matching nothing...) fails the run; pip's own "Location ... is ignored" lines are not the build's
echo "== build the wheel"
.venv/bin/pip wheel -q --no-deps -w "$dist" "$dist/src" 2>&1 | tee "$dist/build.log"
if grep -v "^WARNING: Location '.*' is ignored" "$dist/build.log" | grep -qi "warning"; then
  failed+=("packaging: the wheel build printed warnings (above)")
fi
wheel=$(ls "$dist"/ovos_skill_personal_backend-*.whl)
# pip keeps an installed package when given a wheel of the same version: remove it first
.venv/bin/pip uninstall -qq -y ovos-skill-personal-backend
# the package, the probe skill the sync tests install beside it, then the pinned test stack
.venv/bin/pip install -q -c test/constraints.txt "$wheel" "$dist/src/test/probe_skill" \
  -r test/requirements.txt

python3 -m venv .venv-device
.venv-device/bin/pip install -q --upgrade pip
.venv-device/bin/pip uninstall -qq -y ovos-skill-personal-backend
# the same two packages on the device stack; an install that would need another ovos-config,
# ovos-workshop... than the pinned device versions fails here, before any test runs
.venv-device/bin/pip install -q -c test/constraints-device.txt "$wheel" "$dist/src/test/probe_skill" \
  -r test/requirements-device.txt

python3 -m venv .venv-padatious
.venv-padatious/bin/pip install -q --upgrade pip
.venv-padatious/bin/pip uninstall -qq -y ovos-skill-personal-backend
.venv-padatious/bin/pip install -q -c test/constraints.txt "$wheel" "$dist/src/test/probe_skill" \
  -r test/requirements.txt
.venv-padatious/bin/pip install -q -c test/constraints.txt -c test/constraints-padatious.txt \
  -r test/requirements-padatious.txt
# without its declared dependencies (ovos-workshop<8...): requirements-padatious.txt has the rest
.venv-padatious/bin/pip install -q --no-deps -c test/constraints-padatious.txt ovos-padatious
# the real old backends the import tests make their data with (kept between runs)
echo "== old backends for the import tests"
if ! bash scripts/legacy_venvs.sh; then
  failed+=("the old backends' venvs (scripts/legacy_venvs.sh)")
fi

# lint: names that do not exist, syntax errors and likely bugs (F, E9, B); not style
echo "== ruff check --select F,E9,B"
if ! .venv/bin/ruff check --no-cache --output-format concise --select F,E9,B --extend-exclude '.venv*' --extend-exclude build .; then
  failed+=("ruff")
fi

# pytest's exit status 5 means no test was collected: with a filter such as `-k pairing` that is
# expected in some venvs (the device venv runs only test_device_*.py, the Padatious one only
# test_skill_padatious.py), but not in all of them, nor unfiltered
n_args=$#
none_collected=0
run_pytest() {  # venv, pytest args...
  local venv=$1 rc=0
  shift
  echo "== pytest in $venv"
  (cd test && "../$venv/bin/python" -m pytest "$@") || rc=$?
  if [ "$rc" = 5 ] && [ "$n_args" -gt 0 ]; then
    none_collected=$((none_collected + 1))
  elif [ "$rc" != 0 ]; then
    failed+=("pytest in $venv (exit $rc)")
  fi
}
run_pytest .venv "$@"
# in the device venv only the device-side files: every test_device_*.py in test/
device_files=()
for f in test/test_device_*.py; do device_files+=("${f#test/}"); done
run_pytest .venv-device "${device_files[@]}" "$@"
run_pytest .venv-padatious test_skill_padatious.py "$@"
if [ "$none_collected" = 3 ]; then
  failed+=("pytest: no test matched $* in any venv")
fi

if [ "${#failed[@]}" -gt 0 ]; then
  printf 'FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
