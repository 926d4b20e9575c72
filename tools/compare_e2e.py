#!/usr/bin/env python3
"""Compare bench/gpu/e2e.py measurements with mlsysim predictions, per record and per implementation.
(tools/e2e_to_validation.py turns the same records into validation points.)

    python3 tools/compare_e2e.py bench/gpu/results/H100_e2e.json [--mlsysim build/mlsysim] [--impl NAME]
"""
import argparse
import json
import statistics
import subprocess
import sys

from e2e_to_validation import HW, IMPL, solve_command  # one mapping from records to commands


def predict(exe, cmd):
    out = subprocess.run([exe] + cmd.split() + ["--format", "json"], capture_output=True, text=True)
    if out.returncode != 0:
        return None, out.stderr.strip().splitlines()[-1] if out.stderr else "failed"
    return json.loads(out.stdout)["latency_s"], ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--mlsysim", default="build/mlsysim")
    ap.add_argument("--impl", default=None, help="only records of this impl")
    args = ap.parse_args()
    errs = {}
    for path in args.files:
        data = json.load(open(path))
        hw = HW[data["device"]][0]
        for rec in data["records"]:
            if rec["kind"] == "profile" or rec["impl"] not in IMPL or (args.impl and rec["impl"] != args.impl):
                continue
            cmd = solve_command(rec, hw)
            pred, why = predict(args.mlsysim, cmd)
            if pred is None:
                print(f"{hw:5s} {rec['impl']:20s} {cmd[6:]:95s} FAILED {why}")
                continue
            e = (pred - rec["seconds"]) / rec["seconds"]
            errs.setdefault((rec["impl"], rec["kind"]), []).append(abs(e))
            print(f"{hw:5s} {rec['impl']:20s} {cmd[6:]:95s} meas {rec['seconds'] * 1e3:9.3f} ms pred {pred * 1e3:9.3f} {100 * e:+7.1f}%")
    print()
    for k, v in sorted(errs.items()):
        v = sorted(v)
        print(f"{k[0]:20s} {k[1]:10s} n={len(v):3d} median {100 * statistics.median(v):5.1f}%  max {100 * v[-1]:5.1f}%")


if __name__ == "__main__":
    sys.exit(main())
