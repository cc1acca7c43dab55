#!/usr/bin/env bash
# Installs what tickflow needs into this checkout: a .venv with the package and its dependencies.
# With --dev also what the tests need: dev Python packages, the Azurite emulator (npm) and Chromium (apt,
# as root) for rendering reports. Safe to run again: it only installs what is missing.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$HERE"
DEV=0
[[ "${1:-}" == "--dev" ]] && DEV=1
PY="${PYTHON:-python3}"

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }
apt_install() {
  if command -v apt-get >/dev/null; then
    as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    return 1
  fi
}

if ! command -v java >/dev/null; then
  echo "setup: installing Java 17 (Spark needs a JVM)"
  apt_install openjdk-17-jre-headless || { echo "setup: please install Java 17" >&2; exit 1; }
fi
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
HASH="$(sha1sum pyproject.toml | cut -c1-12)"
STAMP=".venv/.tickflow-installed-$DEV-$HASH"
# A dev install includes the plain one: a plain request (./demo.sh) is also satisfied by the dev stamp, while a
# dev request after a plain install still installs the dev extras.
if [[ ! -f "$STAMP" && ! ( $DEV == 0 && -f ".venv/.tickflow-installed-1-$HASH" ) ]]; then
  echo "setup: installing Python packages (first time takes a minute or two)"
  .venv/bin/python -m pip install -q --upgrade pip
  if [[ $DEV == 1 ]]; then .venv/bin/pip install -q -e ".[dev]"; else .venv/bin/pip install -q -e .; fi
  touch "$STAMP"
fi
if ! .venv/bin/python -m engine.jvm_archive --check >/dev/null 2>&1; then
  echo "setup: building the class archive of Spark's JVM (every later run starts a few seconds sooner; about a minute)"
  SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}" .venv/bin/python -m engine.jvm_archive \
    || echo "setup: continuing without the class archive" >&2
fi
if [[ $DEV == 1 ]]; then
  if [[ ! -x node_modules/.bin/azurite-blob ]]; then
    echo "setup: installing Azurite (npm)"
    if [[ -f package-lock.json ]]; then npm ci --silent --no-audit --no-fund; else npm install --silent --no-audit --no-fund; fi
  fi
  if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
    echo "setup: installing Chromium (for rendering run reports in tests)"
    apt_install chromium fonts-dejavu-core || echo "setup: could not install chromium; report rendering tests will fail" >&2
  fi
fi
echo "setup: ready ($(.venv/bin/python -c 'import pyspark; print("pyspark", pyspark.__version__)'))"
