#!/usr/bin/env bash
# Sets up, generates a small market-data sample (3 trading days) and runs both pipelines end to end on the
# embedded defaults: ./raw -> ./warehouse, SQLite job tracker in ./.tickflow, Spark local[*].
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$HERE"
scripts/setup.sh
export SPARK_LOCAL_IP=127.0.0.1
if [[ ! -d raw ]]; then
  .venv/bin/python -m datagen --out raw --start 2024-01-04 --days 3 --symbols 6 --events 60000 --seed 7
fi
./preprocess.sh
./analyze.sh
.venv/bin/python run_pipeline.py status
echo
echo "Reports (open in a browser):"
ls -t warehouse/_reports/preprocess/*/*/report.html | head -1 | sed 's/^/  preprocess: /'
ls -t warehouse/_reports/analyze/*/*/report.html | head -1 | sed 's/^/  analyze:    /'
