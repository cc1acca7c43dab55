#!/usr/bin/env bash
# Runs the analyze pipeline: ./analyze.sh [--date YYYY-MM-DD | --start D1 --end D2] [options]; see --help.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${TICKFLOW_PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x "$HERE/.venv/bin/python" ]]; then PY="$HERE/.venv/bin/python"; else PY=python3; fi
fi
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  exec "$PY" "$HERE/run_pipeline.py" run --help
fi
exec "$PY" "$HERE/run_pipeline.py" run "$HERE/pipelines/analyze.yaml" "$@"
