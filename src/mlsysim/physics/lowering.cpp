// Lowering of each model kind into operators. FLOP counts use 2 FLOPs per multiply-accumulate.
// Transformer operator inventory follows the reference implementations (Hugging Face / vLLM layer
// structure): norm -> QKV -> RoPE -> attention -> O -> residual -> norm -> FFN -> residual.
// Attention FLOPs are exact for causal masking (token i attends to context + i keys), not the
// non-causal upper bound 4*L*H*d*S^2 the textbook uses.
#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <optional>
#include <utility>

#include "mlsysim/errors.hpp"
#include "mlsysim/physics/cache_reuse.hpp"
#include "mlsysim/physics/compression.hpp"
#include "mlsysim/physics/operators.hpp"
#include "mlsysim/physics/transformer.hpp"

namespace mlsysim {

const char* to_string(Phase p) {
  switch (p) {
    case Phase::Inference: return "inference";
    case Phase::Prefill: return "prefill";
    case Phase::Decode: return "decode";
    case Phase::Train: return "train";
  }
  return "?";
}
const char* to_string(Recompute r) {
  switch (r) {
    case Recompute::None: return "none";
    case Recompute::Selective: return "selective";
    case Recompute::Full: return "full";
  }
  return "?";
}
const char* to_string(OpClass c) {
  switch (c) {
    case OpClass::Gemm: return "gemm";
    case OpClass::Attention: return "attention";
    case OpClass::Conv: return "conv";
    case OpClass::Vector: return "vector";
    case OpClass::Gather: return "gather";
    case OpClass::Optimizer: return "optimizer";
    case OpClass::Opaque: return "opaque";
  }
  return "?";
}
const char* to_string(LoraTargets t) {
  switch (t) {
    case LoraTargets::Attention: return "attention";
    case LoraTargets::All: return "all";
  }
  return "?";
}
std::string LoraSpec::describe() const {
  return "rank " + std::to_string(rank) + " on the " + (targets == LoraTargets::All ? "layer" : "attention") +
         " linears";
}
const char* to_string(Pass p) {
  switch (p) {
    case Pass::Forward: return "forward";
    case Pass::Recompute: return "recompute";
    case Pass::Backward: return "backward";
    case Pass::Update: return "update";
  }
  return "?";
}

double attention_tail_flops(double rows, double max_keys, double dk, double dv) {
  return 2.0 * std::min(rows, kAttentionQueryBlock) * max_keys * (dk + dv);
}

Operator attention_call_operator(const AttentionCall& c) {
  const double s = c.seq;
  const double scores = c.batch * c.heads * s * (c.causal ? (s + 1) / 2 : s);
  const double forward_flops = 4.0 * c.batch * c.heads * s * s * c.head_dim / (c.causal ? 2.0 : 1.0);
  const double io = 4.0 * c.batch * c.heads * s * c.head_dim * bytes_per_element(c.precision);
  const double pass_factor = c.backward ? kAttentionBackwardFlopsFactor : 1.0;
  Operator op;
  op.name = "attention";
  op.cls = OpClass::Attention;
  op.pass = c.backward ? Pass::Backward : Pass::Forward;
  op.precision = c.precision;
  op.attention_kernel = c.kernel;
  op.flops = op.hw_flops = pass_factor * forward_flops;
  op.bytes = c.backward ? 2.0 * io : io;  // backward also reads O and dO, writes dQ, dK, dV
  // n: mean keys per query row (causal: (S + 1) / 2), the attention rate's shape term.
  op.m = c.batch * s, op.n = c.causal ? (s + 1) / 2 : s, op.k = c.head_dim;
  // Causal or not, the last query block visits all S keys.
  op.tail_flops = attention_tail_flops(s, s, c.head_dim, c.head_dim) * pass_factor;
  op.special_function_ops = scores;  // the backward recomputes each exponential once
  return op;
}

namespace {

// Appends operators with one set of precisions; every helper returns the new operator.
struct Emitter {
  std::vector<Operator>& out;
  double pw, pa, pk;  // bytes per weight, activation and KV element
  double pg;          // bytes per GEMM input element: the math format (activation_bytes())
  Precision math;
  bool fused;  // compiled kernels (LoweringInput::fused)
  bool hf;     // Hugging Face transformers modules (LoweringInput::hf_modules; implies !fused)
  // Automatic mixed precision (torch.autocast over fp32 parameters, what the HF Trainer's bf16
  // mode runs): GEMMs run in 16 bits on cast copies, but the parameters, the residual stream and
  // the ops autocast lists as fp32 (layer_norm, pow, softmax, cross_entropy; PyTorch AMP docs,
  // "CUDA Ops that can autocast to float32") stay 4-byte, and every fp32 input to a Linear is cast.
  bool amp = false;
  Precision head = Precision::BF16;       // output head (LoweringInput::head_precision)
  Precision embedding = Precision::BF16;  // token-embedding table (LoweringInput::embedding_precision)
  double dropout = 0;           // training dropout on embeddings and residual branches (0: none)
  double amp_weight_elems = 0;  // parameters the forward casts to 16 bits under autocast
  double cache = 0;             // last-level cache bytes (LoweringInput::cache_bytes)
  // Stored bytes per weight relative to pw: below 1 for 2:4-compressed block weights
  // (ModelSpec::block_weights), which the sparse kernels read as stored.
  double weight_storage = 1.0;
  AttentionKernel attention = AttentionKernel::Flash;  // LoweringInput::attention
  double attention_dropout = 0;  // training dropout on attention probabilities (materialized only)
  LinearKind linear_kind = LinearKind::Other;  // stamped on each weight GEMM (LinearScope)

  // Bytes per element of the residual stream: fp32 under AMP (fp32 embeddings plus 16-bit branch
  // outputs promote to fp32), else the activation format.
  [[nodiscard]] double residual_bytes() const { return amp ? 4.0 : pa; }

  // Y[m,n] = X[m,k] W[k,n]: reads W and X, writes Y.
  Operator& gemm(const char* name, double m, double n, double k, double count,
                 double weight_elems = -1) {
    if (weight_elems < 0) weight_elems = n * k;
    Operator op;
    op.name = name;
    op.cls = OpClass::Gemm;
    op.flops = op.hw_flops = 2.0 * m * n * k;
    op.bytes = weight_elems * pw * weight_storage + m * k * pg + m * n * pa;
    op.m = m, op.n = n, op.k = k, op.count = count;
    op.precision = math;
    op.linear = linear_kind;
    op.vector_flops = weight_elems * dequant_ops_per_weight();
    if (amp) amp_weight_elems += weight_elems * count;
    out.push_back(op);
    return out.back();
  }
  // Weight-only quantization dequantizes every weight on the vector units inside the GEMM main
  // loop, once per tile: unpack (shift, mask), convert, scale (and zero-point) ~4 ops for 4-bit,
  // convert and scale ~2 ops for 8-bit (GPTQ/AWQ/Marlin-style kernels; Frantar et al. 2024 sec. 3).
  [[nodiscard]] double dequant_ops_per_weight() const {
    if (pw >= bytes_per_element(math)) return 0;  // weights already in the math format
    return pw <= 0.5 ? 4.0 : 2.0;
  }
  // Element-wise work: reads `in` elements, writes `out_elems`, `flops_per_elem` per output.
  Operator& vec(const char* name, double in_elems, double out_elems, double flops_per_elem,
                double count, double elem_bytes) {
    Operator op;
    op.name = name;
    op.cls = OpClass::Vector;
    op.flops = op.hw_flops = out_elems * flops_per_elem;
    op.bytes = (in_elems + out_elems) * elem_bytes;
    op.count = count;
    op.precision = math;
    out.push_back(op);
    return out.back();
  }
};

// Stamps a role on every operator emitted while it lives, however the lowering function creates
// them (Emitter helpers or direct pushes), so solvers never find operators by name.
class RoleScope {
 public:
  RoleScope(Emitter& e, OpRole role) : e_(e), role_(role), first_(e.out.size()) {}
  RoleScope(const RoleScope&) = delete;
  RoleScope& operator=(const RoleScope&) = delete;
  ~RoleScope() {
    for (size_t i = first_; i < e_.out.size(); ++i) e_.out[i].role = role_;
  }

 private:
  Emitter& e_;
  OpRole role_;
  size_t first_;
};

// Emits dense weights while it lives, and in another format when given one (the output head's
// when it is kept out of the quantization, the LoRA adapters'): that format's bytes per weight and
// per GEMM input (and per activation, `activations_too`) and its math. The Emitter's own formats
// come back when it ends.
class FormatScope {
 public:
  FormatScope(Emitter& e, std::optional<Precision> format, bool activations_too)
      : e_(e), pw_(e.pw), pg_(e.pg), pa_(e.pa), storage_(e.weight_storage), math_(e.math) {
    e.weight_storage = 1.0;
    if (!format) return;
    e.pw = e.pg = bytes_per_element(*format);
    if (activations_too) e.pa = e.pg;
    e.math = *format;
  }
  FormatScope(const FormatScope&) = delete;
  FormatScope& operator=(const FormatScope&) = delete;
  ~FormatScope() { e_.pw = pw_, e_.pg = pg_, e_.pa = pa_, e_.weight_storage = storage_, e_.math = math_; }

 private:
  Emitter& e_;
  double pw_, pg_, pa_, storage_;
  Precision math_;
};

// Names the kind of weight the GEMMs emitted while it lives multiply by (LinearKind).
class LinearScope {
 public:
  LinearScope(Emitter& e, LinearKind kind) : e_(e), previous_(e.linear_kind) { e.linear_kind = kind; }
  LinearScope(const LinearScope&) = delete;
  LinearScope& operator=(const LinearScope&) = delete;
  ~LinearScope() { e_.linear_kind = previous_; }

 private:
  Emitter& e_;
  LinearKind previous_;
};

struct BlockShape {
  double seqs = 1;         // B
  double new_tokens = 1;   // T per sequence
  double context = 0;      // cached tokens before these (C)
  bool causal = true;
  bool writes_kv = true;   // prefill/decode keep a KV cache
  bool absorbed_mla = false;  // decode with MLA runs attention in the latent space
  double cross_tokens = 0;    // encoder-decoder: encoder length for cross-attention
  bool cross_kv_cached = false;  // decode: cross K/V were computed at prefill
};

// Hugging Face LlamaRMSNorm (transformers modeling_llama.py) is Python over eight ops: to(fp32),
// pow, mean, + eps, rsqrt, *, to(dtype), * weight. Per element they move (a+4) + (4+4) + 4 + (4+4)
// + (4+a) + 2a = 4a + 28 bytes (a = activation bytes), against 2a for one fused-norm kernel.
// Under AMP the input is already fp32 and the weight fp32: both casts vanish, leaving pow, mean,
// +eps, rsqrt, *, *weight = 6 kernels and 8 + 4 + 8 + 8 = 28 bytes per element.
void apply_hf_rms_norm(Operator& norm, double elems, double act_bytes, bool amp) {
  norm.kernels = amp ? 6 : 8;
  norm.bytes = elems * (amp ? 28.0 : 4.0 * act_bytes + 28.0);
}

// A norm in unfused code (its own kernel or kernels). Under AMP it reads and writes fp32
// (autocast runs layer_norm in fp32; HF RMSNorm computes in fp32 and returns the input dtype),
// and the Linear after it casts its input to 16 bits: one more kernel, 4 + 2 bytes per element.
void unfused_norm(Emitter& e, const TransformerSpec& tf, const char* name, double elems,
                  double count) {
  Operator& norm = e.vec(name, elems, elems, tf.layernorm ? 8.0 : 4.0, count, e.residual_bytes());
  if (e.hf && !tf.layernorm) apply_hf_rms_norm(norm, elems, e.pa, e.amp);
  if (e.amp) e.vec("amp_input_cast", elems, 0, 0, count, 0).bytes = elems * (4.0 + e.pa);
}

// A pre-norm. Fused with the preceding residual add it reads the residual stream and the
// sub-block output and writes the new residual and the normalized activations (2 in, 2 out).
// In a parallel block the add sums the residual and both branch outputs (3 in), and a second
// norm (Falcon's ln_mlp) writes its own normalized copy (3 out).
void residual_norm(Emitter& e, const TransformerSpec& tf, const char* plain, const char* fused,
                   double elems, double layers) {
  const double norm_flops = tf.layernorm ? 8.0 : 4.0;
  if (e.fused) {
    const double branches = tf.parallel_block ? 2.0 : 1.0;
    const double norms = tf.parallel_block ? tf.parallel_block_norms : 1.0;
    e.vec(fused, (1 + branches) * elems, (1 + norms) * elems, norms * norm_flops + branches, layers,
          e.pa);
    return;
  }
  unfused_norm(e, tf, plain, elems, layers);
  if (tf.parallel_block && tf.parallel_block_norms == 2) unfused_norm(e, tf, "mlp_norm", elems, layers);
}

// Dropout in training (torch native_dropout: one kernel reads x and writes y and a 1-byte keep
// mask; its backward reads the gradient and the mask and writes one gradient, the same traffic).
void dropout(Emitter& e, const char* name, double elems, double count, double elem_bytes) {
  Operator& op = e.vec(name, elems, elems, 2.0, count, elem_bytes);
  op.bytes += elems * 1.0;
  op.backward_scale = 1.0;
}

// Dropout on the embeddings or a residual branch, when the model trains with it.
void branch_dropout(Emitter& e, const char* name, double elems, double count, double elem_bytes) {
  if (e.dropout > 0) dropout(e, name, elems, count, elem_bytes);
}

// End of a residual branch in unfused code: the branch output's dropout (training), then the add
// into the residual stream. Under AMP the add reads fp32 + 16-bit and writes fp32.
void residual_add(Emitter& e, const char* dropout_name, const char* add_name, double elems,
                  double layers) {
  branch_dropout(e, dropout_name, elems, layers, e.pa);
  e.vec(add_name, 2 * elems, elems, 1.0, layers, e.pa).bytes =
      elems * (e.residual_bytes() + e.pa + e.residual_bytes());
}

// Attention math stays in 16 bits when GEMMs run in 8 bits or fewer: serving stacks quantize the
// linear layers (FP8/INT8 GEMMs) but run the fused attention kernel in the model dtype unless an
// FP8 attention backend is chosen explicitly (vLLM and TensorRT-LLM defaults, 2024-2025).
Precision attention_precision(Precision math) {
  return bytes_per_element(math) < 2.0 ? Precision::BF16 : math;
}

// FlashAttention-style kernels process 128-row query tiles against 128-key blocks (FlashAttention-2,
// Dao 2023, sec. 3.1; FlashAttention-3's Hopper tiles for head dims 64-128): computed products /
// useful ones for T queries over T keys.
double bidirectional_tile_padding(double tokens) {
  constexpr double kTile = 128;
  const double padded = std::ceil(tokens / kTile) * kTile;
  return padded * padded / (tokens * tokens);
}

// Attention with the scores in memory (Megatron-LM 2021's baddbmm + fused scale-mask-softmax +
// dropout + bmm; PyTorch's "math" SDPA): two batched GEMMs that compute every query-key product
// (a dense GEMM cannot skip the causal mask's zeros, so hardware FLOPs cover all T x keys scores
// while model FLOPs count the attended pairs), and between them element-wise passes over the
// B x H x T x keys scores: one softmax (read, write) and, in training, one dropout (read, write,
// 1-byte mask). The activation sizes are Korthikanti et al. 2022's 5as/h term.
void lower_materialized_attention(Emitter& e, const TransformerSpec& tf, const BlockShape& s,
                                  double layers, double q_dim, double dk, double dv) {
  const RoleScope core(e, OpRole::AttentionCore);
  const double N = s.seqs * s.new_tokens, H = tf.heads;
  const double keys = s.context + s.new_tokens;
  const double pairs = attention_pairs_per_layer(tf, s.new_tokens, s.context, s.causal);
  const double scores = s.seqs * H * s.new_tokens * keys;
  const double kv_heads = tf.is_mla() ? H : tf.kv_heads;
  const double kv_bytes = s.writes_kv ? e.pk : e.pa;
  auto batched_gemm = [&](const char* name, double k, double n, double in_bytes, double out_bytes,
                          double head_dim) -> Operator& {
    Operator op;
    op.name = name;
    op.cls = OpClass::Gemm;
    op.flops = 2.0 * s.seqs * H * pairs * head_dim;
    op.hw_flops = 2.0 * scores * head_dim;
    op.bytes = in_bytes + out_bytes;
    op.m = s.seqs * H * s.new_tokens, op.n = n, op.k = k;  // the batch of heads stacked along m
    op.count = layers;
    op.precision = attention_precision(e.math);
    e.out.push_back(op);
    return e.out.back();
  };
  // S = Q K^T: reads Q and K, writes the scores.
  batched_gemm("attn_scores", dk, keys,
               N * q_dim * e.pa + s.seqs * keys * kv_heads * dk * kv_bytes, scores * e.pa, dk);
  e.vec("attn_softmax", scores, scores, 5.0, layers, e.pa);  // scale, mask, max, exp, sum
  if (e.attention_dropout > 0) dropout(e, "attn_probs_dropout", scores, layers, e.pa);
  // O = P V: reads the probabilities and V, writes the context.
  batched_gemm("attn_context", keys, dv,
               scores * e.pa + s.seqs * keys * kv_heads * dv * kv_bytes, N * H * dv * e.pa, dv);
}

// Widths the projections give attention: query width, K/V elements written to the cache per token,
// and the per-head key and value dims attention runs at.
struct AttentionDims {
  double q_dim = 0, kv_write_elems = 0, dk = 0, dv = 0;
};

// Q, K, V projections: MLA's low-rank paths (DeepSeek-V2), or one fused QKV GEMM.
AttentionDims lower_qkv_projections(Emitter& e, const TransformerSpec& tf, const BlockShape& s, double N,
                                    double layers) {
  const double h = tf.hidden, H = tf.heads;
  AttentionDims d;
  if (tf.is_mla()) {
    const double qk = tf.qk_nope_head_dim + tf.qk_rope_head_dim;
    if (tf.q_lora_rank > 0) {
      e.gemm("q_down_proj", N, tf.q_lora_rank, h, layers);
      e.gemm("q_up_proj", N, H * qk, tf.q_lora_rank, layers);
    } else {
      e.gemm("q_proj", N, H * qk, h, layers);
    }
    e.gemm("kv_down_proj", N, tf.kv_lora_rank + tf.qk_rope_head_dim, h, layers);
    d.kv_write_elems = tf.kv_lora_rank + tf.qk_rope_head_dim;
    if (s.absorbed_mla) {
      // Weight absorption (DeepSeek-V2 sec. 2.1.2): W_UK folds into the query and W_UV into the
      // output, so attention runs over the cached latent (kv_lora_rank + rope) per token.
      e.gemm("q_absorb", N, H * tf.kv_lora_rank, tf.qk_nope_head_dim, layers,
             H * tf.qk_nope_head_dim * tf.kv_lora_rank).m = N;
      d.q_dim = H * (tf.kv_lora_rank + tf.qk_rope_head_dim);
      d.dk = tf.kv_lora_rank + tf.qk_rope_head_dim;
      d.dv = tf.kv_lora_rank;
    } else {
      // Decompress K (nope part) and V for the tokens of this step.
      e.gemm("kv_up_proj", N, H * (tf.qk_nope_head_dim + tf.v_head_dim), tf.kv_lora_rank, layers);
      d.q_dim = H * qk;
      d.dk = qk;
      d.dv = tf.v_head_dim;
    }
    return d;
  }
  const double kv_dim = static_cast<double>(tf.kv_heads) * tf.head_dim;
  d.q_dim = H * tf.head_dim;
  Operator& qkv = e.gemm("qkv_proj", N, d.q_dim + 2 * kv_dim, h, layers);
  if (e.hf && !tf.fused_projection_modules) qkv.kernels = 3;  // separate q/k/v_proj modules
  d.kv_write_elems = 2 * kv_dim;
  d.dk = d.dv = tf.head_dim;
  return d;
}

// Qwen3's q_norm and k_norm: an RMSNorm over every head of q and of k before RoPE, two calls per
// layer in vLLM and Hugging Face alike (each Hugging Face RMSNorm being several kernels).
void lower_qk_norm(Emitter& e, double N, const AttentionDims& d, double layers) {
  const double elems = N * (d.q_dim + d.kv_write_elems / 2);
  Operator& norm = e.vec("qk_norm", elems, elems, 4.0, layers, e.pa);
  norm.kernels = 2;
  if (e.hf) {
    apply_hf_rms_norm(norm, elems, e.pa, e.amp);
    norm.kernels *= 2;
  }
}

// Rotary embedding on q and k, as each runtime writes it.
void lower_rope(Emitter& e, const BlockShape& s, double N, const AttentionDims& d, double layers) {
  const double rotated = N * (d.q_dim + d.kv_write_elems / 2);
  Operator& rope = e.vec("rope", rotated, rotated, 6.0, layers, e.pa);
  if (e.hf) {
    // Hugging Face rotate_half: q*cos, -x2, cat(-x2, x1), *sin, add = 5 kernels per tensor (q and
    // k), moving 2 + 1 + 2 + 2 + 3 = 10 tensor-sizes. Strided: the half-width slices (neg, cat)
    // and, when a step has several tokens, q*cos on the transposed [B, H, T, d] view.
    rope.kernels = 10;
    rope.bytes = 10.0 * rotated * e.pa;
    rope.strided_bytes = ((s.new_tokens > 1 ? 2.0 : 0.0) + 3.0) * rotated * e.pa;
  } else if (!e.fused) {
    // Plain PyTorch on interleaved pairs (Meta's reference / gpt-fast layout, bench/gpu/e2e.py):
    // x1 = x[..., ::2], x2 = x[..., 1::2]; x1*cos, x2*sin, -, x1*sin, x2*cos, +, stack = 7
    // framework calls per tensor, 14 per layer (the e2e profile: 8 strided multiplies, 4 adds, and
    // 4 copies from the 2 stacks). Four multiplies read and write half a tensor each (4 sizes,
    // strided), the subtract and add read two halves and write one (3 sizes), the stack writes
    // pairs interleaved (2 sizes, strided). The host dispatches all 14 calls; GPU launches are
    // counted as 10 because the per-kernel overhead (EfficiencyProfile::kernel_overhead, 4 us, not
    // yet calibrated) is an average that already covers the tiny add/sub kernels (~1.3 us each in
    // the profile); see docs/PHYSICS.md "Kernel counts".
    rope.kernels = 10;
    rope.host_ops = 14;
    rope.bytes = 9.0 * rotated * e.pa;
    rope.strided_bytes = 6.0 * rotated * e.pa;
  }
}

void lower_kv_cache_write(Emitter& e, const BlockShape& s, double N, double kv_write_elems, double layers) {
  Operator& w = e.vec("kv_cache_write", N * kv_write_elems, 0, 0, layers, e.pa);
  w.bytes = N * kv_write_elems * (e.pa + e.pk);
  if (!e.fused) w.kernels = 2;  // one copy each for K and V
  // Hugging Face DynamicCache.update grows K and V with torch.cat: every step reads the whole
  // cache and writes it again one step longer.
  if (e.hf) w.bytes = s.seqs * kv_write_elems * (2.0 * s.context + 2.0 * s.new_tokens) * e.pk;
}

// Attention core (FlashAttention-style fused kernel): QK^T and PV over the attended pairs.
void lower_fused_attention_core(Emitter& e, const TransformerSpec& tf, const BlockShape& s, double N,
                                const AttentionDims& d, double layers) {
  const double H = tf.heads;
  const double pairs = attention_pairs_per_layer(tf, s.new_tokens, s.context, s.causal);
  const double kv_heads = tf.is_mla() ? 1.0 : tf.kv_heads;
  const double kv_tokens = s.causal ? attended_kv_tokens_per_layer(tf, s.context + s.new_tokens) : s.new_tokens;
  Operator op;
  op.name = "attention";
  op.cls = OpClass::Attention;
  op.flops = op.hw_flops = 2.0 * s.seqs * H * pairs * (d.dk + d.dv);
  // Bidirectional attention over a length that is not a multiple of the kernel's tile computes
  // whole tiles: ViT-B/16's 197 tokens run as 256 x 256. (Causal rows are left as counted: the
  // attention calibration is fitted on causal kernels, so their diagonal-tile waste is in eta.)
  if (!s.causal && s.new_tokens > 1) op.hw_flops *= bidirectional_tile_padding(s.new_tokens);
  const double kv_elems_per_token =
      tf.is_mla() ? (s.absorbed_mla ? d.dk : H * (d.dk + d.dv)) : kv_heads * (d.dk + d.dv);
  const double kv_bytes = s.seqs * kv_tokens * kv_elems_per_token *
                          (s.writes_kv && !(tf.is_mla() && !s.absorbed_mla) ? e.pk : e.pa);
  op.bytes = kv_bytes + N * d.q_dim * e.pa + N * H * d.dv * e.pa;
  // n: mean keys per query row (the attention rate's shape term, physics/efficiency.cpp).
  op.m = N, op.n = pairs / std::max(s.new_tokens, 1.0), op.k = d.dk;
  op.tail_flops = attention_tail_flops(s.new_tokens, kv_tokens, d.dk, d.dv);
  op.special_function_ops = s.seqs * H * pairs;  // one softmax exponential per score
  op.attention_kernel = e.attention;
  op.count = layers;
  op.precision = attention_precision(e.math);
  e.out.push_back(op);
}

// From attention's output back to the residual stream: MLA's V absorption, eager's transpose copy,
// the output projection, and (unfused) the dropout and residual add.
void lower_attention_output(Emitter& e, const TransformerSpec& tf, const BlockShape& s, double N, double dv,
                            double layers) {
  const double h = tf.hidden, H = tf.heads;
  if (tf.is_mla() && s.absorbed_mla)
    e.gemm("v_absorb", N, H * tf.v_head_dim, tf.kv_lora_rank, layers, H * tf.kv_lora_rank * tf.v_head_dim);
  // Eager: [B, heads, T, d] -> [B, T, heads*d] is a copy before o_proj, except for a one-token step:
  // with T = 1 the transposed view is already contiguous, so reshape (and HF's .contiguous()) is
  // free. The e2e profiles show it: 5 copy kernels per layer in prefill, 4 in decode.
  if (!e.fused && s.new_tokens > 1) {
    Operator& t = e.vec("attn_out_transpose", N * H * dv, N * H * dv, 0.0, layers, e.pa);
    t.strided_bytes = t.bytes;  // reads the transposed view
  }
  e.gemm("o_proj", N, h, H * dv * (tf.is_mla() && s.absorbed_mla ? tf.v_head_dim / dv : 1.0), layers);
  if (!e.fused) residual_add(e, "attn_out_dropout", "attn_residual", N * h, layers);
}

// Encoder-decoder cross-attention over the encoder's tokens (their K/V projected once, or cached).
void lower_cross_attention(Emitter& e, const TransformerSpec& tf, const BlockShape& s, double N, double layers) {
  const double h = tf.hidden, H = tf.heads;
  const double M = s.seqs * s.cross_tokens;
  e.vec("cross_norm", N * h, N * h, tf.layernorm ? 8.0 : 4.0, layers, e.pa);
  e.gemm("cross_q_proj", N, H * tf.head_dim, h, layers);
  if (!s.cross_kv_cached) e.gemm("cross_kv_proj", M, 2 * tf.kv_heads * tf.head_dim, h, layers);
  Operator op;
  op.name = "cross_attention";
  op.cls = OpClass::Attention;
  op.flops = op.hw_flops = 2.0 * s.seqs * H * s.new_tokens * s.cross_tokens * 2 * tf.head_dim;
  op.bytes = M * 2 * tf.kv_heads * tf.head_dim * e.pk + 2 * N * H * tf.head_dim * e.pa;
  op.m = N, op.n = s.cross_tokens, op.k = tf.head_dim, op.count = layers;
  op.special_function_ops = s.seqs * H * s.new_tokens * s.cross_tokens;
  op.attention_kernel = e.attention;
  op.precision = attention_precision(e.math);
  e.out.push_back(op);
  e.gemm("cross_o_proj", N, h, H * tf.head_dim, layers);
  residual_add(e, "cross_out_dropout", "cross_residual", N * h, layers);
}

// Attention sub-block of one layer (repeated `layers` times).
void lower_attention(Emitter& e, const TransformerSpec& tf, const BlockShape& s, double layers) {
  const double N = s.seqs * s.new_tokens;
  residual_norm(e, tf, "attn_norm", "add_attn_norm", N * tf.hidden, layers);
  const AttentionDims d = lower_qkv_projections(e, tf, s, N, layers);
  if (tf.qk_norm) lower_qk_norm(e, N, d, layers);
  if (!tf.learned_positions) lower_rope(e, s, N, d, layers);
  if (s.writes_kv) lower_kv_cache_write(e, s, N, d.kv_write_elems, layers);
  if (e.attention == AttentionKernel::Materialized)
    lower_materialized_attention(e, tf, s, layers, d.q_dim, d.dk, d.dv);
  else
    lower_fused_attention_core(e, tf, s, N, d, layers);
  lower_attention_output(e, tf, s, N, d.dv, layers);
  if (s.cross_tokens > 0) lower_cross_attention(e, tf, s, N, layers);
}

void lower_dense_ffn(Emitter& e, const TransformerSpec& tf, double N, double inner, double layers,
                     const char* up_name, const char* act_name, const char* down_name) {
  if (layers <= 0 || inner <= 0) return;
  const bool gated = is_gated(tf.act);
  Operator& up = e.gemm(up_name, N, (gated ? 2 : 1) * inner, tf.hidden, layers);
  if (gated && e.hf && !tf.fused_projection_modules) up.kernels = 2;  // gate_proj, up_proj
  Operator& act = e.vec(act_name, (gated ? 2 : 1) * N * inner, N * inner, gated ? 6.0 : 8.0,
                        layers, e.pa);
  if (gated && !e.fused) {  // eager SwiGLU: silu(g) (2 tensor-sizes), then * u (3)
    act.kernels = 2;
    act.bytes = 5.0 * N * inner * e.pa;
    // g and u are the two column halves of one fused gate/up output: for more than one row they
    // are strided views, so both kernels take the non-vectorized path.
    if (up.kernels == 1 && N > 1) act.strided_bytes = act.bytes;
  }
  if (!gated && e.hf && tf.python_gelu_tanh) {
    // HF NewGELUActivation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) as pow, *, +, *, tanh,
    // +, *, * = 8 kernels reading 10 and writing 8 tensor-sizes.
    act.kernels = 8;
    act.bytes = 18.0 * N * inner * e.pa;
    if (e.amp) {
      // Autocast runs pow in fp32: x (a bytes) is cast up first, and type promotion keeps the
      // rest of the chain in fp32 (f = 4 bytes); the down projection casts the result back.
      // cast a+f, pow 2f, * 2f, + (a+2f), * 2f, tanh 2f, + 2f, 0.5*x 2a, * (a+2f), cast back f+a
      // = 6a + 16f bytes per element in 10 kernels.
      act.kernels = 10;
      act.bytes = (6.0 * e.pa + 16.0 * 4.0) * N * inner;
    }
  }
  e.gemm(down_name, N, tf.hidden, inner, layers);
}

// Routed experts: N tokens each pick k of E experts. Expected experts touched by N tokens under
// uniform routing: E * (1 - (1 - k/E)^N); each touched expert's weights are read once.
void lower_moe_ffn(Emitter& e, const TransformerSpec& tf, double N, double layers) {
  if (layers <= 0) return;
  const double E = tf.experts, k = tf.experts_per_token, f = tf.moe_ffn, h = tf.hidden;
  const double touched = E * (1.0 - std::pow(1.0 - k / E, N));
  const bool gated = is_gated(tf.act);
  const double up_cols = (gated ? 2 : 1) * f;
  const double routed_tokens = N * k;
  const double tokens_per_expert = routed_tokens / std::max(touched, 1.0);
  e.gemm("router", N, E, h, layers).linear = LinearKind::Other;
  Operator& up = e.gemm("expert_up_proj", tokens_per_expert, up_cols, h, layers);
  up.instances = E;
  up.flops = up.hw_flops = 2.0 * routed_tokens * up_cols * h;
  up.bytes = touched * up_cols * h * e.pw * e.weight_storage + routed_tokens * (h + up_cols) * e.pa;
  up.vector_flops = touched * up_cols * h * e.dequant_ops_per_weight();
  e.vec("expert_act", routed_tokens * up_cols, routed_tokens * f, gated ? 6.0 : 8.0, layers, e.pa);
  Operator& down = e.gemm("expert_down_proj", tokens_per_expert, h, f, layers);
  down.instances = E;
  down.flops = down.hw_flops = 2.0 * routed_tokens * h * f;
  down.bytes = touched * h * f * e.pw * e.weight_storage + routed_tokens * (h + f) * e.pa + N * h * e.pa;
  down.vector_flops = touched * h * f * e.dequant_ops_per_weight();
  if (tf.shared_experts > 0)
    lower_dense_ffn(e, tf, N, tf.shared_experts * f, layers, "shared_up_proj", "shared_act",
                    "shared_down_proj");
}

void lower_transformer_stack(Emitter& e, const TransformerSpec& tf, const BlockShape& s,
                             int layers) {
  const double N = s.seqs * s.new_tokens;
  {
    const LinearScope attention(e, LinearKind::Attention);
    lower_attention(e, tf, s, layers);
  }
  // A parallel block's MLP reads the attention's pre-norm input: no norm of its own here.
  if (!tf.parallel_block) residual_norm(e, tf, "ffn_norm", "add_ffn_norm", N * tf.hidden, layers);
  const LinearScope mlp(e, LinearKind::Mlp);
  if (tf.is_moe()) {
    const int dense = std::min(tf.first_dense_layers, layers);
    lower_dense_ffn(e, tf, N, tf.ffn, dense, "up_proj(dense)", "act(dense)", "down_proj(dense)");
    lower_moe_ffn(e, tf, N, layers - dense);
  } else {
    lower_dense_ffn(e, tf, N, tf.ffn, layers, is_gated(tf.act) ? "gate_up_proj" : "up_proj",
                    is_gated(tf.act) ? "act_mul" : "act", "down_proj");
  }
  if (!e.fused) residual_add(e, "ffn_out_dropout", "ffn_residual", N * tf.hidden, layers);
}

void lower_embedding(Emitter& e, const TransformerSpec& tf, double N) {
  const RoleScope embedding(e, OpRole::Embedding);
  Operator op;
  op.name = "embedding";
  op.cls = OpClass::Gather;
  op.bytes = N * tf.hidden * (bytes_per_element(e.embedding) + e.pa);  // gather a row per token, write it
  if (e.amp) op.bytes = N * tf.hidden * 8.0;  // fp32 table rows in, fp32 residual stream out
  op.precision = e.math;
  e.out.push_back(op);
  branch_dropout(e, "embedding_dropout", N * tf.hidden, 1, e.residual_bytes());
}

// The output projection in the head's own format: a 16-bit weight and 16-bit GEMM when the
// solver kept the head out of the quantization (LoweringInput::head_precision), else the stack's.
// Always stored dense, whatever the blocks' layout (ModelSpec::block_weights).
void head_gemm(Emitter& e, double rows, const TransformerSpec& tf) {
  const bool kept_out = bytes_per_element(e.head) != e.pw;
  const FormatScope head(e, kept_out ? std::optional<Precision>(e.head) : std::nullopt, false);
  e.gemm("lm_head", rows, static_cast<double>(tf.vocab), tf.hidden, 1);
}

// Output head: logits only for the positions that need them.
void lower_head(Emitter& e, const TransformerSpec& tf, double rows, bool training) {
  const RoleScope head(e, OpRole::Head);
  if (e.fused)
    e.vec("final_norm", rows * tf.hidden, rows * tf.hidden, tf.layernorm ? 8.0 : 4.0, 1, e.pa);
  else
    unfused_norm(e, tf, "final_norm", rows * tf.hidden, 1);
  head_gemm(e, rows, tf);
  if (!training) return;
  // Softmax cross-entropy over fp32 logits.
  Operator& ce = e.vec("cross_entropy", rows * tf.vocab, rows * tf.vocab, 5.0, 1, 4.0);
  if (e.hf && e.pa < 4.0) {
    // HF's causal-LM loss (ForCausalLMLoss) first upcasts the 16-bit logits: logits.float() is one
    // more kernel reading a and writing 4 bytes per logit.
    ce.kernels = 2;
    ce.bytes += rows * tf.vocab * (e.pa + 4.0);
  }
}

// Hugging Face LlamaRotaryEmbedding.forward rebuilds cos/sin for the step's positions on every
// forward: expand and cast inv_freq and positions, matmul, cat, cos, sin, two scalings, two casts
// = 10 small kernels, each over N x head_dim fp32 values.
void lower_hf_rotary_tables(Emitter& e, const TransformerSpec& tf, double N) {
  const double elems = N * tf.head_dim;
  Operator& op = e.vec("rotary_tables", elems, elems, 1.0, 1, 4.0);
  op.kernels = 10;
  op.bytes = 10.0 * 2.0 * elems * 4.0;
}

void lower_decoder_model(Emitter& e, const ModelSpec& m, const LoweringInput& in) {
  const TransformerSpec& tf = m.tf;
  BlockShape s;
  s.seqs = in.batch;
  const bool training = in.phase == Phase::Train;
  if (in.phase == Phase::Decode) {
    s.new_tokens = 1;
    s.context = in.context;
    s.absorbed_mla = tf.is_mla();
  } else {
    s.new_tokens = in.seq_len;
    s.context = in.phase == Phase::Prefill ? in.context : 0;
  }
  s.writes_kv = !training;
  const double N = s.seqs * s.new_tokens;
  lower_embedding(e, tf, N);
  if (e.hf && !tf.learned_positions) lower_hf_rotary_tables(e, tf, N);
  lower_transformer_stack(e, tf, s, tf.layers);
  lower_head(e, tf, training ? N : s.seqs, training);
}

void lower_encoder_model(Emitter& e, const ModelSpec& m, const LoweringInput& in) {
  const TransformerSpec& tf = m.tf;
  BlockShape s;
  s.seqs = in.batch;
  s.new_tokens = in.seq_len;
  s.causal = false;
  s.writes_kv = false;
  const double N = s.seqs * s.new_tokens;
  if (tf.patch_size > 0) {
    const double patches = N - s.seqs;  // all tokens but CLS
    const double k = static_cast<double>(tf.patch_in_channels) * tf.patch_size * tf.patch_size;
    Operator& op = e.gemm("patch_embed", patches, tf.hidden, k, 1);
    op.cls = OpClass::Conv;
  } else {
    lower_embedding(e, tf, N);
  }
  lower_transformer_stack(e, tf, s, tf.layers);
  e.vec("final_norm", N * tf.hidden, N * tf.hidden, tf.layernorm ? 8.0 : 4.0, 1, e.pa);
  if (tf.pooler) e.gemm("pooler", s.seqs, tf.hidden, tf.hidden, 1);
  if (tf.classifier > 0) e.gemm("classifier", s.seqs, tf.classifier, tf.hidden, 1);
}

void lower_encoder_decoder(Emitter& e, const ModelSpec& m, const LoweringInput& in) {
  const TransformerSpec& tf = m.tf;
  const double B = in.batch, enc = tf.encoder_seq;
  const bool run_encoder = in.phase != Phase::Decode;
  if (run_encoder) {
    if (tf.audio_conv_stem.size() == 2) {  // two k=3 1-D convs: 2x frames -> frames (stride 2)
      Operator& c1 = e.gemm("conv_stem_1", B * 2 * enc, tf.hidden, tf.audio_conv_stem[0] * 3.0, 1);
      c1.cls = OpClass::Conv;
      Operator& c2 = e.gemm("conv_stem_2", B * enc, tf.hidden, tf.hidden * 3.0, 1);
      c2.cls = OpClass::Conv;
    }
    BlockShape es;
    es.seqs = B, es.new_tokens = enc, es.causal = false, es.writes_kv = false;
    lower_transformer_stack(e, tf, es, tf.encoder_layers);
  }
  if (in.phase == Phase::Inference) return;  // encoder pass only
  BlockShape ds;
  ds.seqs = B;
  ds.cross_tokens = enc;
  if (in.phase == Phase::Decode) {
    ds.new_tokens = 1, ds.context = in.context, ds.cross_kv_cached = true;
  } else {
    ds.new_tokens = in.seq_len;
  }
  ds.writes_kv = in.phase != Phase::Train;
  const double N = ds.seqs * ds.new_tokens;
  lower_embedding(e, tf, N);
  lower_transformer_stack(e, tf, ds, tf.decoder_layers);
  lower_head(e, tf, in.phase == Phase::Train ? N : ds.seqs, in.phase == Phase::Train);
}

// CNN rows: convolutions as implicit GEMMs (m = batch*H*W, n = cout, k = cin/groups*k*k).
// Activations reach the next layer through the last-level cache when they fit: every input is
// charged the DRAM bytes of its LRU miss fraction (physics/cache_reuse.hpp), with its stack
// distance taken from the tensors the step touched since (ReuseHistory). Writes go to DRAM
// (write-back) and first-touch weights come from it.
class CnnStreams {
 public:
  CnnStreams(const Emitter& e, size_t layers) : history_(reused_history(e.cache, 4 * layers)), cache_(e.cache) {}

  // The tensor a layer reads: the most recent layer output of exactly that size (the previous
  // layer's, or for a projection shortcut the block input a few layers back), else the previous
  // layer's output (window and stride arithmetic that does not round-trip), else none (the image).
  [[nodiscard]] int input_of(double bytes) const {
    const int same_size = history_.latest_of_size(bytes);
    return same_size >= 0 ? same_size : history_.latest();
  }
  // The skip tensor of a residual add whose branch ends in `branch`: the most recent other layer
  // output of the sum's size (the block input, or on a projection block the other path).
  [[nodiscard]] int skip_of(double bytes, int branch) const { return history_.latest_of_size(bytes, branch); }

  // Charges `op` (whose bytes count every input once from DRAM) for `inputs` hitting in the
  // cache, and records its weights and output: returns the output's id.
  int stream(Operator& op, std::initializer_list<StreamedInput> inputs, double weight_bytes, double out_bytes,
             bool output_is_layer_output = true) {
    double read = 0;
    for (const StreamedInput& in : inputs) read += in.bytes;
    op.bytes -= read - dram_read_bytes(history_, {inputs.begin(), inputs.size()}, weight_bytes + out_bytes,
                                       cache_);
    if (weight_bytes > 0) history_.add_unnamed(weight_bytes);  // no layer reads them again
    return history_.add(out_bytes, output_is_layer_output);
  }
  int record_output(double bytes) { return history_.add(bytes); }
  [[nodiscard]] double size_of(int id) const { return history_.bytes(id); }

 private:
  // This thread's history, emptied for this lowering: its buffers outlive the solve, so a CNN
  // solve allocates nothing for them (solves are hot; lowerings on one thread never nest).
  static ReuseHistory& reused_history(double cache, size_t tensors) {
    thread_local ReuseHistory history(cache, tensors);
    history.reset(cache, tensors);
    return history;
  }

  ReuseHistory& history_;
  double cache_;
};

// Walks a CNN's layer table in order, emitting each row's kernels and threading the tensors between
// them through CnnStreams (which of them the L2 still holds).
class CnnLowering {
 public:
  CnnLowering(Emitter& e, const ModelSpec& m, const LoweringInput& in)
      : e_(e), layers_(m.cnn_layers), B_(in.batch), streams_(e, m.cnn_layers.size()) {}

  void run() {
    for (size_t i = 0; i < layers_.size(); ++i) {
      const CnnLayer& l = layers_[i];
      switch (l.type) {
        case CnnLayer::Type::Conv: conv(i); break;
        case CnnLayer::Type::Pool: pool(l); break;
        case CnnLayer::Type::Add: add(l); break;
        case CnnLayer::Type::SqueezeExcite: squeeze_excite(l); break;
        case CnnLayer::Type::FullyConnected: fully_connected(l); break;
      }
      if (l.type != CnnLayer::Type::Add && l.type != CnnLayer::Type::SqueezeExcite)
        previous_out_ = l.type == CnnLayer::Type::FullyConnected ? static_cast<double>(l.cout)
                                                                  : static_cast<double>(l.cout) * pixels(l);
    }
  }

 private:
  static double pixels(const CnnLayer& l) { return static_cast<double>(l.h_out) * l.w_out; }

  void conv(size_t i) {
    const CnnLayer& l = layers_[i];
    const double hw_out = pixels(l);
    const double cin_per_group = static_cast<double>(l.cin) / l.groups;
    const double k = cin_per_group * l.kernel_h * l.kernel_w;
    const double in_elems = B_ * l.cin * hw_out * l.stride_h * l.stride_w;
    Operator op;
    op.name = l.groups > 1 ? "dwconv" : (l.kernel_h * l.kernel_w == 1 ? "conv1x1" : "conv");
    op.cls = l.groups > 1 && cin_per_group <= 8 ? OpClass::Vector : OpClass::Conv;
    op.flops = op.hw_flops = 2.0 * B_ * hw_out * l.cout * k;
    const double weight_bytes = l.cout * k * e_.pw, in_bytes = in_elems * e_.pa,
                 out_bytes = B_ * hw_out * l.cout * e_.pa;
    op.bytes = weight_bytes + in_bytes + out_bytes;
    // A conv whose channels do not follow the conv before it is a projection shortcut: it reads the
    // block input, which the block's first conv read.
    const bool starts_block = i == 0 || layers_[i - 1].type != CnnLayer::Type::Conv;
    const bool shortcut = !starts_block && layers_[i - 1].cout != l.cin;
    const int input = shortcut && streams_.size_of(block_input_) == in_bytes ? block_input_
                                                                             : streams_.input_of(in_bytes);
    if (starts_block) block_input_ = input;
    // Conv epilogue fusion: a residual add right after rides in this conv, which also reads the skip
    // tensor and adds it.
    add_fused_ = e_.fused && op.cls == OpClass::Conv && i + 1 < layers_.size() &&
                 layers_[i + 1].type == CnnLayer::Type::Add;
    int skip = -1;
    if (add_fused_) {
      skip = streams_.skip_of(out_bytes, -1);
      if (skip == input) skip = -1;  // no distinct skip tensor: read from DRAM
      op.bytes += out_bytes;
      op.flops += B_ * l.cout * hw_out;
      op.hw_flops += B_ * l.cout * hw_out;
    }
    op.m = B_ * hw_out, op.n = l.cout, op.k = k;
    op.precision = e_.math;
    e_.out.push_back(op);
    Operator& emitted = e_.out.back();
    branch_ = add_fused_ ? streams_.stream(emitted, {{input, in_bytes}, {skip, out_bytes}}, weight_bytes, out_bytes)
                         : streams_.stream(emitted, {{input, in_bytes}}, weight_bytes, out_bytes, e_.fused);
    if (!e_.fused) {  // eager: batch norm and activation each re-read the conv output
      const double out = B_ * hw_out * l.cout;
      const int normed = streams_.stream(e_.vec("batchnorm", out, out, 2.0, 1, e_.pa),
                                         {{branch_, out * e_.pa}}, 0, out * e_.pa, false);
      branch_ = streams_.stream(e_.vec("activation", out, out, 1.0, 1, e_.pa), {{normed, out * e_.pa}}, 0,
                                out * e_.pa);
    }
  }

  // A pool reads what the previous layer wrote (window and stride need not match).
  void pool(const CnnLayer& l) {
    const double out = B_ * l.cout * pixels(l);
    const double in_elems = previous_out_ > 0 ? B_ * previous_out_ : out * l.stride_h * l.stride_w;
    const double window = static_cast<double>(l.kernel_h) * l.kernel_w;
    const double in_bytes = in_elems * e_.pa;
    streams_.stream(e_.vec("pool", in_elems, out, window, 1, e_.pa), {{streams_.input_of(in_bytes), in_bytes}}, 0,
                    out * e_.pa);
  }

  // Reads the branch output (just written) and the skip tensor (written a block ago), unless the
  // conv before it already did (epilogue fusion).
  void add(const CnnLayer& l) {
    if (std::exchange(add_fused_, false)) return;
    const double elems = B_ * l.cout * pixels(l), bytes = elems * e_.pa;
    const int skip = streams_.skip_of(bytes, branch_);
    streams_.stream(e_.vec("residual_add", 2 * elems, elems, 1.0, 1, e_.pa), {{branch_, bytes}, {skip, bytes}}, 0,
                    bytes);
  }

  void squeeze_excite(const CnnLayer& l) {
    const double act = B_ * l.cin * pixels(l);
    Operator& se = e_.vec("squeeze_excite", 2 * act, act, 2.0, 1, e_.pa);
    se.flops = se.hw_flops = se.flops + 4.0 * B_ * l.cin * l.groups;
    se.bytes += (2.0 * l.cin * l.groups) * e_.pw;
    se.kernels = 4;  // pool, fc, fc, scale
    streams_.record_output(act * e_.pa);
  }

  void fully_connected(const CnnLayer& l) {
    e_.gemm("fc", B_, l.cout, l.cin, 1);
    streams_.record_output(B_ * l.cout * e_.pa);
  }

  Emitter& e_;
  const std::vector<CnnLayer>& layers_;
  const double B_;
  CnnStreams streams_;
  double previous_out_ = 0;  // elements per sample written by the previous row
  int branch_ = -1;          // id of the last conv row's output (a residual add's branch)
  int block_input_ = -1;     // what the first conv after the last add or pool read
  bool add_fused_ = false;   // the next add row already rode in the conv before it
};

void lower_cnn(Emitter& e, const ModelSpec& m, const LoweringInput& in) { CnnLowering(e, m, in).run(); }

// DLRM (Naumov et al. 2019): embedding-bag lookups, bottom MLP, pairwise dot interaction, top MLP.
void lower_dlrm(Emitter& e, const ModelSpec& m, const LoweringInput& in) {
  const DlrmSpec& d = m.dlrm;
  const double B = in.batch, tables = static_cast<double>(d.rows_per_table.size());
  Operator op;
  op.name = "embedding_bags";
  op.cls = OpClass::Gather;
  op.bytes = B * tables * d.lookups_per_table * d.embedding_dim * e.pw +
             B * tables * d.embedding_dim * e.pa;
  op.flops = op.hw_flops = B * tables * (d.lookups_per_table - 1) * d.embedding_dim;
  op.kernels = 1;  // fused multi-table embedding bag
  op.precision = e.math;
  e.out.push_back(op);
  for (size_t i = 1; i < d.bottom_mlp.size(); ++i)
    e.gemm("bottom_mlp", B, d.bottom_mlp[i], d.bottom_mlp[i - 1], 1);
  const double features = tables + 1;
  e.vec("interaction", B * features * d.embedding_dim, B * features * (features - 1) / 2,
        2.0 * d.embedding_dim, 1, e.pa);
  for (size_t i = 1; i < d.top_mlp.size(); ++i)
    e.gemm("top_mlp", B, d.top_mlp[i], d.top_mlp[i - 1], 1);
}

void lower_opaque(Emitter& e, const ModelSpec& m, const LoweringInput& in) {
  Operator op;
  op.name = "forward";
  op.cls = OpClass::Opaque;
  op.flops = op.hw_flops = m.opaque.flops_per_sample * in.batch;
  op.bytes = m.published_params.value_or(0) * e.pw +
             m.opaque.activation_bytes_per_sample * in.batch * (e.pa / 2.0);
  op.kernels = std::max(1, m.opaque.kernels_per_sample);
  op.precision = e.math;
  e.out.push_back(op);
}

// Autocast casts each fp32 weight to 16 bits once per forward (its cast cache lives as long as the
// autocast region): one kernel per Linear launch, reading 4 and writing 2 bytes per weight. The
// backward casts each 16-bit weight gradient back to fp32 once: the same traffic (backward_scale 1)
// when every weight trains, the `trained` fraction of it under LoRA.
void append_amp_weight_casts(Emitter& e, double trained) {
  double linears = 0;
  for (const Operator& op : e.out)
    if (op.cls == OpClass::Gemm) linears += op.kernels * op.count;
  Operator& cast = e.vec("amp_weight_cast", e.amp_weight_elems, 0, 0, 1, 0);
  cast.bytes = e.amp_weight_elems * (4.0 + e.pa);
  cast.kernels = linears;
  cast.backward_scale = trained;
}

// LoRA adapters (Hu et al. 2021): beside each adapted linear W (k -> n) over M rows, a down
// projection x A (M x k -> M x r) and an up projection (M x r -> M x n) whose output is added to
// x W: fused, the up projection's epilogue reads x W once more; unfused (Hugging Face PEFT's
// `result + lora_B(lora_A(x)) * scaling`) the scaling and the add are kernels of their own (read
// and write M x n, then read two and write one). They run in the 16-bit format the output head
// keeps: FP8 training recipes cast only the frozen base GEMMs (NeMo's LoRA adapters are plain BF16
// linears). A routed-expert GEMM adapts every expert. Returns the adapters' weights (r (k + n) per
// matrix) in the step.
double append_lora_adapters(Emitter& e, const LoraSpec& lora) {
  const FormatScope sixteen_bit(e, e.head, true);
  const LinearScope adapter(e, LinearKind::Adapter);
  const double r = lora.rank;
  double params = 0;
  const size_t forward_count = e.out.size();
  for (size_t i = 0; i < forward_count; ++i) {
    const Operator base = e.out[i];  // a copy: emitting reallocates the list
    if (!lora.adapts(base.linear)) continue;
    const double rows = base.flops / (2.0 * base.n * base.k);  // a routed-expert GEMM's: routed tokens
    e.gemm("lora_down", rows, r, base.k, base.count, r * base.k * base.instances);
    Operator& up = e.gemm("lora_up", rows, base.n, r, base.count, r * base.n * base.instances);
    up.bytes += rows * base.n * e.pa * (e.fused ? 1.0 : 5.0);
    if (!e.fused) up.kernels = 3;
    params += r * (base.k + base.n) * base.instances * base.count;
  }
  return params;
}

// Training: backward of every forward operator, recomputation, optimizer update.
// Backward GEMMs are two GEMMs (input and weight gradients) = 2x forward FLOPs; fused attention
// backward does 5 matmuls against the forward's 2 (FlashAttention-2, Dao 2023) = 2.5x.
// Recomputation re-runs forward work in the backward pass: full recomputation every per-layer
// operator; selective recomputation (Korthikanti et al. 2022, sec. 4) only the attention core
// (scores, softmax, dropout, attention over V) whose activations it did not keep, which exist
// only when attention is materialized (a fused kernel recomputes them inside its own backward).
// LoRA freezes the base: its GEMMs compute only the input gradient (1x forward, one kernel), the
// embedding (with nothing trainable before it) no gradient at all, and Adam updates `params`, the
// adapters' weights.
void append_training_passes(std::vector<Operator>& ops, const LoweringInput& in, double params) {
  const size_t forward_count = ops.size();
  const bool selective = in.recompute == Recompute::Selective && in.attention == AttentionKernel::Materialized;
  if (in.recompute == Recompute::Full || selective) {
    for (size_t i = 0; i < forward_count; ++i) {
      Operator r = ops[i];
      if (r.count <= 1 && r.cls != OpClass::Attention) continue;  // only per-layer work
      if (selective && r.role != OpRole::AttentionCore) continue;
      r.pass = Pass::Recompute;
      r.flops = 0;  // recomputation is hardware work, not model work
      ops.push_back(r);
    }
  }
  const bool lora = in.lora.enabled();
  for (size_t i = 0; i < forward_count; ++i) {
    Operator b = ops[i];
    if (lora && b.role == OpRole::Embedding) continue;
    const bool frozen = lora && b.linear != LinearKind::None && b.linear != LinearKind::Adapter;
    b.pass = Pass::Backward;
    const double factor = frozen ? 1.0 : b.cls == OpClass::Attention ? kAttentionBackwardFlopsFactor : 2.0;
    const double scale = frozen ? 1.0 : b.backward_scale;
    b.flops *= factor;
    b.hw_flops *= factor;
    b.tail_flops *= factor;
    b.bytes *= scale;
    b.strided_bytes *= scale;  // gradients of strided views are strided too
    b.kernels *= scale;
    b.host_ops *= scale;
    ops.push_back(b);
  }
  // Adam with fp32 master weights (mixed precision, Micikevicius et al. 2018): reads master, m, v
  // (4 B each) and the 16-bit gradient; writes master, m, v and the 16-bit weight copy.
  const double grad_bytes = bytes_per_element(in.compute_precision);
  const bool mixed = bytes_per_element(in.weight_precision) < 4.0;
  Operator opt;
  opt.name = "adam_update";
  opt.pass = Pass::Update;
  opt.cls = OpClass::Optimizer;
  opt.flops = opt.hw_flops = 12.0 * params;
  opt.bytes = params * (mixed ? (12.0 + grad_bytes) * 2.0 : 24.0);
  opt.kernels = 2;  // multi-tensor apply: a couple of fused launches
  opt.precision = Precision::FP32;
  ops.push_back(opt);
}

// FP8 training's format conversions (NVIDIA Transformer Engine, the FP8 path of Megatron-LM and
// NeMo: te.LayerNormLinear, te.Linear, te.LayerNormMLP). A 16-bit run has no counterpart to these
// kernels; each reads a 16-bit (or FP8) tensor and writes FP8 copies for the GEMMs:
//  * forward: the attention output, the O projection's input, is cast and transposed (read 2 B,
//    write 1 B and 1 B transposed for the weight-gradient GEMM). The norms and the activation
//    function write their FP8 outputs themselves (fused), which the 16-bit activation stream already
//    counts (activation_bytes);
//  * backward: the FP8 inputs of the QKV, FC1 and FC2 GEMMs are transposed for their weight
//    gradients (read 1 B, write 1 B), and the output gradients of QKV, the O projection and FC2
//    are cast and transposed to E5M2 (read 2 B, write 1 + 1 B). FC1's output gradient comes out of
//    the fused dSwiGLU/dGeLU kernel already in FP8.
// The once-per-step FP8 weight casts (about 4 B per parameter per optimizer step) are left out.
// Under LoRA the frozen GEMMs compute no weight gradients: the backward keeps only the output
// gradients' E5M2 casts (read 2 B, write 1 B), no transposes.
// An 8-bit format conversion (a cast, with its amax reduction) of `bytes` per instance: vector
// work with no model FLOPs, shared by FP8 training's casts and dynamic inference scaling.
void append_fp8_conversion(std::vector<Operator>& ops, const char* name, Pass pass, double bytes, double count,
                           double kernels) {
  Operator op;
  op.name = name;
  op.cls = OpClass::Vector;
  op.pass = pass;
  op.bytes = bytes;
  op.flops = op.hw_flops = 0;  // conversions and amax reductions: no model work
  op.count = count;
  op.kernels = kernels;
  op.precision = Precision::FP8;
  ops.push_back(op);
}

// The FFN width a token's activations cross: the dense MLP's, or its routed and shared experts'.
double ffn_width_per_token(const TransformerSpec& tf) {
  return tf.is_moe() ? tf.moe_ffn * (tf.experts_per_token + tf.shared_experts) : tf.ffn;
}

void append_fp8_training_casts(std::vector<Operator>& ops, const TransformerSpec& tf, double tokens, bool lora) {
  const double h = tf.hidden, q = static_cast<double>(tf.heads) * tf.head_dim, kv = 2.0 * tf.kv_heads * tf.head_dim;
  const double ffn = ffn_width_per_token(tf);
  const auto cast = [&](Pass pass, double bytes_per_token, double kernels) {
    append_fp8_conversion(ops, "fp8_cast_transpose", pass, tokens * bytes_per_token, tf.layers, kernels);
  };
  cast(Pass::Forward, 4.0 * q, 1);
  if (lora) cast(Pass::Backward, 3.0 * ((q + kv) + 2.0 * h), 3);
  else cast(Pass::Backward, 2.0 * (2.0 * h + ffn) + 4.0 * ((q + kv) + 2.0 * h), 6);
}

// Dynamic activation scaling in 8-bit inference (ActivationScaling::Dynamic): before each GEMM
// whose input is not already 8-bit, one kernel reduces that input's rows to their amax and writes
// it scaled to 8 bits (reads 2 B, writes 1 B per element; SGLang's per_token_group_quant_fp8,
// torchao's float8 dynamic, vLLM's scaled_fp8_quant). Per layer the quantized inputs are the four
// a transformer layer's linears read: the QKV input (the attention norm's output), the output
// projection's (the attention output), the MLP's (the FFN norm's output) and the down projection's
// (the activation's output; under MoE, the routed and shared experts' k + s rows per token). The
// LM head's input too when the head is quantized.
void append_dynamic_activation_quantization(std::vector<Operator>& ops, const TransformerSpec& tf, double tokens,
                                            bool quantized_head) {
  const double h = tf.hidden, q = static_cast<double>(tf.heads) * tf.head_dim;
  const auto quantize = [&](double elements_per_token, double count, double kernels) {
    append_fp8_conversion(ops, "act_quant", Pass::Forward, tokens * elements_per_token * (2.0 + 1.0), count, kernels);
  };
  quantize(h + q + h + ffn_width_per_token(tf), tf.layers, 4);
  if (quantized_head) quantize(h, 1, 1);
}

}  // namespace

LoweredStep lower(const ModelSpec& model, const LoweringInput& in, std::vector<Operator>& out) {
  out.clear();
  Emitter e{out,
            bytes_per_element(in.weight_precision),
            activation_bytes(in.compute_precision),
            bytes_per_element(in.kv_precision),
            bytes_per_element(in.compute_precision),
            in.compute_precision,
            in.fused && !in.hf_modules,
            in.hf_modules};
  const bool training = in.phase == Phase::Train;
  // Hugging Face training is modelled as the Trainer runs it in 16 bits: torch.autocast over fp32
  // parameters, with the model config's dropout active.
  e.amp = in.hf_modules && training && bytes_per_element(in.compute_precision) < 4.0;
  if (in.hf_modules && training) e.dropout = model.tf.train_dropout;  // 0 for non-transformers
  e.cache = in.cache_bytes;
  e.weight_storage = block_weight_storage_fraction(model, e.pw);
  e.head = in.head_precision;
  e.embedding = in.embedding_precision;
  e.attention = in.attention;
  if (training && in.attention == AttentionKernel::Materialized) e.attention_dropout = model.tf.train_dropout;
  switch (model.kind) {
    case ModelKind::Decoder: lower_decoder_model(e, model, in); break;
    case ModelKind::Encoder: lower_encoder_model(e, model, in); break;
    case ModelKind::EncoderDecoder: lower_encoder_decoder(e, model, in); break;
    case ModelKind::CNN: lower_cnn(e, model, in); break;
    case ModelKind::DLRM: lower_dlrm(e, model, in); break;
    case ModelKind::Opaque: lower_opaque(e, model, in); break;
  }
  LoweredStep step;
  if (training) {  // (autocast, e.amp, runs only in training)
    const double adapters = in.lora.enabled() ? append_lora_adapters(e, in.lora) : 0.0;
    step.trainable_parameters = in.lora.enabled() ? adapters : parameter_count(model);
    if (e.amp_weight_elems > 0)
      append_amp_weight_casts(e, in.lora.enabled() ? adapters / e.amp_weight_elems : 1.0);
    append_training_passes(out, in, step.trainable_parameters);
  }
  if (training && in.compute_precision == Precision::FP8 && model.kind == ModelKind::Decoder &&
      !model.tf.is_mla())
    append_fp8_training_casts(out, model.tf, static_cast<double>(in.batch) * in.seq_len, in.lora.enabled());
  if (!training && in.activation_scaling == ActivationScaling::Dynamic && model.kind == ModelKind::Decoder) {
    // Tokens this step feeds through the linears: one per sequence when decoding.
    const double tokens = static_cast<double>(in.batch) * (in.phase == Phase::Decode ? 1 : in.seq_len);
    append_dynamic_activation_quantization(out, model.tf, tokens,
                                           bytes_per_element(in.head_precision) <= 1.0);
  }
  return step;
}

}  // namespace mlsysim
