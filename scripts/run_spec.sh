#!/usr/bin/env bash
# Shared body of ./preprocess.sh and ./analyze.sh: run_pipeline.py run pipelines/<name>.yaml "$@",
# from any directory, with the checkout's .venv when there is one (or $TICKFLOW_PYTHON).
set -euo pipefail
NAME="$1"; shift
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${TICKFLOW_PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x "$HERE/.venv/bin/python" ]]; then PY="$HERE/.venv/bin/python"; else PY=python3; fi
fi
# the CLI's help and usage errors then show ./<name>.sh's usage, without the SPEC passed here (engine/cli.py)
export TICKFLOW_WRAPPER="./$NAME.sh"
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  exec "$PY" "$HERE/run_pipeline.py" run --help
fi
exec "$PY" "$HERE/run_pipeline.py" run "$HERE/pipelines/$NAME.yaml" "$@"
