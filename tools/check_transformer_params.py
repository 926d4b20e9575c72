#!/usr/bin/env python3
"""Independent check of the transformer model catalog.

Loads catalog/models/language.toml, encoders.toml and training_models.toml (or the files given on the
command line), recomputes every model's total parameter count from its architecture spec and
compares it with `published_params`. Python 3.11+ standard library only (tomllib).

Counted:
  * token embedding (vocab x hidden) and, when tied_embeddings = false, a separate LM head
    (encoders never count an LM head: BERT's MLM head is tied, ViT has none)
  * learned position embeddings (max_seq x hidden; ViT: patches + 1; encoder-decoder: encoder_seq
    for the encoder and max_seq for the decoder), token-type embeddings (type_vocab), pooler
  * attention: q, k, v, o with GQA/MQA shapes (kv_heads, head_dim), biases (bias / qkv_bias),
    or MLA (q_lora_rank, kv_lora_rank, qk_nope/qk_rope/v head dims, the two latent RMSNorms)
  * FFN: gated (swiglu/geglu) = 3 matrices, plain (gelu/relu) = 2, with biases when bias = true
  * MoE: router + routed experts + shared experts (moe_ffn each); the first first_dense_layers
    layers use a dense FFN of size `ffn`
  * norms: 2 per layer (3 per decoder layer of an encoder-decoder), + final norm (one per stack;
    BERT's embedding LayerNorm takes the place of the final norm); rmsnorm = weight, layernorm =
    weight + bias
  * encoder-decoder: decoder cross-attention; Whisper's conv stem (audio_conv_stem)
  * ViT: patch-embedding conv (patch_embed), [CLS] token, position embeddings, classifier
Exit status 1 if any model is off by more than the tolerance (2%) or the catalog is malformed.
"""
from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILES = [ROOT / "catalog/models/language.toml", ROOT / "catalog/models/encoders.toml",
                 ROOT / "catalog/models/training_models.toml"]
TOLERANCE = 0.02

GATED = {"swiglu", "geglu"}
PLAIN = {"gelu", "relu"}
KINDS = {"decoder", "encoder", "encoder-decoder"}


def norm_params(m: dict) -> int:
    h = m["hidden"]
    return h if m.get("norm", "rmsnorm") == "rmsnorm" else 2 * h


def ffn_params(m: dict, size: int) -> int:
    h = m["hidden"]
    act = m["ffn_act"]
    if act in GATED:
        n = 3 * h * size
        b = 2 * size + h
    elif act in PLAIN:
        n = 2 * h * size
        b = size + h
    else:
        raise ValueError(f"unknown ffn_act {act!r}")
    return n + (b if m.get("bias", False) else 0)


def attn_params(m: dict) -> int:
    h = m["hidden"]
    heads = m["heads"]
    if m.get("kv_lora_rank"):  # MLA (DeepSeek-V2/V3)
        nope, rope, vd = m["qk_nope_head_dim"], m["qk_rope_head_dim"], m["v_head_dim"]
        qr, kvr = m.get("q_lora_rank", 0), m["kv_lora_rank"]
        qk = nope + rope
        if qr:
            q = h * qr + qr + qr * heads * qk          # q_a_proj, q_a_layernorm (RMS), q_b_proj
        else:
            q = h * heads * qk
        kv = h * (kvr + rope) + kvr + kvr * heads * (nope + vd)  # kv_a_proj_with_mqa, norm, kv_b
        o = heads * vd * h
        return q + kv + o
    kv = m.get("kv_heads", heads)
    hd = m.get("head_dim", h // heads)
    q_out, kv_out = heads * hd, kv * hd
    n = h * q_out + 2 * h * kv_out + q_out * h
    if m.get("bias", False):
        n += q_out + 2 * kv_out + h
    elif m.get("qkv_bias", False):
        n += q_out + 2 * kv_out
    return n


def count(m: dict) -> tuple[int, int, dict]:
    """Returns (total, active per token, breakdown)."""
    h = m["hidden"]
    kind = m["kind"]
    vocab = m.get("vocab", 0)
    nrm = norm_params(m)
    attn = attn_params(m)
    parts: dict[str, int] = {}

    parts["embedding"] = vocab * h
    if kind != "encoder" and vocab and not m.get("tied_embeddings", False):
        parts["lm_head"] = vocab * h
    parts["type_embedding"] = m.get("type_vocab", 0) * h

    inactive = 0
    if kind == "encoder-decoder":
        el, dl = m["encoder_layers"], m["decoder_layers"]
        ffn = ffn_params(m, m["ffn"])
        parts["encoder_layers"] = el * (attn + ffn + 2 * nrm)
        parts["decoder_layers"] = dl * (2 * attn + ffn + 3 * nrm)  # self + cross attention
        parts["final_norms"] = 2 * nrm
        if m.get("pos") == "learned":
            parts["positions"] = (m["encoder_seq"] + m["max_seq"]) * h
        stem = m.get("audio_conv_stem")
        if stem:
            mels, hid = stem
            assert hid == h, "audio_conv_stem output must equal hidden"
            parts["conv_stem"] = (mels * h * 3 + h) + (h * h * 3 + h)
    else:
        layers = m["layers"]
        experts = m.get("experts", 0)
        dense_layers = m.get("first_dense_layers", 0) if experts else layers
        moe_layers = layers - dense_layers
        dense_ffn = ffn_params(m, m["ffn"])
        parts["attention"] = layers * attn
        parts["layer_norms"] = layers * 2 * nrm
        parts["dense_ffn"] = dense_layers * dense_ffn
        if moe_layers:
            expert = ffn_params(m, m["moe_ffn"])
            router = h * experts
            shared = m.get("shared_experts", 0) * expert
            parts["moe"] = moe_layers * (router + experts * expert + shared)
            inactive = moe_layers * (experts - m["experts_per_token"]) * expert
        parts["final_norm"] = nrm
        if m.get("pos") == "learned":
            if m.get("patch_embed"):
                cin, p, img = m["patch_embed"]
                npos = (img // p) ** 2 + 1
            else:
                npos = m["max_seq"]
            parts["positions"] = npos * h
        if m.get("patch_embed"):
            cin, p, img = m["patch_embed"]
            parts["patch_embed"] = cin * p * p * h + h
            parts["cls_token"] = h
        if m.get("pooler"):
            parts["pooler"] = h * h + h
        if m.get("classifier"):
            c = m["classifier"]
            parts["classifier"] = h * c + c
    total = sum(parts.values())
    return total, total - inactive, parts


REQUIRED = ["id", "name", "kind", "hidden", "heads", "ffn", "ffn_act", "vocab", "max_seq", "norm",
            "pos", "published_params", "params_source", "source"]


def validate(m: dict, where: str) -> list[str]:
    errs = [f"{where}: missing '{k}'" for k in REQUIRED if k not in m]
    if m.get("kind") not in KINDS:
        errs.append(f"{where}: kind {m.get('kind')!r} is not a transformer kind")
    if m.get("kind") == "encoder-decoder":
        errs += [f"{where}: missing '{k}'" for k in ("encoder_layers", "decoder_layers", "encoder_seq")
                 if k not in m]
    elif "layers" not in m:
        errs.append(f"{where}: missing 'layers'")
    if m.get("experts"):
        errs += [f"{where}: MoE needs '{k}'" for k in ("experts_per_token", "moe_ffn") if k not in m]
    if m.get("norm") not in (None, "rmsnorm", "layernorm"):
        errs.append(f"{where}: bad norm {m.get('norm')!r}")
    if m.get("pos") not in (None, "rope", "learned", "alibi", "none"):
        errs.append(f"{where}: bad pos {m.get('pos')!r}")
    return errs


def key(name: str) -> str:
    return name.lower().replace("_", "-")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="*", type=Path, default=DEFAULT_FILES)
    ap.add_argument("--breakdown", action="store_true", help="print per-component counts")
    args = ap.parse_args()

    errors: list[str] = []
    names: dict[str, str] = {}
    rows = []
    for f in args.files:
        with open(f, "rb") as fh:
            data = tomllib.load(fh)
        for i, m in enumerate(data.get("model", [])):
            where = f"{f.name}[{i}] {m.get('id', '?')}"
            errs = validate(m, where)
            errors += errs
            for n in [m.get("id", "")] + list(m.get("aliases", [])):
                k = key(n)
                if k in names and names[k] != m.get("id"):
                    errors.append(f"{where}: name {n!r} already used by {names[k]}")
                names[k] = m.get("id")
            if errs:
                continue
            total, active, parts = count(m)
            pub = float(m["published_params"])
            rel = (total - pub) / pub
            rows.append((f.name, m["id"], total, active, pub, rel, parts))

    print(f"{'file':<15} {'model':<18} {'computed':>17} {'published':>17} {'rel.err':>9}  active/token")
    bad = 0
    for fname, mid, total, active, pub, rel, parts in rows:
        flag = "" if abs(rel) <= TOLERANCE else "  <-- OUT OF TOLERANCE"
        bad += bool(flag)
        act = f"{active / 1e9:8.2f}B" if active != total else "       -"
        print(f"{fname:<15} {mid:<18} {total:>17,} {int(pub):>17,} {rel * 100:+8.3f}%  {act}{flag}")
        if args.breakdown:
            for k, v in parts.items():
                if v:
                    print(f"{'':<35}{k:<16}{v:>17,}")
    print(f"\n{len(rows)} models checked, tolerance {TOLERANCE:.0%}, "
          f"{bad} out of tolerance, {len(errors)} catalog errors")
    for e in errors:
        print("ERROR:", e)
    return 1 if bad or errors else 0


if __name__ == "__main__":
    sys.exit(main())
