#!/usr/bin/env bash
# Sets up everything the tests need (see scripts/setup.sh --dev), then runs ruff and the whole test suite.
# Extra arguments go to pytest, e.g. ./run_tests.sh tests/engine -x
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
scripts/setup.sh --dev
export SPARK_LOCAL_IP=127.0.0.1
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
