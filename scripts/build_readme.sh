#!/usr/bin/env bash
# README.md is assembled from docs/readme/*.md (one file per capability) so each stays next to its owner.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
order=(00_intro preprocess analyze job_tracking operability azure 99_development)
{
  for name in "${order[@]}"; do cat "docs/readme/$name.md"; echo; done
} > README.md
echo "README.md: $(wc -l < README.md) lines"
