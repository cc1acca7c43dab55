#!/usr/bin/env bash
# Runs the preprocess pipeline: ./preprocess.sh [--date YYYY-MM-DD | --start D1 --end D2] [options]; see --help.
exec "$(dirname "${BASH_SOURCE[0]}")/scripts/run_spec.sh" preprocess "$@"
