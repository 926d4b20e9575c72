#!/usr/bin/env python3
"""GPU microbenchmarks for `mlsysim calibrate --from FILE`.

Measures, on the local GPU, the same quantities as
catalog/calibration/measurements/H100_SXM5_80GB.json and writes them in the same
JSON format:

  memory: d2d_copy_GBps_read_plus_write, read_reduce_GBps, h2d_pinned_GBps, d2h_pinned_GBps
  gemm:   list of {m, n, k, dtype, seconds, TFLOPs[, GBps]} for bfloat16, float32 (TF32 off),
          tf32 and fp8_e4m3 (when the GPU and PyTorch support it)
  extended sections (skip with --no-extended): bandwidth_ramp, vector (incl. stride-2 operands),
          attention, conv, gemm_short_k (hidden-768 weight GEMMs; recorded, not fitted yet),
          gemm_alignment (GPT-2 LM-head shapes, vocabulary 50257 vs 50304; recorded
          for a future alignment term, not fitted yet), gemm_training_layouts (a linear layer's
          forward, input-gradient and weight-gradient GEMMs; recorded, not fitted yet),
          gemm_sustained (8192^3 GEMMs back to back for seconds, per-window rate, SM clock and
          power: burst vs sustained throughput; recorded, not fitted yet), fp8_training (FP8 GEMMs
          with fast vs fp32-promoted accumulation, bf16 -> fp8 casts; recorded, not fitted yet),
          board_power (idle, copy and GEMM board power: `calibrate` fits the power model's
          floor, memory and compute terms from it), launch (+ eager framework host cost)

Timing: CUDA events around a batch of back-to-back launches, median over N timed
samples after warm-up; inputs are random. Needs only PyTorch (no numpy).

    python3 bench/gpu/microbench.py --output my_gpu.json [--quick] [--runs N] [--device 0]
"""
import argparse
import json
import os
import statistics
import sys
import time

SQUARES = [1024, 2048, 4096, 8192, 16384]
# (n, k) of the weight GEMMs of a Llama-3-8B/70B-sized layer; m = tokens in flight
SKINNY_NK = [(6144, 4096), (28672, 4096), (4096, 14336), (10240, 8192)]
SKINNY_M = [1, 8, 32, 128, 512, 2048]
FP8_SKINNY_M = [128, 512, 2048]
# Grids that fill a 132-SM H100 one to three times over (128 x 128 tiles): whether cuBLAS runs them in
# whole waves (the engine's model: 136 tiles take two) or balances the leftover tiles (Stream-K, a
# tile that fits). Published H100 rows disagree by shape (validation/README.md, "Known limitations").
WAVE_PROBES = [(1024, 2112, 7168), (2048, 2112, 7168), (1024, 2176, 4096), (1024, 2304, 4096),
               (1152, 2048, 4096), (768, 5632, 4096), (1536, 4096, 4096)]
ELEM_BYTES = {"bfloat16": 2, "float32": 4}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def fail(msg):
    print(f"microbench: error: {msg}", file=sys.stderr)
    sys.exit(2)


def import_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        fail("PyTorch is not installed. Install a CUDA (or ROCm) build of PyTorch: https://pytorch.org/get-started/locally/")
    import torch
    if not torch.cuda.is_available():
        fail("PyTorch sees no GPU (torch.cuda.is_available() is False). "
             f"torch {torch.__version__}, built with CUDA {torch.version.cuda}. Check the driver and CUDA_VISIBLE_DEVICES.")
    return torch


def time_one_call(torch, fn):
    """Seconds of one call of fn(), CUDA events around it (at least 0.1 us)."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    end.record()
    torch.cuda.synchronize()
    return max(start.elapsed_time(end) / 1e3, 1e-7)


class Timer:
    """Median time per call of fn(), measured with CUDA events."""

    def __init__(self, torch, runs, warmup, min_sample_s):
        self.torch = torch
        self.runs = runs
        self.warmup = warmup
        self.min_sample_s = min_sample_s

    def __call__(self, fn):
        torch = self.torch
        for _ in range(self.warmup):
            fn()
        torch.cuda.synchronize()
        # choose a launch count per sample so that one sample lasts >= min_sample_s
        inner = max(1, min(1000, int(self.min_sample_s / time_one_call(torch, fn))))
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        samples = []
        for _ in range(self.runs):
            start.record()
            for _ in range(inner):
                fn()
            end.record()
            torch.cuda.synchronize()
            samples.append(start.elapsed_time(end) / 1e3 / inner)
        return statistics.median(samples)


def bench_memory(torch, timer, dev, quick):
    n_bytes = (256 if quick else 1024) * 2**20
    n = n_bytes // 4
    src = torch.rand(n, device=dev, dtype=torch.float32)
    dst = torch.empty_like(src)
    t = timer(lambda: dst.copy_(src))
    d2d = 2 * n_bytes / t / 1e9
    log(f"  d2d copy          {d2d:9.1f} GB/s (read+write, {n_bytes >> 20} MiB)")
    t = timer(lambda: torch.sum(src))
    red = n_bytes / t / 1e9
    log(f"  read (reduce)     {red:9.1f} GB/s")
    del dst
    h_bytes = (128 if quick else 512) * 2**20
    host = torch.empty(h_bytes // 4, dtype=torch.float32, pin_memory=True)
    host.uniform_()
    gpu = torch.empty(h_bytes // 4, device=dev, dtype=torch.float32)
    t = timer(lambda: gpu.copy_(host, non_blocking=True))
    h2d = h_bytes / t / 1e9
    t = timer(lambda: host.copy_(gpu, non_blocking=True))
    d2h = h_bytes / t / 1e9
    log(f"  h2d pinned        {h2d:9.1f} GB/s")
    log(f"  d2h pinned        {d2h:9.1f} GB/s")
    del src, host, gpu
    torch.cuda.empty_cache()
    return {
        "d2d_copy_GBps_read_plus_write": round(d2d, 1),
        "read_reduce_GBps": round(red, 1),
        "h2d_pinned_GBps": round(h2d, 1),
        "d2h_pinned_GBps": round(d2h, 1),
    }


def fits(torch, dev, m, n, k, elem):
    free, _ = torch.cuda.mem_get_info(dev)
    return (m * k + k * n + m * n) * elem * 1.3 < free


def log_gemm(label, rec):
    log(f"  {label:9s} m={rec['m']:<6d} n={rec['n']:<6d} k={rec['k']:<6d} {rec['seconds'] * 1e6:10.1f} us "
        f"{rec['TFLOPs']:9.1f} TFLOP/s")


def gemm_record(m, n, k, dtype, seconds, with_bytes):
    rec = {"m": m, "n": n, "k": k, "dtype": dtype, "seconds": float(f"{seconds:.4g}"),
           "TFLOPs": round(2.0 * m * n * k / seconds / 1e12, 7)}
    if with_bytes:
        rec["GBps"] = round((m * k + k * n + m * n) * ELEM_BYTES[dtype] / seconds / 1e9, 7)
    return rec


def plain_gemm(torch, dev, m, n, k, dtype_name):
    """A callable running one m x n x k torch.mm in bfloat16 or float32; it holds its operands."""
    tdt = torch.bfloat16 if dtype_name == "bfloat16" else torch.float32
    a = torch.randn(m, k, device=dev, dtype=tdt)
    b = torch.randn(k, n, device=dev, dtype=tdt)
    c = torch.empty(m, n, device=dev, dtype=tdt)
    return lambda: torch.mm(a, b, out=c)


def bench_matmul(torch, timer, dev, m, n, k, dtype_name):
    return timer(plain_gemm(torch, dev, m, n, k, dtype_name))


def fp8_dtype(torch, dev):
    """The e4m3 format the device's matrix units take: AMD's CDNA3 (MI300X/MI325X, gfx942) uses the
    'fnuz' variant (no negative zero, exponent bias 8); NVIDIA Hopper/Ada/Blackwell and AMD CDNA4 the
    OCP 'fn' one. Same bytes per element and the same rate, so the records keep the name fp8_e4m3."""
    if torch.version.hip is not None and hasattr(torch, "float8_e4m3fnuz"):
        arch = getattr(torch.cuda.get_device_properties(dev), "gcnArchName", "")
        if arch.startswith("gfx94"):
            return torch.float8_e4m3fnuz
    return torch.float8_e4m3fn


def fp8_supported(torch, dev):
    if not hasattr(torch, "float8_e4m3fn") or not hasattr(torch, "_scaled_mm"):
        return False, "this PyTorch has no float8_e4m3fn/_scaled_mm"
    if torch.version.hip is None and torch.cuda.get_device_capability(dev) < (8, 9):
        return False, "FP8 tensor cores need compute capability >= 8.9"
    try:
        f8 = fp8_dtype(torch, dev)
        a = torch.randn(32, 32, device=dev).to(f8)
        b = torch.randn(32, 32, device=dev).to(f8)
        one = torch.ones((), device=dev, dtype=torch.float32)
        torch._scaled_mm(a, b.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
        torch.cuda.synchronize()
    except Exception as exc:  # noqa: BLE001 - any failure means unsupported here
        return False, f"torch._scaled_mm failed: {exc.__class__.__name__}: {str(exc)[:120]}"
    return True, ""


def fp8_gemm(torch, dev, m, n, k, fast_accum=False):
    """A callable running one m x n x k FP8 (e4m3) GEMM with bf16 output; it holds its operands.
    fast_accum: accumulate in the tensor cores' own precision (Transformer Engine's forward GEMMs)
    instead of promoting partial sums to fp32 (its gradient GEMMs, and _scaled_mm's default)."""
    f8 = fp8_dtype(torch, dev)
    a = torch.randn(m, k, device=dev).to(f8)
    b = torch.randn(n, k, device=dev).to(f8)  # column-major B via .t()
    one = torch.ones((), device=dev, dtype=torch.float32)
    return lambda: torch._scaled_mm(a, b.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16,
                                    use_fast_accum=fast_accum)


def bench_fp8(torch, timer, dev, m, n, k):
    return timer(fp8_gemm(torch, dev, m, n, k))


# ---- extended measurements (calibrate the non-GEMM operator classes) -------------------------

def _rotating(torch, make, total_bytes, each_bytes):
    """Several input sets so that repeated calls do not hit in L2 (50-60 MB on Hopper)."""
    sets = max(1, min(64, int(total_bytes // max(each_bytes, 1))))
    return [make() for _ in range(sets)]


def bench_bandwidth_ramp(torch, timer, dev, quick):
    """Read bandwidth of one reduction kernel vs. bytes per kernel: the ramp from launch-bound to
    streaming that every memory-bound operator of a decode step sits on."""
    out = []
    sizes_mib = [0.25, 1, 4, 16, 64, 256] if quick else [0.0625, 0.25, 1, 4, 16, 32, 64, 128, 256, 1024]
    for mib in sizes_mib:
        n = int(mib * 2**20) // 2
        bufs = _rotating(torch, lambda: torch.randn(n, device=dev, dtype=torch.bfloat16), 512 * 2**20, 2 * n)
        state = {"i": 0}

        def fn():
            state["i"] = (state["i"] + 1) % len(bufs)
            torch.sum(bufs[state["i"]], dtype=torch.float32)
        t = timer(fn)
        out.append({"bytes": 2 * n, "seconds": float(f"{t:.4g}"), "GBps": round(2 * n / t / 1e9, 1)})
        log(f"  read {mib:9.4f} MiB  {t * 1e6:9.2f} us  {2 * n / t / 1e9:8.1f} GB/s")
        del bufs
    torch.cuda.empty_cache()
    return out


def bench_vector(torch, timer, dev, quick):
    """Transformer vector operators (RMSNorm, SwiGLU gate, residual add, rotary) on [tokens, hidden]."""
    F = torch.nn.functional
    out = []
    hidden, ffn = 4096, 14336
    tokens_list = [1, 64, 2048, 16384] if quick else [1, 8, 64, 512, 2048, 8192, 16384]
    for tokens in tokens_list:
        x = torch.randn(tokens, hidden, device=dev, dtype=torch.bfloat16)
        r = torch.randn_like(x)
        xf = x.float()
        w = torch.randn(hidden, device=dev, dtype=torch.bfloat16)
        gu = torch.randn(tokens, 2 * ffn, device=dev, dtype=torch.bfloat16)
        g, u = gu[:, :ffn], gu[:, ffn:]
        r_ffn = torch.randn(tokens, ffn, device=dev, dtype=torch.bfloat16)
        e = 2  # bytes per bf16 element
        cases = [
            ("rms_norm", lambda: F.rms_norm(x, (hidden,), w, 1e-5), 2 * tokens * hidden * e, 4 * tokens * hidden),
            ("add", lambda: torch.add(x, r), 3 * tokens * hidden * e, tokens * hidden),
            ("silu_mul", lambda: F.silu(g) * u, 4 * tokens * ffn * e, 5 * tokens * ffn),
            # The two kernels of eager SwiGLU apart: SiLU of the gate half (a row-strided view of the
            # fused gate/up output) and the multiply by the up half. The e2e profile has the SiLU
            # kernel slower per byte than the multiply; these rows time each (2 and 3 tensor-sizes).
            ("silu_half", lambda: F.silu(g), 2 * tokens * ffn * e, 4 * tokens * ffn),
            ("mul_half", lambda: torch.mul(r_ffn, u), 3 * tokens * ffn * e, tokens * ffn),
            # Interleaved-RoPE style operands: stride-2 views defeat vectorized loads.
            ("mul_strided", lambda: x[:, ::2] * r[:, 1::2], 3 * tokens * hidden // 2 * e, tokens * hidden // 2),
            # Autocast training's residual add: fp32 stream + bf16 branch -> fp32 (4 + 2 + 4 bytes).
            # Mixed dtypes need dynamic casting, which may take the non-vectorized kernel path.
            ("add_mixed_dtype", lambda: torch.add(xf, r), tokens * hidden * (4 + 2 + 4), tokens * hidden),
        ]
        for name, fn, nbytes, flops in cases:
            t = timer(fn)
            width = {"silu_mul": ffn, "silu_half": ffn, "mul_half": ffn,
                     "mul_strided": hidden // 2}.get(name, hidden)
            out.append({"op": name, "tokens": tokens, "width": width,
                        "bytes": nbytes, "flops": flops, "seconds": float(f"{t:.4g}"),
                        "GBps": round(nbytes / t / 1e9, 1)})
            log(f"  {name:15s} tokens={tokens:<6d} {t * 1e6:9.2f} us {nbytes / t / 1e9:8.1f} GB/s")
        del x, xf, r, gu, r_ffn
    torch.cuda.empty_cache()
    return out


def bench_gemm_alignment(torch, timer, dev, quick):
    """LM-head GEMMs with GPT-2's vocabulary (50257, not a multiple of 8) against the padded 50304:
    forward x W^T, input gradient and weight gradient, bf16. Misaligned leading dimensions keep
    cuBLAS off its 16-byte-aligned tensor-core kernels."""
    tokens, d = (4096 if quick else 8192), 768
    out = []
    for vocab in (50257, 50304):
        for m, n, k in ((tokens, vocab, d), (tokens, d, vocab), (vocab, d, tokens)):
            if not fits(torch, dev, m, n, k, 2):
                continue
            t = bench_matmul(torch, timer, dev, m, n, k, "bfloat16")
            rec = gemm_record(m, n, k, "bfloat16", t, with_bytes=True)
            rec["aligned"] = vocab % 8 == 0
            out.append(rec)
            log(f"  vocab {vocab} m={m:<6d} n={n:<6d} k={k:<6d} {t * 1e6:9.1f} us {rec['TFLOPs']:7.1f} TFLOP/s")
    torch.cuda.empty_cache()
    return out


def bench_gemm_short_k(torch, timer, dev, quick):
    """The weight GEMMs of a hidden-768 layer (GPT-2 small, BERT-base) at 8192 tokens, bf16: with
    K = 768 each output tile runs only 12 k-steps of 64, so its fixed prologue and epilogue weigh
    more than in the 4096-wide grid. Recorded for a future K term, not fitted yet."""
    tokens = 4096 if quick else 8192
    out = []
    for n, k in ((2304, 768), (768, 768), (3072, 768), (768, 3072)):
        t = bench_matmul(torch, timer, dev, tokens, n, k, "bfloat16")
        rec = gemm_record(tokens, n, k, "bfloat16", t, with_bytes=True)
        out.append(rec)
        log(f"  short-K m={tokens:<6d} n={n:<6d} k={k:<6d} {t * 1e6:9.1f} us {rec['TFLOPs']:7.1f} TFLOP/s")
    torch.cuda.empty_cache()
    return out


def bench_gemm_training_layouts(torch, timer, dev, quick):
    """One linear layer's three GEMMs in a training step, bf16, as autograd issues them on row-major
    tensors: forward Y = X W^T, input gradient dX = dY W, weight gradient dW = dY^T X (a transposed
    operand and the token count as K). Llama-3.2-1B-like shapes (hidden 2048, FFN 8192) at 8192
    tokens. The calibration fits forward-style GEMMs only; these rows show whether the backward
    layouts need their own efficiency (recorded, not fitted yet)."""
    tokens = 4096 if quick else 8192
    out = []
    for n_out, n_in in ((2048, 2048), (8192, 2048), (2048, 8192)):
        x = torch.randn(tokens, n_in, device=dev, dtype=torch.bfloat16)
        w = torch.randn(n_out, n_in, device=dev, dtype=torch.bfloat16)
        dy = torch.randn(tokens, n_out, device=dev, dtype=torch.bfloat16)
        cases = (("forward", tokens, n_out, n_in, lambda: torch.matmul(x, w.t())),
                 ("input_grad", tokens, n_in, n_out, lambda: torch.matmul(dy, w)),
                 ("weight_grad", n_out, n_in, tokens, lambda: torch.matmul(dy.t(), x)))
        for role, m, n, k, fn in cases:
            t = timer(fn)
            rec = gemm_record(m, n, k, "bfloat16", t, with_bytes=True)
            rec["role"] = role
            out.append(rec)
            log(f"  {role:11s} m={m:<6d} n={n:<6d} k={k:<6d} {t * 1e6:9.1f} us {rec['TFLOPs']:7.1f} TFLOP/s")
        del x, w, dy
    torch.cuda.empty_cache()
    return out


def bench_fp8_training(torch, timer, dev, quick):
    """What FP8 training adds around its GEMMs (Transformer Engine's recipe): the GEMM rate with
    fast accumulation (its forward GEMMs) against fp32-promoted accumulation (its gradient GEMMs and
    the grid above), and the bf16 -> fp8 conversions that feed them: a plain cast (read 2 B, write
    1 B) and a cast of the transposed tensor (what a weight-gradient GEMM reads). Llama-3-8B layer
    shapes at 8192 tokens. Recorded, not fitted yet: the engine assumes fp32-promoted rates for all
    three GEMMs and streams the conversions at its element-wise bandwidth."""
    tokens = 4096 if quick else 8192
    out = {"gemm": [], "casts": []}
    for n, k in ((4096, 4096), (14336, 4096), (4096, 14336)):
        for fast in (False, True):
            t = timer(fp8_gemm(torch, dev, tokens, n, k, fast_accum=fast))
            rec = gemm_record(tokens, n, k, "fp8_e4m3", t, with_bytes=False)
            rec["fast_accum"] = fast
            out["gemm"].append(rec)
            log(f"  fp8 fast_accum={str(fast):5s} m={tokens:<6d} n={n:<6d} k={k:<6d} {t * 1e6:9.1f} us "
                f"{rec['TFLOPs']:7.1f} TFLOP/s")
    for width in (4096, 14336):
        x = torch.randn(tokens, width, device=dev, dtype=torch.bfloat16)
        f8 = fp8_dtype(torch, dev)
        cases = (("cast", lambda: x.to(f8)),
                 ("cast_transposed", lambda: x.t().contiguous().to(f8)))
        for name, fn in cases:
            t = timer(fn)
            nbytes = tokens * width * 3  # read bf16, write fp8 (the transpose's bf16 copy not counted)
            out["casts"].append({"op": name, "tokens": tokens, "width": width, "bytes": nbytes,
                                 "seconds": float(f"{t:.4g}"), "GBps": round(nbytes / t / 1e9, 1)})
            log(f"  {name:15s} [{tokens} x {width}] {t * 1e6:9.1f} us {nbytes / t / 1e9:8.1f} GB/s")
        del x
    torch.cuda.empty_cache()
    return out


def run_section(results, key, bench):
    """Runs one optional section into results[key]; a failure is logged and the others' results kept."""
    try:
        results[key] = bench()
    except Exception as exc:  # noqa: BLE001 - keep the other sections' results
        log(f"  skipped: {exc.__class__.__name__}: {str(exc)[:200]}")


def _device_sensor(torch, dev, name):
    """torch.cuda.clock_rate / power_draw (need pynvml); None where unavailable."""
    try:
        return float(getattr(torch.cuda, name)(dev))
    except Exception:  # noqa: BLE001 - a missing sensor must not lose the timing
        return None


def _milliwatts_to_watts(mw):
    return None if mw is None else mw / 1000.0  # torch.cuda.power_draw reports NVML's milliwatts


def bench_gemm_sustained(torch, dev, quick):
    """Back-to-back 8192^3 GEMMs for several seconds, timed per window, with the SM clock and board
    power where PyTorch can read them. The GEMM grid times each shape for ~0.1 s, at the boost clock;
    a training step or a long prefill keeps the tensor cores busy for seconds, long enough for the
    power limit to lower the clock. The first window is the burst rate, the median of the second half
    the sustained one (`mlsysim calibrate` fits the bfloat16 row as the device's sustained matmul
    rate, the clock its training steps run at)."""
    s = 8192
    total_s = 3.0 if quick else 12.0
    window_s = 0.25
    out = []
    gemms = [("bfloat16", lambda: plain_gemm(torch, dev, s, s, s, "bfloat16"))]
    if fp8_supported(torch, dev)[0]:
        gemms.append(("fp8_e4m3", lambda: fp8_gemm(torch, dev, s, s, s)))
    for label, make in gemms:
        fn = make()
        fn()
        torch.cuda.synchronize()
        per_window = max(1, int(window_s / time_one_call(torch, fn)))
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        windows, elapsed = [], 0.0
        while elapsed < total_s:
            start.record()
            for _ in range(per_window):
                fn()
            end.record()
            torch.cuda.synchronize()
            t = start.elapsed_time(end) / 1e3
            elapsed += t
            windows.append({"t_s": round(elapsed, 4),
                            "TFLOPs": 2.0 * s ** 3 * per_window / t / 1e12,
                            "sm_clock_mhz": _device_sensor(torch, dev, "clock_rate"),
                            "power_w": _milliwatts_to_watts(_device_sensor(torch, dev, "power_draw"))})
        tail = sorted(w["TFLOPs"] for w in windows[len(windows) // 2:])
        rec = {"m": s, "n": s, "k": s, "dtype": label, "seconds_total": elapsed, "windows": windows,
               "burst_TFLOPs": windows[0]["TFLOPs"], "sustained_TFLOPs": tail[len(tail) // 2]}
        out.append(rec)
        log(f"  {label:9s} burst {rec['burst_TFLOPs']:7.1f} TFLOP/s, sustained {rec['sustained_TFLOPs']:7.1f} TFLOP/s "
            f"over {elapsed:.1f} s (clock {windows[0]['sm_clock_mhz']} -> {windows[-1]['sm_clock_mhz']} MHz, "
            f"power {windows[-1]['power_w']} W)")
        del fn
    torch.cuda.empty_cache()
    return out


def _power_while_running(torch, dev, fn, seconds):
    """Median board power (W) over the second half of `seconds` of back-to-back `fn` calls, read
    while the queue keeps the GPU busy (the readings come between launches, not after a sync, which
    would find the GPU idle), and the time per call."""
    per_call = time_one_call(torch, fn)
    batch = max(1, int(0.05 / per_call))  # ~50 ms of work per host loop: the queue stays full
    readings, start = [], time.time()
    while time.time() - start < seconds:
        for _ in range(batch):
            fn()
        if time.time() - start > seconds / 2:
            readings.append(_milliwatts_to_watts(_device_sensor(torch, dev, "power_draw")))
    torch.cuda.synchronize()
    readings = [r for r in readings if r is not None]
    return (statistics.median(readings) if readings else None), per_call


def bench_board_power(torch, dev, quick):
    """Board power for `mlsysim calibrate` (physics/power.hpp): idle with this process's context and
    buffers held, a device-to-device copy (a kernel body that is all memory traffic), and a large
    bf16 GEMM (compute-bound). NVML's power reading averages over about a second, so each state runs
    for several seconds and the second half is kept."""
    seconds = 3.0 if quick else 8.0
    n = 1 << 28  # 1 GiB of float32 each way
    a = torch.empty(n, device=dev, dtype=torch.float32).uniform_()
    b = torch.empty_like(a)
    torch.cuda.synchronize()
    time.sleep(seconds / 2)
    idle = [_milliwatts_to_watts(_device_sensor(torch, dev, "power_draw")) for _ in range(5)]
    idle = [w for w in idle if w is not None]
    if not idle:
        raise RuntimeError("no power sensor (torch.cuda.power_draw needs pynvml)")
    copy_w, copy_s = _power_while_running(torch, dev, lambda: b.copy_(a), seconds)
    s = 8192
    x = torch.randn(s, s, device=dev, dtype=torch.bfloat16)
    y = torch.randn(s, s, device=dev, dtype=torch.bfloat16)
    gemm_w, gemm_s = _power_while_running(torch, dev, lambda: x @ y, seconds)
    out = {"idle_w": statistics.median(idle),
           "copy": {"bytes": 2 * 4 * n, "GBps": 2 * 4 * n / copy_s / 1e9, "power_w": copy_w},
           "gemm": {"m": s, "n": s, "k": s, "dtype": "bfloat16", "TFLOPs": 2.0 * s ** 3 / gemm_s / 1e12,
                    "power_w": gemm_w}}
    log(f"  idle {out['idle_w']:.0f} W, copy {copy_w} W at {out['copy']['GBps']:.0f} GB/s, "
        f"gemm {gemm_w} W at {out['gemm']['TFLOPs']:.0f} TFLOP/s")
    del a, b, x, y
    torch.cuda.empty_cache()
    return out


def bench_attention(torch, timer, dev, quick):
    """scaled_dot_product_attention (bf16): causal prefill and single-token decode over a KV cache,
    32 query heads, head_dim 128, 8 KV heads (GQA, Llama-3-8B) and 32 (MHA)."""
    F = torch.nn.functional
    out = []
    d = 128

    def sdpa(q, k, v, causal):
        gqa = q.shape[1] != k.shape[1]
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa)

    prefill = [(1, 512), (1, 2048), (1, 8192), (4, 2048)] if quick else \
        [(1, 128), (1, 512), (1, 1024), (1, 2048), (1, 4096), (1, 8192), (1, 16384), (4, 2048), (8, 1024), (16, 512)]
    for heads, kvh in [(32, 8), (32, 32)]:
        for b, s in prefill:
            q = torch.randn(b, heads, s, d, device=dev, dtype=torch.bfloat16)
            k = torch.randn(b, kvh, s, d, device=dev, dtype=torch.bfloat16)
            v = torch.randn_like(k)
            t = timer(lambda: sdpa(q, k, v, True))
            flops = 4.0 * b * heads * d * s * (s + 1) / 2  # causal: QK^T and PV over the lower triangle
            nbytes = 2 * (2 * q.numel() + 2 * k.numel())
            out.append({"kind": "prefill", "batch": b, "heads": heads, "kv_heads": kvh, "head_dim": d,
                        "q_len": s, "kv_len": s, "causal": True, "flops": flops, "bytes": nbytes,
                        "seconds": float(f"{t:.4g}"), "TFLOPs": round(flops / t / 1e12, 2)})
            log(f"  prefill h={heads}/{kvh} b={b:<3d} s={s:<6d} {t * 1e6:9.1f} us {flops / t / 1e12:7.1f} TFLOP/s")
            del q, k, v
    # Encoder attention (bidirectional, head_dim 64: ViT-B/16, BERT-base), including lengths that are
    # not a multiple of the kernel tile (197 = ViT's 196 patches + class token). Its own kind, so
    # the causal fit does not mix head dims; for fitting a head-dim and tile-padding term.
    encoder = [(32, 197), (256, 197)] if quick else [(32, 197), (256, 197), (32, 128), (32, 384), (32, 512), (8, 2048)]
    for b, s in encoder:
        q = torch.randn(b, 12, s, 64, device=dev, dtype=torch.bfloat16)
        k, v = torch.randn_like(q), torch.randn_like(q)
        t = timer(lambda: sdpa(q, k, v, False))
        flops = 4.0 * b * 12 * 64 * s * s
        out.append({"kind": "encoder", "batch": b, "heads": 12, "kv_heads": 12, "head_dim": 64,
                    "q_len": s, "kv_len": s, "causal": False, "flops": flops,
                    "bytes": 2 * 4 * q.numel(), "seconds": float(f"{t:.4g}"),
                    "TFLOPs": round(flops / t / 1e12, 2)})
        log(f"  encoder h=12 d=64 b={b:<3d} s={s:<6d} {t * 1e6:9.1f} us {flops / t / 1e12:7.1f} TFLOP/s")
        del q, k, v
    decode = [(1, 1024), (1, 8192), (32, 1024), (64, 4096)] if quick else \
        [(1, 512), (1, 1024), (1, 4096), (1, 16384), (8, 1024), (8, 4096), (32, 1024), (32, 4096), (64, 1024), (128, 1024), (64, 4096)]
    for heads, kvh in [(32, 8), (32, 32)]:
        for b, ctx in decode:
            q = torch.randn(b, heads, 1, d, device=dev, dtype=torch.bfloat16)
            k = torch.randn(b, kvh, ctx, d, device=dev, dtype=torch.bfloat16)
            v = torch.randn_like(k)
            t = timer(lambda: sdpa(q, k, v, False))
            nbytes = 2 * (2 * k.numel() + 2 * q.numel())
            flops = 4.0 * b * heads * d * ctx
            out.append({"kind": "decode", "batch": b, "heads": heads, "kv_heads": kvh, "head_dim": d,
                        "q_len": 1, "kv_len": ctx, "causal": False, "flops": flops, "bytes": nbytes,
                        "seconds": float(f"{t:.4g}"), "GBps": round(nbytes / t / 1e9, 1)})
            log(f"  decode  h={heads}/{kvh} b={b:<3d} ctx={ctx:<6d} {t * 1e6:9.1f} us {nbytes / t / 1e9:8.1f} GB/s")
            del q, k, v
    out += attention_backend_rows(torch, timer, dev, sdpa)
    torch.cuda.empty_cache()
    return out


def attention_backend_rows(torch, timer, dev, sdpa):
    """The same causal/bidirectional prefill through each SDPA backend PyTorch offers, forced one at a
    time (kind "prefill_backend", field "backend"): FLASH_ATTENTION is FlashAttention-2, whose
    Ampere-style mma.sync instructions run on Hopper below the wgmma rate that cuDNN's kernel reaches.
    The shapes match the FlashAttention-3 paper's benchmark (hidden 2048 = heads x head dim, head
    dims 64, 128 and 256, batch 16k/seq). `mlsysim calibrate --from` fits the FLASH_ATTENTION rows
    into the device's FlashAttention-2 rate (`--attention fa2`) and the CUDNN_ATTENTION rows (the
    default kernel on Hopper) into the default kernel's head-dim tables; EFFICIENT_ATTENTION rows are
    recorded for comparison. Each shape is also timed backward ("pass": "backward"), which fits the
    backward rates of both kernels."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        log("  attention backends: torch.nn.attention not available, skipped")
        return []
    rows = []
    backends = [(name, getattr(SDPBackend, name, None))
                for name in ("FLASH_ATTENTION", "CUDNN_ATTENTION", "EFFICIENT_ATTENTION")]
    for (name, backend), d in ((nb, d) for nb in backends for d in (64, 128, 256)):
        heads = 2048 // d
        if backend is None:
            continue
        for s in (2048, 8192, 16384):
            b = max(1, 16384 // s)
            for causal in (True, False):
                q = torch.randn(b, heads, s, d, device=dev, dtype=torch.bfloat16)
                k, v = torch.randn_like(q), torch.randn_like(q)
                try:
                    with sdpa_kernel(backend):
                        t = timer(lambda: sdpa(q, k, v, causal))
                except RuntimeError as e:  # the backend does not take this shape/device
                    log(f"  attention {name}: skipped ({str(e).splitlines()[0][:80]})")
                    del q, k, v
                    break
                flops = 4.0 * b * heads * d * (s * (s + 1) / 2 if causal else s * s)
                rows.append({"kind": "prefill_backend", "backend": name, "batch": b, "heads": heads,
                             "kv_heads": heads, "head_dim": d, "q_len": s, "kv_len": s, "causal": causal,
                             "flops": flops, "bytes": 2 * 4 * q.numel(), "seconds": float(f"{t:.4g}"),
                             "TFLOPs": round(flops / t / 1e12, 2)})
                log(f"  attention {name:20s} d={d:<3d} b={b:<3d} s={s:<6d} causal={causal!s:5s} "
                    f"{flops / t / 1e12:7.1f} TFLOP/s")
                backward = attention_backward_row(torch, timer, sdpa, sdpa_kernel, backend, q, causal)
                if backward is not None:
                    t_back = backward
                    rows.append({**rows[-1], "pass": "backward", "flops": 2.5 * flops,
                                 "seconds": float(f"{t_back:.4g}"), "TFLOPs": round(2.5 * flops / t_back / 1e12, 2)})
                    log(f"  attention {name:20s} d={d:<3d} b={b:<3d} s={s:<6d} causal={causal!s:5s} "
                        f"{2.5 * flops / t_back / 1e12:7.1f} TFLOP/s backward")
                del q, k, v
    return rows


def attention_backward_row(torch, timer, sdpa, sdpa_kernel, backend, q, causal):
    """Seconds of one attention backward call through `backend` (dQ, dK, dV from dO, the forward run
    once outside the timing, as the FlashAttention papers time it), or None where the backend has no
    backward for this shape. Backward FLOPs are 2.5x the forward's (FlashAttention-2 paper)."""
    q = q.detach().requires_grad_(True)
    k, v = torch.randn_like(q, requires_grad=True), torch.randn_like(q, requires_grad=True)
    try:
        with sdpa_kernel(backend):
            out = sdpa(q, k, v, causal)
            d_out = torch.randn_like(out)
            return timer(lambda: torch.autograd.grad(out, (q, k, v), d_out, retain_graph=True))
    except RuntimeError:
        return None
    finally:
        del q, k, v


RESNET_CONVS = [  # (cin, cout, kernel, stride, input H=W) of ResNet-50 v1.5 stages
    (3, 64, 7, 2, 224), (64, 64, 1, 1, 56), (64, 64, 3, 1, 56), (64, 256, 1, 1, 56),
    (128, 128, 3, 2, 56), (256, 256, 3, 1, 14), (1024, 256, 1, 1, 14), (512, 512, 3, 1, 7), (512, 2048, 1, 1, 7)]


def bench_conv(torch, timer, dev, quick):
    """cuDNN convolutions (bf16, channels_last) at ResNet-50 shapes."""
    F = torch.nn.functional
    torch.backends.cudnn.benchmark = True
    out = []
    for batch in ([32, 256] if quick else [1, 32, 256]):
        for cin, cout, ks, stride, hw in RESNET_CONVS:
            x = torch.randn(batch, cin, hw, hw, device=dev, dtype=torch.bfloat16).to(memory_format=torch.channels_last)
            w = torch.randn(cout, cin, ks, ks, device=dev, dtype=torch.bfloat16).to(memory_format=torch.channels_last)
            pad = ks // 2
            t = timer(lambda: F.conv2d(x, w, stride=stride, padding=pad))
            ho = (hw + 2 * pad - ks) // stride + 1
            flops = 2.0 * batch * cout * ho * ho * cin * ks * ks
            nbytes = 2 * (x.numel() + w.numel() + batch * cout * ho * ho)
            out.append({"batch": batch, "cin": cin, "cout": cout, "kernel": ks, "stride": stride, "hw": hw,
                        "flops": flops, "bytes": nbytes, "seconds": float(f"{t:.4g}"),
                        "TFLOPs": round(flops / t / 1e12, 2)})
            log(f"  conv b={batch:<4d} {cin:4d}->{cout:<4d} k{ks} s{stride} {hw:3d}px {t * 1e6:9.1f} us {flops / t / 1e12:7.1f} TFLOP/s")
            del x, w
    torch.backends.cudnn.benchmark = False
    torch.cuda.empty_cache()
    return out


def graph_replay_seconds(torch, fn, runs):
    """Median seconds of one replay of fn captured in a CUDA graph (warmed up on a side stream first,
    as capture requires)."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    g.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples = []
    for _ in range(runs):
        start.record()
        g.replay()
        end.record()
        torch.cuda.synchronize()
        samples.append(start.elapsed_time(end) / 1e3)
    return statistics.median(samples)


def bench_launch(torch, dev, quick):
    """Per-kernel cost of tiny kernels: issued one by one from Python (eager), and replayed from a
    captured CUDA graph (graph). Each kernel adds 1 to a 1-element tensor."""
    x = torch.zeros(1, device=dev)
    n = 200 if quick else 1000
    for _ in range(50):
        x.add_(1)
    torch.cuda.synchronize()
    samples = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(n):
            x.add_(1)
        torch.cuda.synchronize()
        samples.append((time.perf_counter() - t0) / n)
    eager = statistics.median(samples)

    def tiny_chain():
        for _ in range(n):
            x.add_(1)
    graph = graph_replay_seconds(torch, tiny_chain, runs=7) / n
    log(f"  tiny kernel: eager {eager * 1e6:.2f} us/launch, CUDA graph {graph * 1e6:.2f} us/kernel")
    return {"eager_us_per_kernel": round(eager * 1e6, 3), "graph_us_per_kernel": round(graph * 1e6, 3),
            "kernels": n}


def bench_graph_chain(torch, dev):
    """Per-kernel time of the small kernels of one decode step, replayed from a CUDA graph: a chain
    of 16 layer-shaped groups at one token (RMSNorm, stride-2 multiplies, add, stack copy, SiLU,
    multiply, residual add). The engine's graph-runtime kernel_overhead stands for this average;
    a tiny add_ alone (bench_launch) understates it and a streaming kernel's ramp overstates it."""
    F = torch.nn.functional
    h, d, ffn = 4096, 128, 14336
    x = torch.randn(1, h, device=dev, dtype=torch.bfloat16)
    w = torch.ones(h, device=dev, dtype=torch.bfloat16)
    q = torch.randn(1, 32, 1, d, device=dev, dtype=torch.bfloat16)
    cos = torch.randn(1, d // 2, device=dev, dtype=torch.bfloat16)
    gu = torch.randn(1, 2 * ffn, device=dev, dtype=torch.bfloat16)

    def group(y):
        hs = F.rms_norm(y, (h,), w, 1e-5)
        x1, x2 = q[..., ::2], q[..., 1::2]
        r = torch.stack((x1 * cos - x2 * cos, x1 * cos + x2 * cos), dim=-1)
        g, u = gu.chunk(2, dim=-1)
        return y + hs + r.flatten().view(1, h) + (F.silu(g) * u)[:, :h]

    def chain():
        y = x
        for _ in range(16):
            y = group(y)
        return y
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        chain()
        torch.cuda.synchronize()
    kernels = sum(1 for ev in prof.events() if ev.device_type.name == "CUDA")
    step = graph_replay_seconds(torch, chain, runs=9)
    log(f"  graph chain: {kernels} kernels, {step * 1e6:.1f} us, {step / max(kernels, 1) * 1e6:.2f} us per kernel")
    return {"graph_chain_us_per_kernel": round(step / max(kernels, 1) * 1e6, 3), "graph_chain_kernels": kernels}


def bench_framework(torch, dev):
    """Host time per kernel of eager PyTorch code at tiny sizes (GPU work negligible, so the host is
    the bottleneck): functional ops (F.linear, F.rms_norm, ...) and nn.Module layers (module call
    overhead included). Kernels per step are counted with torch.profiler."""
    F = torch.nn.functional
    w = 64
    layers = 16
    lin = [torch.randn(w, w, device=dev, dtype=torch.bfloat16) for _ in range(layers)]
    nw = torch.ones(w, device=dev, dtype=torch.bfloat16)
    x0 = torch.randn(1, w, device=dev, dtype=torch.bfloat16)

    def functional():
        x = x0
        for W in lin:
            h = F.rms_norm(x, (w,), nw, 1e-5)
            x = x + F.linear(F.silu(F.linear(h, W)) * h, W)
        return x

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = torch.nn.RMSNorm(w, eps=1e-5)
            self.up = torch.nn.Linear(w, w, bias=False)
            self.down = torch.nn.Linear(w, w, bias=False)
            self.act = torch.nn.SiLU()

        def forward(self, x):
            h = self.norm(x)
            return x + self.down(self.act(self.up(h)) * h)

    model = torch.nn.Sequential(*[Block() for _ in range(layers)]).to(dev, torch.bfloat16)
    result = {}
    from torch.profiler import ProfilerActivity, profile
    for name, fn in [("functional", functional), ("module", lambda: model(x0))]:
        with torch.no_grad():
            for _ in range(20):
                fn()
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                fn()
                torch.cuda.synchronize()
            kernels = sum(1 for ev in prof.events() if ev.device_type.name == "CUDA")
            samples = []
            for _ in range(9):
                t0 = time.perf_counter()
                for _ in range(20):
                    fn()
                torch.cuda.synchronize()
                samples.append((time.perf_counter() - t0) / 20)
        step = statistics.median(samples)
        result[f"eager_{name}_us_per_kernel"] = round(step / max(kernels, 1) * 1e6, 3)
        result[f"eager_{name}_kernels_per_step"] = kernels
        log(f"  eager {name:10s}: {kernels} kernels per step, {step * 1e6:.1f} us per step, "
            f"{step / max(kernels, 1) * 1e6:.2f} us per kernel")
    # View ops launch nothing but still cost host time: a decoder layer written in plain PyTorch
    # calls ~18 of them (split, view, transpose, [..., ::2] slices, flatten, reshape, chunk) beside
    # its ~27 kernel-launching ops, which is part of why real eager layers cost more host time per
    # kernel than the loops above.
    q = torch.randn(1, 8, 32, 16, device=dev, dtype=torch.bfloat16)

    def views():
        y = q
        for _ in range(16):
            a, b = y.split([16, 16], dim=2)
            t = a.transpose(1, 2)
            w = a.view(1, 8, 256).unsqueeze(0)  # views only: nothing here may launch a kernel
            x1, x2 = t[..., ::2], t[..., 1::2]
            c1, c2 = b.chunk(2, dim=-1)
            del x1, x2, c1, c2, t, w
        return y
    per_step_views = 16 * 7  # split, transpose, view, unsqueeze, two slices, chunk
    samples = []
    for _ in range(9):
        t0 = time.perf_counter()
        for _ in range(50):
            views()
        samples.append((time.perf_counter() - t0) / 50)
    result["eager_view_us_per_op"] = round(statistics.median(samples) / per_step_views * 1e6, 3)
    log(f"  eager views: {result['eager_view_us_per_op']:.2f} us per view op (host only, no kernel)")
    return result


def main():
    ap = argparse.ArgumentParser(description="Measure GPU memory bandwidth and GEMM throughput for mlsysim calibration.")
    ap.add_argument("--output", "-o", required=True, help="JSON file to write")
    ap.add_argument("--quick", action="store_true", help="fewer shapes and runs (about a minute)")
    ap.add_argument("--runs", type=int, default=None, help="timed samples per measurement (default 20, quick 7)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up calls (default 10, quick 3)")
    ap.add_argument("--device", type=int, default=0, help="CUDA device index")
    ap.add_argument("--skip-gemm", action="store_true", help="skip the GEMM grid (memory and extended sections only)")
    ap.add_argument("--no-extended", action="store_true",
                    help="skip the non-GEMM sections (bandwidth ramp, vector ops, attention, conv, launch)")
    ap.add_argument("--hardware-name", default=None, help="value of the 'hardware' field (default: from the device name)")
    args = ap.parse_args()

    torch = import_torch()
    dev = torch.device("cuda", args.device)
    torch.cuda.set_device(dev)
    name = torch.cuda.get_device_name(dev)
    runs = args.runs or (7 if args.quick else 20)
    warmup = args.warmup or (3 if args.quick else 10)
    timer = Timer(torch, runs, warmup, min_sample_s=0.0005 if args.quick else 0.002)
    torch.manual_seed(0)
    torch.backends.cudnn.benchmark = False
    t0 = time.time()
    log(f"microbench: {name}, torch {torch.__version__}, CUDA {torch.version.cuda or torch.version.hip}, runs={runs}")

    log("memory:")
    memory = bench_memory(torch, timer, dev, args.quick)

    squares = SQUARES[:4] if args.quick else SQUARES
    skinny_m = [1, 32, 512, 2048] if args.quick else SKINNY_M
    gemm = []

    def run_plain(dtype_name, shapes, allow_tf32):
        torch.backends.cuda.matmul.allow_tf32 = allow_tf32
        label = "tf32" if allow_tf32 else dtype_name
        for m, n, k in shapes:
            elem = 2 if dtype_name == "bfloat16" else 4
            if not fits(torch, dev, m, n, k, elem):
                log(f"  {label:9s} {m}x{n}x{k}: skipped (not enough free memory)")
                continue
            t = bench_matmul(torch, timer, dev, m, n, k, dtype_name)
            rec = gemm_record(m, n, k, dtype_name, t, with_bytes=not allow_tf32)
            rec["dtype"] = label
            gemm.append(rec)
            log_gemm(label, rec)
        torch.backends.cuda.matmul.allow_tf32 = False

    if not args.skip_gemm:
        skinny = [(m, n, k) for m in skinny_m for (n, k) in SKINNY_NK]
        log("gemm bfloat16:")
        waves = [] if args.quick else WAVE_PROBES
        run_plain("bfloat16", [(s, s, s) for s in squares] + skinny + waves, allow_tf32=False)
        log("gemm float32 (TF32 off):")
        run_plain("float32", [(s, s, s) for s in squares if s <= 8192] + skinny, allow_tf32=False)
        log("gemm tf32:")
        run_plain("float32", [(4096, 4096, 4096), (8192, 8192, 8192)], allow_tf32=True)

        ok, why = fp8_supported(torch, dev)
        if ok:
            log("gemm fp8_e4m3:")
            # Squares, then the serving-engine shapes (FP8 weights at a batch of tokens): whether FP8
            # keeps its rate on skinny GEMMs, where a tile's fixed work weighs more against its halved math.
            fp8_squares = [4096, 8192] if args.quick else [4096, 8192, 16384]
            fp8_m = FP8_SKINNY_M[1:] if args.quick else FP8_SKINNY_M
            fp8_shapes = [(q, q, q) for q in fp8_squares] + [(m, n, k) for m in fp8_m for (n, k) in SKINNY_NK]
            for m, n, k in fp8_shapes:
                if not fits(torch, dev, m, n, k, 1):
                    continue
                t = bench_fp8(torch, timer, dev, m, n, k)
                rec = gemm_record(m, n, k, "fp8_e4m3", t, with_bytes=False)
                gemm.append(rec)
                log_gemm("fp8_e4m3", rec)
        else:
            log(f"gemm fp8_e4m3: skipped ({why})")

    extended = {}
    if not args.no_extended:
        log("bandwidth ramp:")
        extended["bandwidth_ramp"] = bench_bandwidth_ramp(torch, timer, dev, args.quick)
        log("vector operators:")
        extended["vector"] = bench_vector(torch, timer, dev, args.quick)
        log("attention (scaled_dot_product_attention):")
        extended["attention"] = bench_attention(torch, timer, dev, args.quick)
        log("convolution (cuDNN, channels_last):")
        extended["conv"] = bench_conv(torch, timer, dev, args.quick)
        optional = [
            ("gemm_alignment", "gemm alignment (LM head, vocabulary 50257 vs 50304):",
             lambda: bench_gemm_alignment(torch, timer, dev, args.quick)),
            ("gemm_short_k", "gemm short K (hidden-768 layer weights):",
             lambda: bench_gemm_short_k(torch, timer, dev, args.quick)),
            ("gemm_training_layouts", "gemm training layouts (forward, input gradient, weight gradient):",
             lambda: bench_gemm_training_layouts(torch, timer, dev, args.quick)),
        ]
        if fp8_supported(torch, dev)[0]:
            optional.append(("fp8_training", "fp8 training (fast vs fp32-promoted accumulation; bf16 -> fp8 casts):",
                             lambda: bench_fp8_training(torch, timer, dev, args.quick)))
        optional.append(("gemm_sustained",
                         "gemm sustained (seconds of back-to-back 8192^3 GEMMs: boost vs power-limited clock):",
                         lambda: bench_gemm_sustained(torch, dev, args.quick)))
        optional.append(("board_power", "board power (idle with a context, d2d copy, bf16 8192^3 GEMM):",
                         lambda: bench_board_power(torch, dev, args.quick)))
        for key, title, bench in optional:
            log(title)
            run_section(extended, key, bench)
        log("launch overhead:")
        extended["launch"] = bench_launch(torch, dev, args.quick)
        log("framework (eager host time per kernel):")
        extended["launch"].update(bench_framework(torch, dev))
        try:
            extended["launch"].update(bench_graph_chain(torch, dev))
        except Exception as exc:  # noqa: BLE001 - keep the other sections' results
            log(f"  graph chain skipped: {exc.__class__.__name__}: {str(exc)[:200]}")

    result = {
        "hardware": args.hardware_name or name.replace("NVIDIA ", "").replace(" ", "_"),
        "device_name": name,
        # cudaMemGetInfo's total: the memory a process can allocate (the catalog's usable_gib).
        "total_memory_gib": round(torch.cuda.mem_get_info(dev)[1] / 2**30, 2),
        "software": {"torch": torch.__version__,
                     "cuda": torch.version.cuda or f"hip {torch.version.hip}"},
        "method": (f"median of {runs} CUDA-event timings after {warmup} warm-up calls; each timing averages a batch of "
                   "back-to-back launches; random data; bench/gpu/microbench.py"
                   + (" --quick" if args.quick else "")),
        "memory": memory,
        "gemm": gemm,
        **extended,
    }
    out_dir = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(out_dir, exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    log(f"microbench: wrote {args.output} ({len(gemm)} GEMMs) in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
