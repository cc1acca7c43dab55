#!/usr/bin/env bash
# Runs the analyze pipeline: ./analyze.sh [--date YYYY-MM-DD | --start D1 --end D2] [options]; see --help.
exec "$(dirname "${BASH_SOURCE[0]}")/scripts/run_spec.sh" analyze "$@"
