#!/usr/bin/env python3
"""Independent check of the per-layer rows of kind = "cnn" catalog models.

Reads catalog/models/*.toml (or the files/directories given on the command line), sums
parameters and FLOPs from the `layers` rows, and compares them with `published_params`
and `published_flops`. Python 3.11+ standard library only (tomllib).

Counting rules (they mirror how the published totals are counted: PyTorch
`sum(p.numel() for p in model.parameters())`, Keras trainable parameters):

  conv  ["conv", cin, cout, k, stride, h_out, w_out, groups, bn, bias]
        kernel/stride may be an int or [kh, kw]; bn and bias are optional 0/1 flags (default 0).
        params = cout * (cin/groups) * kh * kw
                 + cout        if bias = 1   (the conv itself carries a bias, e.g. Keras default)
                 + 2 * cout    if bn = 1     (BatchNorm gamma and beta are trainable parameters
                                              and are included in the published counts; the
                                              running mean/var are buffers and are not. The
                                              engine folds BN into the conv, so BN has no row.)
        MACs   = cout * (cin/groups) * kh * kw * h_out * w_out
  fc    ["fc", in, out]            params = in*out + out (bias)   MACs = in*out
  se    ["se", c, r, h, w]         squeeze-excite = global pool + FC(c->r) + FC(r->c) (both with
                                   bias) + channel-wise scale
                                   params = 2*c*r + r + c        MACs = 2*c*r
                                   elementwise = c*h*w (pool sum) + c*h*w (scale)
  add   ["add", c, h, w]           elementwise = c*h*w
  pool  ["pool", c, h_out, w_out, window]   memory traffic only: no params, no FLOPs

FLOPs compared with `published_flops` = 2 * MACs (the convention of the published figures,
which count multiply-accumulates only). Elementwise operations are reported separately.
Tolerances: params within 1 %, FLOPs within 5 %. Exit status 1 if any model fails.
"""
import sys
import tomllib
from pathlib import Path

PARAM_TOL = 0.01
FLOP_TOL = 0.05


def pair(v):
    if isinstance(v, list):
        if len(v) != 2:
            raise ValueError(f"expected [h, w], got {v}")
        return int(v[0]), int(v[1])
    return int(v), int(v)


def count(layers):
    params = macs = elementwise = 0
    for i, row in enumerate(layers):
        op = row[0]
        try:
            if op == "conv":
                if len(row) not in (8, 9, 10):
                    raise ValueError("conv rows have 8, 9 or 10 fields")
                cin, cout = int(row[1]), int(row[2])
                kh, kw = pair(row[3])
                pair(row[4])  # stride: validated, not needed for the counts
                ho, wo, groups = int(row[5]), int(row[6]), int(row[7])
                bn = int(row[8]) if len(row) > 8 else 0
                bias = int(row[9]) if len(row) > 9 else 0
                if groups < 1 or cin % groups or cout % groups:
                    raise ValueError(f"groups={groups} must divide cin={cin} and cout={cout}")
                w = cout * (cin // groups) * kh * kw
                params += w + (cout if bias else 0) + (2 * cout if bn else 0)
                macs += w * ho * wo
            elif op == "fc":
                fin, fout = int(row[1]), int(row[2])
                params += fin * fout + fout
                macs += fin * fout
            elif op == "se":
                c, r, h, w = (int(x) for x in row[1:5])
                params += 2 * c * r + r + c
                macs += 2 * c * r
                elementwise += 2 * c * h * w
            elif op == "add":
                c, h, w = (int(x) for x in row[1:4])
                elementwise += c * h * w
            elif op == "pool":
                pair(row[4])
            else:
                raise ValueError(f"unknown op {op!r}")
        except (ValueError, IndexError, TypeError) as e:
            raise ValueError(f"row {i} {row}: {e}") from None
    return params, macs, elementwise


def rel(a, b):
    return (a - b) / b if b else float("inf")


def main(argv):
    root = Path(__file__).resolve().parent.parent
    targets = [Path(a) for a in argv] or [root / "catalog" / "models"]
    files = []
    for t in targets:
        files += sorted(t.glob("*.toml")) if t.is_dir() else [t]
    ok = True
    print(f"{'model':<18}{'params':>14}{'published':>14}{'err':>9}   "
          f"{'GFLOPs':>10}{'published':>11}{'err':>9}  {'elementwise':>12}  status")
    for f in files:
        with open(f, "rb") as fh:
            data = tomllib.load(fh)
        for m in data.get("model", []):
            if m.get("kind") != "cnn":
                continue
            try:
                p, macs, elt = count(m["layers"])
            except ValueError as e:
                print(f"{m['id']:<18}ERROR {e}")
                ok = False
                continue
            flops = 2 * macs
            pp, pf = m.get("published_params"), m.get("published_flops")
            ep = rel(p, pp) if pp else float("nan")
            ef = rel(flops, pf) if pf else float("nan")
            good = pp is not None and pf is not None and abs(ep) <= PARAM_TOL and abs(ef) <= FLOP_TOL
            ok &= good
            print(f"{m['id']:<18}{p:>14,}{int(pp or 0):>14,}{ep:>+9.2%}   "
                  f"{flops / 1e9:>10.4f}{(pf or 0) / 1e9:>11.4f}{ef:>+9.2%}  {elt:>12,}  "
                  f"{'ok' if good else 'FAIL'}   [{f.name}]")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
