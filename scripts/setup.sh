#!/usr/bin/env bash
# One command for a fresh clone: install dependencies, build, and run a first solve.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
echo
build/mlsysim solve --model llama3-8b --hardware h100 --phase decode --batch-size 1
