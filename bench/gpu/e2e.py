#!/usr/bin/env python3
"""End-to-end step times on a real GPU, for mlsysim's held-out validation set.

Each record is one configuration that `mlsysim solve` predicts (decode step, prefill, training step,
inference forward pass), measured on the local GPU with random weights (timing does not depend on the
values). These are *validation* measurements: the engine is calibrated on microbench.py's isolated
kernels only, never on these.

Implementations (named in each record's "impl"):
  * torch-graph  A plain PyTorch decoder (fused QKV and gate/up weights, RMSNorm, RoPE, SwiGLU,
                 scaled_dot_product_attention with GQA over a static KV cache), one decode step captured
                 in a CUDA graph and replayed, as gpt-fast / vLLM / TensorRT-LLM run decode.
  * torch-eager  The same code without the graph: every kernel issued from Python.
  * hf-eager     Hugging Face transformers model built from a config (attn_implementation="sdpa").
  * torchvision  torchvision model, channels_last, bf16.

    python3 bench/gpu/e2e.py --output e2e.json [--quick] [--only decode,prefill,train,vision,hf]

Further sections (not in the default --only): profile (per-kernel table of plain-PyTorch steps),
hfprofile (per-kernel table and wall time of an HF Llama decode step and an HF GPT-2 training step),
hostprofile (host time and framework-call counts of one eager step of BERT, ResNet-50, ViT, HF Llama
and the plain decoder: aten calls, views, nn.Module calls, kernels), compiled and compiled2
(torch.compile + CUDA graph decode and prefill). The output records the transformers and torchvision
versions: eager host cost changes between releases.
"""
import argparse
import json
import math
import statistics
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # reported by main() after argument parsing, so --help works without PyTorch
    torch = F = None

# Shapes of catalog models (catalog/models/*.toml): the ids are mlsysim model ids.
DECODERS = {
    "llama3-8b": dict(layers=32, hidden=4096, heads=32, kv_heads=8, head_dim=128, ffn=14336, vocab=128256, tied=False, qkv_bias=False),
    "mistral-7b": dict(layers=32, hidden=4096, heads=32, kv_heads=8, head_dim=128, ffn=14336, vocab=32000, tied=False, qkv_bias=False),
    "qwen2.5-7b": dict(layers=28, hidden=3584, heads=28, kv_heads=4, head_dim=128, ffn=18944, vocab=152064, tied=False, qkv_bias=True),
    "phi3-mini": dict(layers=32, hidden=3072, heads=32, kv_heads=32, head_dim=96, ffn=8192, vocab=32064, tied=False, qkv_bias=False),
    "llama3.2-1b": dict(layers=16, hidden=2048, heads=32, kv_heads=8, head_dim=64, ffn=8192, vocab=128256, tied=True, qkv_bias=False),
    "llama3.2-3b": dict(layers=28, hidden=3072, heads=24, kv_heads=8, head_dim=128, ffn=8192, vocab=128256, tied=True, qkv_bias=False),
    "llama2-13b": dict(layers=40, hidden=5120, heads=40, kv_heads=40, head_dim=128, ffn=13824, vocab=32000, tied=False, qkv_bias=False),
}

DEV = torch.device("cuda") if torch else None
DT = torch.bfloat16 if torch else None


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def median_time(fn, runs=15, warmup=3, inner=None):
    """Median seconds per call of fn(), CUDA events around `inner` back-to-back calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    if inner is None:
        start.record(); fn(); end.record(); torch.cuda.synchronize()
        one = max(start.elapsed_time(end) / 1e3, 1e-6)
        inner = max(1, min(50, int(0.02 / one)))
    samples = []
    for _ in range(runs):
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        torch.cuda.synchronize()
        samples.append(start.elapsed_time(end) / 1e3 / inner)
    return statistics.median(samples), min(samples), max(samples)


class Decoder:
    """Llama-family decoder with random bf16 weights (std 0.02: activations stay finite)."""

    def __init__(self, c):
        self.c = c
        h, d = c["hidden"], c["head_dim"]
        qkv = (c["heads"] + 2 * c["kv_heads"]) * d

        def w(*shape):
            return torch.randn(*shape, device=DEV, dtype=DT) * 0.02
        self.embed = w(c["vocab"], h)
        self.lm_head = self.embed if c["tied"] else w(c["vocab"], h)
        self.layers = []
        for _ in range(c["layers"]):
            self.layers.append(dict(
                attn_norm=torch.ones(h, device=DEV, dtype=DT), wqkv=w(qkv, h),
                bqkv=w(qkv) if c["qkv_bias"] else None, wo=w(h, c["heads"] * d),
                ffn_norm=torch.ones(h, device=DEV, dtype=DT), w13=w(2 * c["ffn"], h), w2=w(h, c["ffn"])))
        self.final_norm = torch.ones(h, device=DEV, dtype=DT)

    def params(self):
        n = self.embed.numel() + (0 if self.c["tied"] else self.lm_head.numel()) + self.final_norm.numel()
        for L in self.layers:
            n += sum(t.numel() for t in L.values() if t is not None)
        return n

    def rope(self, positions):
        d = self.c["head_dim"]
        inv = 1.0 / (500000.0 ** (torch.arange(0, d, 2, device=DEV, dtype=torch.float32) / d))
        ang = positions.float()[:, None] * inv[None, :]
        return torch.cos(ang).to(DT), torch.sin(ang).to(DT)

    @staticmethod
    def apply_rope(x, cos, sin):  # x [B, H, S, d]; cos/sin [S, d/2]
        x1, x2 = x[..., ::2], x[..., 1::2]
        return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)

    def forward(self, tokens, cos, sin, caches=None, write_pos=None, causal=True, last_only=True):
        c = self.c
        B, S = tokens.shape
        hq, hk, d = c["heads"], c["kv_heads"], c["head_dim"]
        x = F.embedding(tokens, self.embed)
        for i, L in enumerate(self.layers):
            hs = F.rms_norm(x, (c["hidden"],), L["attn_norm"], 1e-5)
            qkv = F.linear(hs, L["wqkv"], L["bqkv"])
            q, k, v = qkv.split([hq * d, hk * d, hk * d], dim=-1)
            q = self.apply_rope(q.view(B, S, hq, d).transpose(1, 2), cos, sin)
            k = self.apply_rope(k.view(B, S, hk, d).transpose(1, 2), cos, sin)
            v = v.view(B, S, hk, d).transpose(1, 2)
            if caches is not None:  # decode: write this token's K/V, attend over the whole cache
                kc, vc = caches[i]
                kc.index_copy_(2, write_pos, k)
                vc.index_copy_(2, write_pos, v)
                k, v = kc, vc
            o = F.scaled_dot_product_attention(q, k, v, is_causal=causal and caches is None, enable_gqa=hq != hk)
            x = x + F.linear(o.transpose(1, 2).reshape(B, S, hq * d), L["wo"])
            hs = F.rms_norm(x, (c["hidden"],), L["ffn_norm"], 1e-5)
            g, u = F.linear(hs, L["w13"]).chunk(2, dim=-1)
            x = x + F.linear(F.silu(g) * u, L["w2"])
        if last_only:
            x = x[:, -1:, :]
        x = F.rms_norm(x, (c["hidden"],), self.final_norm, 1e-5)
        return F.linear(x, self.lm_head)


def free_all():
    torch.cuda.synchronize()
    torch.cuda.empty_cache()


def kv_bytes(c, batch, ctx):
    return 2 * c["layers"] * batch * c["kv_heads"] * c["head_dim"] * ctx * 2


def decode_inputs(m, batch, ctx):
    """KV caches holding ctx old tokens + the new one (attention reads ctx+1 positions), the new
    token, its position and RoPE angles."""
    c = m.c
    caches = [(torch.randn(batch, c["kv_heads"], ctx + 1, c["head_dim"], device=DEV, dtype=DT),
               torch.randn(batch, c["kv_heads"], ctx + 1, c["head_dim"], device=DEV, dtype=DT))
              for _ in range(c["layers"])]
    tok = torch.randint(0, c["vocab"], (batch, 1), device=DEV)
    pos = torch.tensor([ctx], device=DEV)
    cos, sin = m.rope(pos)
    return caches, tok, pos, cos, sin


def capture_graph(step, warmups=3):
    """Warm `step` on a side stream (as CUDA-graph capture requires), capture one call, return the
    graph and the captured output (keep both alive while replaying)."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(warmups):
            step()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        out = step()
    return g, out


def run_decode(records, model_id, points, graph_points, eager_points):
    c = DECODERS[model_id]
    m = Decoder(c)
    log(f"decode {model_id}: {m.params() / 1e9:.2f} B parameters")
    for batch, ctx in points:
        if kv_bytes(c, batch, ctx + 1) + m.params() * 2 > 0.85 * torch.cuda.mem_get_info()[1]:
            log(f"  skip b={batch} ctx={ctx}: does not fit")
            continue
        caches, tok, pos, cos, sin = decode_inputs(m, batch, ctx)

        def step():
            return m.forward(tok, cos, sin, caches, pos, causal=False)
        with torch.no_grad():
            for runtime in ("graph", "eager"):
                if runtime == "graph" and (batch, ctx) not in graph_points:
                    continue
                if runtime == "eager" and (batch, ctx) not in eager_points:
                    continue
                if runtime == "graph":
                    g, out = capture_graph(step, warmups=2)
                    fn = g.replay
                else:
                    fn = step
                med, lo, hi = median_time(fn, runs=11, warmup=3, inner=5)
                if runtime == "graph":
                    del g, out
                records.append(dict(kind="decode", impl=f"torch-{runtime}", runtime=runtime, model=model_id,
                                    batch=batch, context=ctx, seq_len=1, precision="bf16", seconds=med,
                                    min_s=lo, max_s=hi))
                log(f"  decode {runtime:5s} b={batch:<4d} ctx={ctx:<6d} {med * 1e3:8.3f} ms")
        del caches
        free_all()
    del m
    free_all()


def run_prefill(records, model_id, points):
    c = DECODERS[model_id]
    m = Decoder(c)
    with torch.no_grad():
        for batch, seq in points:
            tok = torch.randint(0, c["vocab"], (batch, seq), device=DEV)
            cos, sin = m.rope(torch.arange(seq, device=DEV))
            med, lo, hi = median_time(lambda: m.forward(tok, cos, sin), runs=9, warmup=2, inner=None)
            records.append(dict(kind="prefill", impl="torch-eager", runtime="eager", model=model_id, batch=batch,
                                seq_len=seq, context=0, precision="bf16", seconds=med, min_s=lo, max_s=hi,
                                notes="logits of the last position only; no KV-cache write"))
            log(f"  prefill {model_id} b={batch:<3d} s={seq:<6d} {med * 1e3:8.3f} ms")
            free_all()
    del m
    free_all()


def hf_llama_config(model_id):
    from transformers import LlamaConfig
    c = DECODERS[model_id]
    return LlamaConfig(hidden_size=c["hidden"], intermediate_size=c["ffn"], num_hidden_layers=c["layers"],
                       num_attention_heads=c["heads"], num_key_value_heads=c["kv_heads"], head_dim=c["head_dim"],
                       vocab_size=c["vocab"], tie_word_embeddings=c["tied"], max_position_embeddings=16384,
                       attn_implementation="sdpa", torch_dtype=DT)


def build_hf(cls, config):
    torch.set_default_dtype(DT)
    try:
        with torch.device(DEV):
            model = cls(config)
    finally:
        torch.set_default_dtype(torch.float32)
    return model.to(DEV, DT).eval()


def hf_decode_step(model, batch, ctx):
    """One HF decode step after a prefill of `ctx` tokens (DynamicCache); each call crops the cache
    back to `ctx`, so every timed step attends over the same length. Call under torch.no_grad()."""
    tok = torch.randint(0, 1000, (batch, ctx), device=DEV)
    cache = model(input_ids=tok, use_cache=True).past_key_values
    nxt = torch.randint(0, 1000, (batch, 1), device=DEV)

    def step():
        r = model(input_ids=nxt, past_key_values=cache, use_cache=True)
        cache.crop(ctx)
        return r
    return step


def run_hf_decode(records, model_id, points):
    """HF transformers eager: one decode step after a prefill of `ctx` tokens (DynamicCache)."""
    from transformers import LlamaForCausalLM
    model = build_hf(LlamaForCausalLM, hf_llama_config(model_id))
    with torch.no_grad():
        for batch, ctx in points:
            step = hf_decode_step(model, batch, ctx)
            med, lo, hi = median_time(step, runs=9, warmup=3, inner=5)
            records.append(dict(kind="decode", impl="hf-eager", runtime="eager", model=model_id, batch=batch,
                                context=ctx, seq_len=1, precision="bf16", seconds=med, min_s=lo, max_s=hi))
            log(f"  hf decode {model_id} b={batch:<3d} ctx={ctx:<6d} {med * 1e3:8.3f} ms")
            del step
            free_all()
    del model
    free_all()


def run_hf_train(records, name, model, batch, seq, vocab, model_id):
    """One optimizer step: bf16 autocast forward+backward with fp32 master weights, fused AdamW."""
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    tok = torch.randint(0, vocab, (batch, seq), device=DEV)

    def step():
        with torch.autocast("cuda", dtype=DT):
            loss = model(input_ids=tok, labels=tok).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    med, lo, hi = median_time(step, runs=7, warmup=3, inner=1)
    records.append(dict(kind="train", impl="hf-eager-amp", runtime="eager", model=model_id, batch=batch,
                        seq_len=seq, context=0, precision="bf16", seconds=med, min_s=lo, max_s=hi,
                        notes="fp32 parameters, bf16 autocast, fused AdamW, SDPA attention"))
    log(f"  train {name} b={batch} s={seq} {med * 1e3:8.2f} ms")
    del opt
    free_all()


def run_train(records, quick):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaForCausalLM
    torch.backends.cuda.matmul.allow_tf32 = True
    for model_id, cfg in [("gpt2", GPT2Config(attn_implementation="sdpa")),
                          ("gpt2-xl", GPT2Config(n_embd=1600, n_layer=48, n_head=25, attn_implementation="sdpa"))]:
        model = build_hf(GPT2LMHeadModel, cfg).float()
        for batch in ([8] if quick else [8, 16]) if model_id == "gpt2" else [4]:
            run_hf_train(records, model_id, model, batch, 1024, cfg.vocab_size, model_id)
        del model
        free_all()
    cfg = hf_llama_config("llama3.2-1b")
    model = build_hf(LlamaForCausalLM, cfg).float()
    for batch in [2, 4]:
        run_hf_train(records, "llama3.2-1b", model, batch, 2048, cfg.vocab_size, "llama3.2-1b")
    del model
    free_all()


def run_vision(records, quick):
    import torchvision
    torch.backends.cudnn.benchmark = True
    for model_id, ctor in [("resnet50", torchvision.models.resnet50), ("vit-b16", torchvision.models.vit_b_16),
                           ("resnet18", torchvision.models.resnet18), ("mobilenetv2", torchvision.models.mobilenet_v2)]:
        model = ctor().to(DEV, DT).to(memory_format=torch.channels_last).eval()
        for batch in [1, 32, 256]:
            x = torch.randn(batch, 3, 224, 224, device=DEV, dtype=DT).to(memory_format=torch.channels_last)
            with torch.no_grad():
                med, lo, hi = median_time(lambda: model(x), runs=9, warmup=3)
            records.append(dict(kind="inference", impl="torchvision-eager", runtime="eager", model=model_id,
                                batch=batch, seq_len=0, context=0, precision="bf16", seconds=med, min_s=lo, max_s=hi))
            log(f"  inference {model_id} b={batch:<4d} {med * 1e3:8.3f} ms")
        del model
        free_all()
    torch.backends.cudnn.benchmark = False


def run_bert(records):
    from transformers import BertConfig, BertModel
    model = build_hf(BertModel, BertConfig(attn_implementation="sdpa"))
    with torch.no_grad():
        for batch, seq in [(1, 128), (32, 128), (32, 512), (128, 384)]:
            tok = torch.randint(0, 30000, (batch, seq), device=DEV)
            med, lo, hi = median_time(lambda: model(input_ids=tok), runs=9, warmup=3)
            records.append(dict(kind="inference", impl="hf-eager", runtime="eager", model="bert-base", batch=batch,
                                seq_len=seq, context=0, precision="bf16", seconds=med, min_s=lo, max_s=hi))
            log(f"  inference bert-base b={batch:<4d} s={seq:<4d} {med * 1e3:8.3f} ms")
    del model
    free_all()


def run_profile(records, model_id, cases):
    """Per-kernel GPU durations inside one step (torch.profiler, CUDA activity): lets the engine's
    per-operator times be checked, not only the totals."""
    c = DECODERS[model_id]
    m = Decoder(c)
    with torch.no_grad():
        for kind, batch, n in cases:
            if kind == "decode":
                caches, tok, pos, cos, sin = decode_inputs(m, batch, n)

                def step():
                    return m.forward(tok, cos, sin, caches, pos, causal=False)
            else:
                caches = None
                tok = torch.randint(0, c["vocab"], (batch, n), device=DEV)
                cos, sin = m.rope(torch.arange(n, device=DEV))

                def step():
                    return m.forward(tok, cos, sin)
            profile_step(records, step, kind, "torch-eager", model_id, batch, n)
            del caches
            free_all()
    del m
    free_all()


def profile_step(records, step, phase, impl, model_id, batch, tokens):
    """Per-kernel GPU durations of one call of `step` (after 3 warm-up calls), grouped by kernel name,
    plus the step's wall time: wall minus kernel time is what the host (Python, dispatch) adds."""
    from torch.profiler import ProfilerActivity, profile
    for _ in range(3):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    step()
    torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    kernels = {}
    total, count = 0.0, 0
    for ev in prof.events():
        if ev.device_type.name != "CUDA":
            continue
        dur = ev.device_time / 1e6 if hasattr(ev, "device_time") else ev.cuda_time / 1e6
        k = kernels.setdefault(ev.name[:120], [0, 0.0])
        k[0] += 1
        k[1] += dur
        total += dur
        count += 1
    top = sorted(kernels.items(), key=lambda kv: -kv[1][1])
    records.append(dict(kind="profile", phase=phase, impl=impl, model=model_id, batch=batch, tokens=tokens,
                        kernel_count=count, kernel_seconds=total, wall_seconds=wall,
                        kernels=[dict(name=k, count=v[0], seconds=v[1]) for k, v in top]))
    log(f"  profile {impl} {phase} {model_id} b={batch} n={tokens}: {count} kernels, "
        f"{total * 1e3:.3f} ms of kernel time, {wall * 1e3:.3f} ms wall")
    for k, v in top[:12]:
        log(f"     {v[0]:5d} x {v[1] * 1e3:8.3f} ms  {k[:90]}")


def run_hf_profile(records):
    """Where Hugging Face eager time goes: kernel counts and per-kernel times of one HF Llama decode
    step and one HF GPT-2 training step (checks the --fusion hf decomposition and finds what the
    engine does not model yet, e.g. GPT-2's vocabulary of 50257 in the LM-head GEMMs)."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaForCausalLM
    model = build_hf(LlamaForCausalLM, hf_llama_config("llama3-8b"))
    with torch.no_grad():
        decode = hf_decode_step(model, 1, 1024)
        profile_step(records, decode, "decode", "hf-eager", "llama3-8b", 1, 1024)
    del model, decode
    free_all()
    torch.backends.cuda.matmul.allow_tf32 = True
    cfg = GPT2Config(attn_implementation="sdpa")
    model = build_hf(GPT2LMHeadModel, cfg).float()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
    tok = torch.randint(0, cfg.vocab_size, (8, 1024), device=DEV)

    def train_step():
        with torch.autocast("cuda", dtype=DT):
            loss = model(input_ids=tok, labels=tok).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    profile_step(records, train_step, "train", "hf-eager-amp", "gpt2", 8, 1024)
    del model, opt
    free_all()


def host_profile_step(records, name, step):
    """Where an eager step's host time goes: wall time of the host side alone (the step is issued
    without waiting for the GPU, at sizes where the GPU runs ahead of nothing), the framework calls
    it makes (aten ops at the top level and in all, from torch.profiler's CPU events), the nn.Module
    calls (a global forward pre-hook, counted in a separate call) and the kernels it launches. A
    host-cost fit over these counts (per aten call, per module call) is the next calibration step
    for --runtime eager."""
    from torch.profiler import ProfilerActivity, profile
    for _ in range(5):
        step()
    torch.cuda.synchronize()
    samples = []
    for _ in range(20):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        samples.append(time.perf_counter() - t0)  # host returns before the GPU finishes
    torch.cuda.synchronize()
    modules = [0]

    def count(_module, _inputs):
        modules[0] += 1
    handle = torch.nn.modules.module.register_module_forward_pre_hook(count)
    try:
        step()
    finally:
        handle.remove()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    events = prof.events()
    cpu = [ev for ev in events if ev.device_type.name == "CPU" and ev.name.startswith("aten::")]
    top = [ev for ev in cpu if ev.cpu_parent is None or not ev.cpu_parent.name.startswith("aten::")]
    kernels = sum(1 for ev in events if ev.device_type.name == "CUDA")
    views = sum(1 for ev in top if ev.name in ("aten::view", "aten::reshape", "aten::transpose", "aten::permute",
                                                "aten::slice", "aten::select", "aten::split", "aten::chunk",
                                                "aten::unsqueeze", "aten::expand", "aten::flatten", "aten::t",
                                                "aten::as_strided", "aten::unflatten", "aten::contiguous"))
    host = statistics.median(samples)
    records.append(dict(kind="hostprofile", workload=name, host_seconds=host, host_min_s=min(samples),
                        aten_top_level=len(top), aten_total=len(cpu), aten_top_level_views=views,
                        module_calls=modules[0], kernel_count=kernels))
    log(f"  host {name}: {host * 1e3:.3f} ms host, {len(top)} top-level aten calls ({views} views), "
        f"{len(cpu)} aten in all, {modules[0]} module calls, {kernels} kernels")


def run_host_profile(records):
    """Host-side counts of the eager workloads validation/ measures (BERT, torchvision, HF Llama,
    the plain-PyTorch decoder), one step each at batch 1."""
    import torchvision
    from transformers import BertConfig, BertModel, LlamaForCausalLM
    with torch.no_grad():
        bert = build_hf(BertModel, BertConfig(attn_implementation="sdpa"))
        tok = torch.randint(0, 30000, (1, 128), device=DEV)
        host_profile_step(records, "hf-bert-base-b1-s128", lambda: bert(input_ids=tok))
        del bert
        for model_id, ctor in [("resnet50", torchvision.models.resnet50), ("vit-b16", torchvision.models.vit_b_16)]:
            model = ctor().to(DEV, DT).to(memory_format=torch.channels_last).eval()
            x = torch.randn(1, 3, 224, 224, device=DEV, dtype=DT).to(memory_format=torch.channels_last)
            host_profile_step(records, f"torchvision-{model_id}-b1", lambda: model(x))
            del model
        free_all()
        model = build_hf(LlamaForCausalLM, hf_llama_config("llama3.2-1b"))
        hf_decode = hf_decode_step(model, 1, 1024)
        host_profile_step(records, "hf-llama3.2-1b-decode-b1-ctx1024", hf_decode)
        del model, hf_decode
        free_all()
        m = Decoder(DECODERS["llama3.2-1b"])
        caches, tok, pos, cos, sin = decode_inputs(m, 1, 1024)
        host_profile_step(records, "torch-llama3.2-1b-decode-b1-ctx1024",
                          lambda: m.forward(tok, cos, sin, caches, pos, causal=False))
        del m, caches
        free_all()


def run_compiled_prefill(records, model_id, points):
    """torch.compile'd prefill (inductor fuses norms, RoPE, SwiGLU), replayed from a CUDA graph."""
    c = DECODERS[model_id]
    m = Decoder(c)
    with torch.no_grad():
        for batch, seq in points:
            tok = torch.randint(0, c["vocab"], (batch, seq), device=DEV)
            cos, sin = m.rope(torch.arange(seq, device=DEV))
            fwd = torch.compile(m.forward, fullgraph=True)
            g, out = capture_graph(lambda: fwd(tok, cos, sin))
            med, lo, hi = median_time(g.replay, runs=9, warmup=2, inner=None)
            del g, out, fwd
            records.append(dict(kind="prefill", impl="torch-compile-graph", runtime="graph", model=model_id,
                                batch=batch, seq_len=seq, context=0, precision="bf16", seconds=med, min_s=lo,
                                max_s=hi, notes="logits of the last position only; no KV-cache write"))
            log(f"  prefill compiled {model_id} b={batch:<3d} s={seq:<6d} {med * 1e3:8.3f} ms")
            torch._dynamo.reset()
            free_all()
    del m
    free_all()


def run_compiled_decode(records, model_id, points):
    """torch.compile (inductor, fused elementwise kernels) + CUDA graph replay: the gpt-fast recipe."""
    c = DECODERS[model_id]
    m = Decoder(c)
    with torch.no_grad():
        for batch, ctx in points:
            caches, tok, pos, cos, sin = decode_inputs(m, batch, ctx)
            # Inductor fuses the elementwise chains; the graph is captured by hand around the compiled
            # step (cudagraph trees refuse a KV cache passed in as a mutated input).
            fwd = torch.compile(m.forward, fullgraph=True)
            t0 = time.time()
            g, out = capture_graph(lambda: fwd(tok, cos, sin, caches, pos, causal=False))
            torch.cuda.synchronize()
            log(f"  compiled in {time.time() - t0:.0f} s")
            med, lo, hi = median_time(g.replay, runs=11, warmup=3, inner=5)
            del g, out
            records.append(dict(kind="decode", impl="torch-compile-graph", runtime="graph", model=model_id,
                                batch=batch, context=ctx, seq_len=1, precision="bf16", seconds=med,
                                min_s=lo, max_s=hi))
            log(f"  decode compiled b={batch:<4d} ctx={ctx:<6d} {med * 1e3:8.3f} ms")
            del caches, fwd
            torch._dynamo.reset()
            free_all()
    del m
    free_all()


def library_versions():
    """The framework versions a measurement depends on (eager host cost changes between releases)."""
    out = {}
    for name in ("transformers", "torchvision"):
        try:
            out[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - not installed
            out[name] = None
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--output", "-o", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="decode,prefill,hf,train,vision,profile")
    args = ap.parse_args()
    if torch is None:
        print("e2e: error: PyTorch is not installed. Install a CUDA (or ROCm) build of PyTorch: "
              "https://pytorch.org/get-started/locally/", file=sys.stderr)
        sys.exit(2)
    if not torch.cuda.is_available():
        print("e2e: error: PyTorch sees no GPU", file=sys.stderr)
        sys.exit(2)
    torch.manual_seed(0)
    only = set(args.only.split(","))
    records = []
    t0 = time.time()
    sections = []
    if "decode" in only:
        grid = [(1, 1024), (8, 1024), (32, 1024), (64, 1024), (128, 1024), (256, 1024), (1, 4096), (16, 4096), (64, 4096), (1, 16384)]
        eager = {(1, 1024), (32, 1024)}
        sections.append(lambda: run_decode(records, "llama3-8b", grid, set(grid), eager))
        small = [(1, 1024), (32, 1024), (128, 1024), (16, 4096)]
        for mid in ([] if args.quick else ["mistral-7b", "qwen2.5-7b", "phi3-mini", "llama3.2-1b", "llama3.2-3b", "llama2-13b"]):
            sections.append(lambda mid=mid: run_decode(records, mid, small, set(small), {(1, 1024)}))
    if "prefill" in only:
        pts = [(1, 128), (1, 512), (1, 2048), (1, 8192), (4, 2048), (16, 512)]
        sections.append(lambda: run_prefill(records, "llama3-8b", pts))
        for mid in ([] if args.quick else ["qwen2.5-7b", "llama3.2-1b", "phi3-mini"]):
            sections.append(lambda mid=mid: run_prefill(records, mid, [(1, 512), (1, 2048), (4, 2048)]))
    if "hf" in only:
        sections.append(lambda: run_hf_decode(records, "llama3.2-1b", [(1, 1024), (32, 1024)]))
        sections.append(lambda: run_hf_decode(records, "llama3-8b", [(1, 1024), (32, 1024)]))
    if "train" in only:
        sections.append(lambda: run_train(records, args.quick))
    if "vision" in only:
        sections.append(lambda: run_vision(records, args.quick))
        sections.append(lambda: run_bert(records))
    if "profile" in only:
        sections.append(lambda: run_profile(records, "llama3-8b", [("decode", 1, 1024), ("decode", 64, 1024),
                                                                   ("decode", 1, 16384), ("prefill", 1, 2048),
                                                                   ("prefill", 1, 128)]))
    if "hfprofile" in only:
        sections.append(lambda: run_hf_profile(records))
    if "hostprofile" in only:
        sections.append(lambda: run_host_profile(records))
    if "compiled" in only:
        sections.append(lambda: run_compiled_decode(records, "llama3-8b", [(1, 1024), (32, 1024), (128, 1024)]))
    if "compiled2" in only:
        sections.append(lambda: run_compiled_prefill(records, "llama3-8b", [(1, 128), (1, 512), (1, 2048), (4, 2048)]))
        for mid, pts in [("llama3.2-1b", [(1, 1024), (64, 1024)]), ("qwen2.5-7b", [(1, 1024), (64, 1024)]),
                         ("phi3-mini", [(1, 1024), (32, 2048)]), ("llama3-8b", [(16, 4096), (256, 1024)])]:
            sections.append(lambda mid=mid, pts=pts: run_compiled_decode(records, mid, pts))
    for sec in sections:
        try:
            sec()
        except Exception as exc:  # noqa: BLE001 - keep the other sections' results
            log(f"e2e: section failed: {exc.__class__.__name__}: {str(exc)[:300]}")
            free_all()
        with open(args.output, "w") as f:  # after each section: a timeout keeps what was measured
            json.dump(dict(device=torch.cuda.get_device_name(), torch=torch.__version__, cuda=torch.version.cuda,
                           libraries=library_versions(),
                           method="median of CUDA-event timings after warm-up; random bf16 weights; bench/gpu/e2e.py",
                           records=records), f, indent=1)
    log(f"e2e: {len(records)} records in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
