#!/usr/bin/env bash
# Builds everything and runs every test (C++ unit, property and CLI tests via CTest).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh
cd build
ctest --output-on-failure -j"$(nproc)"
