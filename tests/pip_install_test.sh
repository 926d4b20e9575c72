#!/usr/bin/env bash
# `pip install .` works offline (in-tree PEP 517 backend) and the installed package solves.
set -euo pipefail
src="$1"
python="${2:-python3}"
target=$(mktemp -d)
trap 'rm -rf "$target"' EXIT
"$python" -m pip install --quiet --no-index --no-build-isolation --target "$target" "$src"
cd "$target"
PYTHONPATH="$target" "$python" - <<'PY'
import mlsysim
p = mlsysim.Engine.solve(mlsysim.Models.Language.Llama3_8B, mlsysim.Hardware.Cloud.H100, batch_size=1)
assert p.bottleneck == "Memory", p.bottleneck
print("pip install ok:", mlsysim.__version__, p)
PY
