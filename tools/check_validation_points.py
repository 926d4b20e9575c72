#!/usr/bin/env python3
"""Check validation/points/*.toml: TOML 1.0 syntax, required fields, unique ids,
known categories/metrics, and that every --model / --hardware id in `command`
exists in catalog/models/*.toml / catalog/hardware/*.toml.

Standard library only (tomllib needs Python >= 3.11).

    python3 tools/check_validation_points.py [--root REPO] [--quiet]

Exit status 0 when every file passes, 1 otherwise.
"""
import argparse
import glob
import os
import re
import shlex
import sys
import tomllib

REQUIRED = ("id", "category", "description", "command", "metric", "measured",
            "source", "framework", "used_for_calibration", "notes")
OPTIONAL = ("per", "confidence", "recompute", "sharding")
CATEGORIES = {"decode", "prefill", "serving", "training", "inference", "collective", "kernel", "capacity", "power",
              "reliability"}
# sub-command -> metrics its JSON output is expected to carry
METRICS = {
    "solve": {"latency_s", "tokens_per_s", "samples_per_s", "mfu"},
    "train": {"step_time_s", "mfu", "hfu", "run.cluster_mtbf_hours"},
    "serve": {"ttft_s", "itl_s", "e2e_latency_s", "tokens_per_s", "request_tokens_per_s",
              "request_tokens_per_s_per_gpu", "continuous_batching.kv_budget_bytes",
              "average_power_per_gpu_w"},
    "simulate": {"steady_state.tokens_per_s", "steady_state.average_power_per_gpu_w",
                 "steady_state.energy_per_token_j", "tokens_per_s", "average_power_per_gpu_w",
                 "max_rate_rps", "ttft_s.mean", "tpot_s.mean"},
    "collective": {"bus_bandwidth_bytes_per_s"},
    "kernel": {"flops_per_s"},
}
ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
CONFIDENCE = {"high", "medium", "low"}


def catalog_ids(root, sub):
    ids = set()
    for path in glob.glob(os.path.join(root, "catalog", sub, "*.toml")):
        with open(path, "rb") as f:
            data = tomllib.load(f)
        for table in data.values():
            if isinstance(table, list):
                for entry in table:
                    if isinstance(entry, dict) and "id" in entry:
                        ids.add(entry["id"])
                        for alias in entry.get("aliases", []):
                            ids.add(alias)
    return ids


def option(tokens, *names):
    for i, tok in enumerate(tokens):
        for name in names:
            if tok == name and i + 1 < len(tokens):
                return tokens[i + 1]
            if tok.startswith(name + "="):
                return tok.split("=", 1)[1]
    return None


def check(root, quiet=False):
    models = catalog_ids(root, "models")
    hardware = catalog_ids(root, "hardware")
    errors, seen, counts = [], {}, {}
    files = sorted(glob.glob(os.path.join(root, "validation", "points", "*.toml")))
    if not files:
        errors.append("no files under validation/points/")
    for path in files:
        rel = os.path.relpath(path, root)
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except tomllib.TOMLDecodeError as exc:
            errors.append(f"{rel}: TOML error: {exc}")
            continue
        points = data.get("point", [])
        if not isinstance(points, list) or not points:
            errors.append(f"{rel}: no [[point]] tables")
            continue
        for n, p in enumerate(points):
            where = f"{rel}[{n}] {p.get('id', '?')}"
            for key in REQUIRED:
                if key not in p:
                    errors.append(f"{where}: missing '{key}'")
            for key in p:
                if key not in REQUIRED and key not in OPTIONAL:
                    errors.append(f"{where}: unknown key '{key}'")
            pid = p.get("id", "")
            if not ID_RE.match(str(pid)):
                errors.append(f"{where}: id must be lowercase [a-z0-9._-]")
            if pid in seen:
                errors.append(f"{where}: duplicate id (first in {seen[pid]})")
            seen[pid] = rel
            cat = p.get("category")
            if cat not in CATEGORIES:
                errors.append(f"{where}: unknown category '{cat}'")
            counts[cat] = counts.get(cat, 0) + 1
            measured = p.get("measured")
            if not isinstance(measured, (int, float)) or isinstance(measured, bool) or not measured > 0:
                errors.append(f"{where}: 'measured' must be a positive number")
            if not isinstance(p.get("used_for_calibration"), bool):
                errors.append(f"{where}: 'used_for_calibration' must be a boolean")
            if "per" in p and p["per"] not in ("gpu",):
                errors.append(f"{where}: 'per' must be \"gpu\"")
            if "confidence" in p and p["confidence"] not in CONFIDENCE:
                errors.append(f"{where}: 'confidence' must be one of {sorted(CONFIDENCE)}")
            if p.get("metric") == "mfu" and isinstance(measured, (int, float)) and measured > 1:
                errors.append(f"{where}: MFU must be a fraction")
            try:
                tokens = shlex.split(p.get("command", ""))
            except ValueError as exc:
                errors.append(f"{where}: command does not parse: {exc}")
                continue
            if not tokens:
                errors.append(f"{where}: empty command")
                continue
            sub = tokens[0]
            if sub not in METRICS:
                errors.append(f"{where}: unknown sub-command '{sub}'")
            elif p.get("metric") not in METRICS[sub]:
                errors.append(f"{where}: metric '{p.get('metric')}' is not an output of '{sub}'")
            model = option(tokens, "--model", "-m")
            hw = option(tokens, "--hardware", "-H")
            if sub in ("solve", "train", "serve") and model is None:
                errors.append(f"{where}: command has no --model")
            if model is not None and model not in models:
                errors.append(f"{where}: model '{model}' not in catalog/models")
            if hw is None and option(tokens, "--cluster", "-c") is None:
                errors.append(f"{where}: command has neither --hardware nor --cluster")
            elif hw is not None and hw not in hardware:
                errors.append(f"{where}: hardware '{hw}' not in catalog/hardware")
    if not quiet:
        total = sum(counts.values())
        print("points per category: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items(), key=str)) + f"; total={total}")
    for e in errors:
        print("ERROR " + e, file=sys.stderr)
    return not errors


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args()
    ok = check(args.root, args.quiet)
    if not args.quiet:
        print("OK" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
