// Operator-level physics checked against hand-computed formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/physics/memory.hpp"
#include "mlsysim/physics/power.hpp"
#include "mlsysim/physics/transformer.hpp"
#include "mlsysim/solvers/engine.hpp"

using namespace mlsysim;

namespace {
const ModelSpec& model(const char* id) { return Catalog::builtin().model(id); }
const HardwareSpec& hw(const char* id) { return Catalog::builtin().hardware(id); }
const OperatorResult& op(const Profile& p, const std::string& name, Pass pass = Pass::Forward) {
  for (const auto& o : p.operators)
    if (o.name == name && o.pass == pass) return o;
  throw std::runtime_error("no operator " + name);
}
bool has_op(const Profile& p, const std::string& name) {
  for (const auto& o : p.operators)
    if (o.name == name) return true;
  return false;
}
Profile run(const char* m, const char* h, SolveRequest r) { return solve(model(m), hw(h), r); }
}  // namespace

TEST(EnginePhysics, DecodeGemmBytesAreTheWeights) {
  SolveRequest r;  // llama3-8b decode, batch 1, bf16
  const Profile p = run("llama3-8b", "h100", r);
  // QKV: W[4096 x (4096 + 2*1024)] in bf16 + x[1 x 4096] + y[1 x 6144], for 32 layers.
  const double qkv = 32 * (4096.0 * 6144 * 2 + 4096 * 2 + 6144 * 2);
  EXPECT_DOUBLE_EQ(op(p, "qkv_proj").bytes.si(), qkv);
  EXPECT_DOUBLE_EQ(op(p, "qkv_proj").flops.si(), 32 * 2.0 * 1 * 6144 * 4096);
  // LM head reads the full 128256 x 4096 matrix once per step.
  EXPECT_NEAR(op(p, "lm_head").bytes.si(), 128256.0 * 4096 * 2, 128256.0 * 2 + 4096 * 2 + 1);
}

TEST(EnginePhysics, Fp8GemmsReadQuantizedInputsAndWrite16BitActivations) {
  SolveRequest r;  // llama3-8b prefill of 128 tokens, FP8 math (FP8 weights, KV and GEMM inputs)
  r.phase = Phase::Prefill;
  r.seq_len = 128;
  r.precision = Precision::FP8;
  const Profile p = run("llama3-8b", "h100", r);
  // QKV: W[4096 x 6144] in 1 B + x[128 x 4096] quantized to 1 B + y[128 x 6144] in 2 B, x 32 layers.
  EXPECT_DOUBLE_EQ(op(p, "qkv_proj").bytes.si(), 32 * (4096.0 * 6144 + 128 * 4096 + 128 * 6144 * 2.0));
  // The fused add + RMSNorm runs on the 16-bit stream: reads residual and branch, writes both.
  const double elems = 128.0 * 4096;
  EXPECT_DOUBLE_EQ(op(p, "add_attn_norm").bytes.si(), 32 * 4 * elems * 2.0);
  // INT8 engines (TensorRT) keep INT8 tensors between layers: the same norm moves 1 B elements.
  r.precision = Precision::INT8;
  EXPECT_DOUBLE_EQ(op(run("llama3-8b", "h100", r), "add_attn_norm").bytes.si(), 32 * 4 * elems);
}

TEST(EnginePhysics, ParallelBlocksShareTheResidualAddAndSkipTheSecondNorm) {
  SolveRequest r;  // GPT-J prefill of 128 tokens, bf16
  r.phase = Phase::Prefill;
  r.seq_len = 128;
  const Profile p = run("gpt-j-6b", "h100", r);
  const double elems = 128.0 * 4096;
  // One fused add + LayerNorm per layer: reads residual, attention and MLP outputs, writes the
  // residual and one normalized copy.
  EXPECT_DOUBLE_EQ(op(p, "add_attn_norm").bytes.si(), 28 * 5 * elems * 2);
  EXPECT_FALSE(has_op(p, "add_ffn_norm"));
  // Falcon's two LayerNorms write two normalized copies (3 in, 3 out).
  const Profile f = run("falcon-180b", "h200", [] {
    SolveRequest q;
    q.phase = Phase::Prefill;
    q.seq_len = 16;
    q.precision = Precision::FP8;
    return q;
  }());
  EXPECT_DOUBLE_EQ(op(f, "add_attn_norm").bytes.si(), 80 * 6 * 16.0 * 14848 * 2);
  // Parameters: 28 x (4 attention projections + MLP with biases + o_proj bias + one LayerNorm)
  // + embedding, LM head and final LayerNorm.
  const double layer = 4.0 * 4096 * 4096 + 2.0 * 4096 * 16384 + 16384 + 4096 + 4096 + 2 * 4096;
  EXPECT_DOUBLE_EQ(parameter_count(model("gpt-j-6b")), 28 * layer + 2 * 50400.0 * 4096 + 2 * 4096);
}

TEST(EnginePhysics, DecodeAttentionReadsTheKvCache) {
  SolveRequest r;
  r.context = 4095;
  const Profile p = run("llama3-8b", "h100", r);
  // 4096 cached tokens x 8 KV heads x (128 + 128) x 2 B per layer, x 32 layers (+ q and o).
  const double kv = 32 * 4096.0 * 8 * 256 * 2;
  const double qo = 32 * 2 * 4096.0 * 2;
  EXPECT_DOUBLE_EQ(op(p, "attention").bytes.si(), kv + qo);
  EXPECT_DOUBLE_EQ(p.memory.kv_cache.si(), 4096.0 * 32 * 2 * 8 * 128 * 2);
}

// Widths multiplied in int used to wrap: a head_dim near 2^31 gave the K/V cache write negative
// bytes. Each operator's work stays positive however wide the model (the ledger refuses it later).
TEST(EnginePhysics, HugeWidthsDoNotWrapIntoNegativeWork) {
  ModelSpec wide = model("llama3-8b");
  wide.tf.head_dim = 2147483647;
  SolveRequest r;
  r.phase = Phase::Prefill;
  r.seq_len = 1024;
  const Profile p = solve(wide, hw("h100"), r);
  for (const OperatorResult& o : p.operators) {
    EXPECT_GE(o.bytes.si(), 0) << o.name;
    EXPECT_GE(o.flops.si(), 0) << o.name;
  }
  EXPECT_GT(op(p, "kv_cache_write").bytes.si(), 0);
  EXPECT_FALSE(p.feasible);
}

TEST(EnginePhysics, PrefillAttentionFlopsAreCausal) {
  SolveRequest r;
  r.phase = Phase::Prefill;
  r.seq_len = 1024;
  const Profile p = run("llama3-8b", "h100", r);
  // Token i attends to i keys: S(S+1)/2 pairs; QK^T and PV each 2 x head_dim FLOPs per pair-head.
  const double pairs = 1024.0 * 1025 / 2;
  EXPECT_DOUBLE_EQ(op(p, "attention").flops.si(), 32 * 2.0 * 32 * pairs * (128 + 128));
}

TEST(EnginePhysics, PrefillModelFlopsAreTwoPerParameterPerTokenPlusAttention) {
  SolveRequest r;
  r.phase = Phase::Prefill;
  r.seq_len = 2048;
  const Profile p = run("llama3-8b", "h100", r);
  const double params = parameter_count(model("llama3-8b"));
  const double embedding = 128256.0 * 4096;  // a gather, no FLOPs
  const double lm_head_rows = 1;             // logits for the last position only
  const double linear = 2.0 * (params - 2 * embedding) * 2048 + 2.0 * embedding * lm_head_rows;
  const double attention = 32 * 2.0 * 32 * (2048.0 * 2049 / 2) * 256;
  // Norms, RoPE and activations add a little element-wise work (< 1%).
  EXPECT_NEAR(p.model_flops.si() / (linear + attention), 1.0, 0.01);
}

TEST(EnginePhysics, TrainingIsThreeForwardPasses) {
  SolveRequest fwd, train;
  fwd.phase = Phase::Prefill;
  train.phase = Phase::Train;
  fwd.seq_len = train.seq_len = 1024;
  const Profile f = run("gpt2", "a100-80gb", fwd), t = run("gpt2", "a100-80gb", train);
  // Backward = 2x forward for GEMMs (input + weight gradients); the LM head runs on every token
  // in training, so compare against the per-token forward FLOPs.
  const double forward_all_tokens = t.model_flops.si() / 3.0;
  EXPECT_GT(forward_all_tokens, f.model_flops.si());
  // Mixed-precision Adam states: 2 (bf16 grads) + 12 (fp32 master + 2 moments) bytes/param.
  const double params = parameter_count(model("gpt2"));
  EXPECT_DOUBLE_EQ(t.memory.gradients.si(), params * 2);
  EXPECT_DOUBLE_EQ(t.memory.optimizer_states.si(), params * 12);
  // Full recomputation: more hardware FLOPs, same model FLOPs, less activation memory.
  train.recompute = Recompute::Full;
  const Profile rc = run("gpt2", "a100-80gb", train);
  EXPECT_DOUBLE_EQ(rc.model_flops.si(), t.model_flops.si());
  EXPECT_GT(rc.hardware_flops.si(), t.hardware_flops.si());
  EXPECT_LT(rc.memory.activations, t.memory.activations);
  EXPECT_GT(rc.hfu, rc.mfu);
}

TEST(EnginePhysics, MoeDecodeReadsOnlyTheRoutedExperts) {
  SolveRequest r;
  const Profile p = run("mixtral-8x7b", "h200", r);
  // Batch 1: exactly 2 of 8 experts are touched per layer.
  const auto& tf = model("mixtral-8x7b").tf;
  const double expert_up = 2.0 * tf.moe_ffn * tf.hidden * 2;  // gate+up of one expert, bf16
  EXPECT_NEAR(op(p, "expert_up_proj").bytes.si() / tf.layers, 2 * expert_up,
              0.01 * 2 * expert_up);
  EXPECT_LT(p.bytes_moved.si(), 0.35 * p.weight_bytes.si());  // ~13 B active of 47 B
}

TEST(EnginePhysics, MlaKvCacheIsTheCompressedLatent) {
  // DeepSeek-V3 caches kv_lora_rank + rope dims (512 + 64) per token per layer, 61 layers.
  EXPECT_DOUBLE_EQ(kv_cache_bytes_per_token(model("deepseek-v3"), Precision::BF16).si(),
                   61.0 * (512 + 64) * 2);
  // vs GQA Llama-3 70B: 80 layers x 2 x 8 x 128 x 2 B.
  EXPECT_DOUBLE_EQ(kv_cache_bytes_per_token(model("llama3-70b"), Precision::BF16).si(),
                   80.0 * 2 * 8 * 128 * 2);
}

TEST(EnginePhysics, TimeFractionsAndMfuDefinitions) {
  SolveRequest r;
  r.batch = 16;
  const Profile p = run("llama3-8b", "h100", r);
  EXPECT_NEAR((p.compute_time + p.memory_time + p.overhead_time).si(), p.latency.si(), 1e-15);
  EXPECT_NEAR(p.mfu, p.model_flops.si() / (p.latency.si() * 989.4e12), 1e-12);
  // Energy: between the idle floor and full TDP for the whole step.
  EXPECT_GT(p.energy.si(), power_coefficients(hw("h100")).idle * 700 * p.latency.si());
  EXPECT_LT(p.energy.si(), 700 * p.latency.si());
}

TEST(EnginePhysics, TextbookModelIsOneRoofline) {
  SolveRequest r;
  r.efficiency = 0.5;
  const Profile p = run("llama3-8b", "h100", r);
  const double tc = p.model_flops.si() / (989.4e12 * 0.5);
  const double tm = p.bytes_moved.si() / 3.35e12;
  EXPECT_DOUBLE_EQ(p.latency.si(), std::max(tc, tm));
  EXPECT_EQ(p.overhead_time.si(), 0);
}

TEST(EnginePhysics, WaveQuantization) {
  const HardwareSpec& h100 = hw("h100");  // 132 SMs, 128 x 128 tiles
  // 8192 x 8192: 4096 tiles = 31.03 waves -> 4096 / (32 x 132) busy.
  EXPECT_NEAR(wave_utilization(h100, 8192, 8192, 8192), 4096.0 / (32 * 132), 1e-12);
  // 1024 x 1024 x 1024: 64 tiles; split-K by 2 (k / 512) -> 128 of 132 SMs.
  EXPECT_NEAR(wave_utilization(h100, 1024, 1024, 1024), 128.0 / 132, 1e-12);
}

TEST(EnginePhysics, EagerRuntimePaysHostDispatchOnSmallKernels) {
  SolveRequest graph, eager;
  eager.runtime = Runtime::Eager;
  const Profile g = run("llama3-8b", "h100", graph), e = run("llama3-8b", "h100", eager);
  EXPECT_GT(e.latency, g.latency);
  EXPECT_GT(e.kernels, g.kernels);  // unfused residual adds
  // Prefill kernels are long: the host runs ahead, so with the same kernels eager costs about the
  // same as graph replay.
  graph.phase = eager.phase = Phase::Prefill;
  graph.seq_len = eager.seq_len = 4096;
  eager.fusion = Fusion::Fused;
  const Profile gp = run("llama3-8b", "h100", graph), ep = run("llama3-8b", "h100", eager);
  EXPECT_LT(ep.latency / gp.latency, 1.05);
}

TEST(EnginePhysics, EagerHostPaysForEveryFrameworkCall) {
  // Plain-PyTorch interleaved RoPE makes 7 framework calls per tensor (4 multiplies, a subtract, an
  // add, a stack): 14 per layer for q and k. At one decode token the host is the bottleneck: the
  // GPU waits for all 14 x 32 host dispatches, less what it still had queued when the host started
  // on them (at most the q/k/v projection just issued), though its GPU launches are counted as 10.
  SolveRequest r;
  r.runtime = Runtime::Eager;
  const Profile p = run("llama3-8b", "h100", r);
  const OperatorResult& rope = op(p, "rope");
  const OperatorResult& qkv = op(p, "qkv_proj");
  const double host = hw("h100").efficiency.host_dispatch.si();
  EXPECT_DOUBLE_EQ(rope.kernels, 10.0 * 32);
  const double exposed = (rope.timing.overhead - rope.timing.launch_gaps).si();
  const double queued_before = (qkv.timing.body() + qkv.timing.launch_gaps).si();
  EXPECT_LE(exposed, 14 * 32 * host + 1e-12);
  EXPECT_GE(exposed, 14 * 32 * host - queued_before - 1e-12);
  EXPECT_GT(queued_before, 0);
  // Under CUDA-graph replay there is no host: the 10 launches each cost the kernel overhead.
  r.runtime = Runtime::Graph;
  r.fusion = Fusion::Unfused;
  const OperatorResult& replayed = op(run("llama3-8b", "h100", r), "rope");
  EXPECT_NEAR(replayed.timing.overhead.si(), 10 * 32 * hw("h100").efficiency.kernel_overhead.si(), 1e-12);
}

TEST(EnginePhysics, FusionFollowsTheRuntimeUnlessGiven) {
  SolveRequest r;
  EXPECT_EQ(run("llama3-8b", "h100", r).fusion, Fusion::Fused);
  r.runtime = Runtime::Eager;
  EXPECT_EQ(run("llama3-8b", "h100", r).fusion, Fusion::Unfused);
  r.fusion = Fusion::Fused;
  EXPECT_EQ(run("llama3-8b", "h100", r).fusion, Fusion::Fused);
}

TEST(EnginePhysics, UnfusedKernelsLaunchMoreAndMoveMoreBytes) {
  SolveRequest fused, unfused;
  unfused.fusion = Fusion::Unfused;
  const Profile f = run("llama3-8b", "h100", fused), u = run("llama3-8b", "h100", unfused);
  // Per layer of a decode step, unfused adds: 2 residual adds, RoPE 10 kernels instead of 1 (+9),
  // K and V cache copies (+1), SiLU and multiply apart (+1) = 13. One token's attention output
  // [B, H, 1, d] is already contiguous as [B, 1, H*d]: no transpose copy.
  EXPECT_DOUBLE_EQ(u.kernels - f.kernels, 13.0 * 32);
  EXPECT_FALSE(has_op(u, "attn_out_transpose"));
  // A prefill step of several tokens does copy the transposed view: +1 per layer = 14.
  SolveRequest fused_prefill = fused, unfused_prefill = unfused;
  fused_prefill.phase = unfused_prefill.phase = Phase::Prefill;
  fused_prefill.seq_len = unfused_prefill.seq_len = 512;
  const Profile fp = run("llama3-8b", "h100", fused_prefill);
  const Profile up = run("llama3-8b", "h100", unfused_prefill);
  EXPECT_DOUBLE_EQ(up.kernels - fp.kernels, 14.0 * 32);
  EXPECT_DOUBLE_EQ(op(up, "attn_out_transpose").bytes.si(), 32 * 2.0 * 512 * 4096 * 2);
  // SwiGLU: fused reads g, u and writes h (3 tensor-sizes); unfused silu then mul moves 5.
  EXPECT_DOUBLE_EQ(op(u, "act_mul").bytes.si() / op(f, "act_mul").bytes.si(), 5.0 / 3.0);
  EXPECT_GT(u.bytes_moved, f.bytes_moved);
  EXPECT_GT(u.latency, f.latency);
  // Weight traffic is the same: fusion changes activations, not the weights read.
  EXPECT_DOUBLE_EQ(op(u, "gate_up_proj").bytes.si(), op(f, "gate_up_proj").bytes.si());
}

TEST(EnginePhysics, StridedElementWiseKernelsStreamAtTheirOwnRate) {
  // Eager SwiGLU after one fused gate/up GEMM reads the two column halves of its output: strided
  // views, so both kernels run at the calibrated strided rate. Llama-3-8B prefill, 2048 tokens:
  // 5 x 2048 x 14336 x 2 B per layer.
  const HardwareSpec& h100 = hw("h100");
  const double bw = h100.memory_bandwidth.si();
  const double eta_vec = h100.efficiency.vector_memory, eta_strided = h100.efficiency.strided_memory;
  ASSERT_GT(eta_strided, 0);
  ASSERT_LT(eta_strided, eta_vec);  // the built-in H100 measurement: ~0.53 against ~0.87
  SolveRequest r;
  r.runtime = Runtime::Eager;
  r.phase = Phase::Prefill;
  r.seq_len = 2048;
  const Profile p = run("llama3-8b", "h100", r);
  const double act_bytes = 32 * 5.0 * 2048 * 14336 * 2;
  EXPECT_DOUBLE_EQ(op(p, "act_mul").bytes.si(), act_bytes);
  EXPECT_NEAR(op(p, "act_mul").timing.memory.si(), act_bytes / (bw * eta_strided), 1e-12);
  // Interleaved RoPE: 9 tensor-sizes of q and k (4096 + 1024 columns), 6 of them strided.
  const double size = 32 * 2048 * (4096 + 1024) * 2.0;
  EXPECT_DOUBLE_EQ(op(p, "rope").bytes.si(), 9 * size);
  EXPECT_NEAR(op(p, "rope").timing.memory.si(),
              3 * size / (bw * eta_vec) + 6 * size / (bw * eta_strided), 1e-12);
  // One decode token: each half is one contiguous row, so SwiGLU is vectorized again.
  SolveRequest decode = r;
  decode.phase = Phase::Decode;
  decode.seq_len.reset();  // a decode step's one new token
  decode.context = 1024;
  const Profile d = run("llama3-8b", "h100", decode);
  EXPECT_NEAR(op(d, "act_mul").timing.memory.si(), op(d, "act_mul").bytes.si() / (bw * eta_vec),
              1e-15);
  // Hugging Face runs gate_proj and up_proj as separate modules: contiguous outputs.
  r.phase = Phase::Prefill;
  r.fusion = Fusion::Hf;
  const Profile h = run("llama3-8b", "h100", r);
  EXPECT_NEAR(op(h, "act_mul").timing.memory.si(), act_bytes / (bw * eta_vec), 1e-12);
  // Compiled (fused) kernels never take the strided path.
  SolveRequest fused = r;
  fused.runtime = Runtime::Graph;
  fused.fusion = Fusion::Fused;
  const Profile f = run("llama3-8b", "h100", fused);
  EXPECT_NEAR(op(f, "act_mul").timing.memory.si(), op(f, "act_mul").bytes.si() / (bw * eta_vec),
              1e-12);
}

TEST(EnginePhysics, HuggingFaceModulesDecomposeNormsProjectionsAndCache) {
  SolveRequest unfused, hf;
  unfused.runtime = hf.runtime = Runtime::Eager;
  unfused.fusion = Fusion::Unfused;
  hf.fusion = Fusion::Hf;
  unfused.context = hf.context = 1024;
  const Profile u = run("llama3-8b", "h100", unfused), h = run("llama3-8b", "h100", hf);
  // Per layer: two RMSNorms of 8 ops (+7 each), q/k/v apart (+2), gate/up apart (+1) = +17;
  // once per forward: the final RMSNorm (+7) and the 10 rotary-table kernels.
  EXPECT_DOUBLE_EQ(h.kernels - u.kernels, 17.0 * 32 + 7 + 10);
  // RMSNorm as to(fp32), pow, mean, +eps, rsqrt, *, to(bf16), *weight: 4 x 2 + 28 = 36 bytes per
  // element against 2 + 2 for one kernel.
  EXPECT_DOUBLE_EQ(op(h, "attn_norm").bytes.si() / op(u, "attn_norm").bytes.si(), 36.0 / 4.0);
  // DynamicCache grows K and V with torch.cat: reads 1024 cached tokens and the new one, writes
  // 1025: (2 x 1024 + 2) x 2 x 8 KV heads x 128 x 2 B per layer.
  EXPECT_DOUBLE_EQ(op(h, "kv_cache_write").bytes.si(), 32 * (2.0 * 1024 + 2) * 2 * 8 * 128 * 2);
  EXPECT_GT(h.latency, u.latency);
}

TEST(EnginePhysics, HuggingFaceTrainingRunsAutocastOverFp32Parameters) {
  SolveRequest unfused, hf;
  unfused.runtime = hf.runtime = Runtime::Eager;
  unfused.fusion = Fusion::Unfused;
  hf.fusion = Fusion::Hf;
  unfused.phase = hf.phase = Phase::Train;
  unfused.seq_len = hf.seq_len = 1024;
  const Profile h = run("gpt2", "h100", hf), u = run("gpt2", "h100", unfused);
  const double N = 1024, d = 768, inner = 3072, vocab = 50257;
  // "gelu_new" under autocast: pow runs in fp32, so the chain after it is fp32 and the down
  // projection casts it back: 6 x 2 + 16 x 4 = 76 bytes per element against 2 + 2 in one kernel.
  EXPECT_DOUBLE_EQ(op(h, "act").bytes.si(), 76.0 * N * inner * 12);
  EXPECT_DOUBLE_EQ(op(u, "act").bytes.si(), 4.0 * N * inner * 12);
  // LayerNorm reads and writes the fp32 residual stream; the Linear after it casts to bf16.
  EXPECT_DOUBLE_EQ(op(h, "attn_norm").bytes.si(), 8.0 * N * d * 12);
  EXPECT_DOUBLE_EQ(op(h, "amp_input_cast").bytes.si(), 6.0 * N * d * 12);
  // Residual add: fp32 stream + bf16 branch -> fp32 = 4 + 2 + 4 bytes per element.
  EXPECT_DOUBLE_EQ(op(h, "attn_residual").bytes.si(), 10.0 * N * d * 12);
  // Dropout (GPT2Config resid_pdrop 0.1): x in, y and a 1-byte mask out; the backward moves the same.
  EXPECT_DOUBLE_EQ(op(h, "ffn_out_dropout").bytes.si(), 5.0 * N * d * 12);
  EXPECT_DOUBLE_EQ(op(h, "ffn_out_dropout", Pass::Backward).bytes.si(), 5.0 * N * d * 12);
  EXPECT_THROW(op(u, "ffn_out_dropout"), std::runtime_error);
  // Every Linear weight cast fp32 -> bf16 once per forward: c_attn, attn c_proj, c_fc, mlp c_proj
  // per layer (768 x (2304 + 768 + 3072 + 3072)) and the tied LM head (50257 x 768), 6 bytes each.
  const double linear_weights = 12 * d * (2304 + 768 + 3072 + 3072) + vocab * d;
  EXPECT_DOUBLE_EQ(op(h, "amp_weight_cast").bytes.si(), 6.0 * linear_weights);
  // The loss upcasts the bf16 logits (2 + 4 bytes) before the fp32 cross-entropy (4 + 4).
  EXPECT_DOUBLE_EQ(op(h, "cross_entropy").bytes.si(), (6.0 + 8.0) * N * vocab);
  // Kernels per layer, forward: GELU 10 instead of 1 (+9), a cast after each of 2 LayerNorms (+2),
  // 2 dropouts (+2); backward: twice the GELU and casts (+22), once the dropouts (+2) = +37.
  // Once per step: the final norm's cast (1 + 2), the embedding dropout (1 + 1), the logits upcast
  // (1 + 2), and 49 weight casts forward and 49 gradient casts backward.
  EXPECT_DOUBLE_EQ(h.kernels - u.kernels, 37.0 * 12 + 3 + 2 + 3 + 98);
  EXPECT_GT(h.latency, u.latency);
}

TEST(EnginePhysics, UnfusedConvolutionsRunBatchNormAndActivationApart) {
  SolveRequest fused, unfused;
  fused.phase = unfused.phase = Phase::Inference;
  fused.batch = unfused.batch = 64;
  unfused.fusion = Fusion::Unfused;
  const Profile f = run("resnet50", "h100", fused), u = run("resnet50", "h100", unfused);
  const OperatorResult& bn = op(u, "batchnorm");
  const OperatorResult& act = op(u, "activation");
  // Each reads and writes every convolution output once: equal traffic, one kernel per conv.
  EXPECT_DOUBLE_EQ(bn.bytes.si(), act.bytes.si());
  EXPECT_GT(u.latency, f.latency);
  EXPECT_THROW(op(f, "batchnorm"), std::runtime_error);
}

TEST(EnginePhysics, ConvInputsStayInTheLastLevelCacheWhenTheWorkingSetFits) {
  const HardwareSpec& l4 = hw("l4");
  ASSERT_DOUBLE_EQ(l4.onchip_memory.si(), 48e6);  // L2
  ASSERT_DOUBLE_EQ(l4.last_level_cache.si(), 48e6);
  // Gaudi 3's 96 MB of SRAM is software-managed memory, not a cache in front of DRAM.
  ASSERT_GT(hw("gaudi3").onchip_memory.si(), 0.0);
  EXPECT_DOUBLE_EQ(hw("gaudi3").last_level_cache.si(), 0.0);
  SolveRequest r;
  r.phase = Phase::Inference;
  r.precision = Precision::INT8;
  // layer1.0's first 1x1 conv, 64 -> 64 channels at 56 x 56, INT8: input and output are
  // B x 64 x 56 x 56 bytes each, the weights 64 x 64.
  const double weights = 64.0 * 64, act = 64.0 * 56 * 56;
  r.batch = 32;  // 6.4 MB + 6.4 MB + 4 kB fits in 48 MB: the input the stem wrote is read from L2
  EXPECT_DOUBLE_EQ(op(run("resnet50", "l4", r), "conv1x1").bytes.si(), weights + 32 * act);
  r.batch = 256;  // 51 MB + 51 MB does not fit: input and output both cross DRAM
  EXPECT_DOUBLE_EQ(op(run("resnet50", "l4", r), "conv1x1").bytes.si(), weights + 2 * 256 * act);
  // The textbook model has no cache.
  r.batch = 32;
  r.efficiency = 0.5;
  EXPECT_DOUBLE_EQ(op(run("resnet50", "l4", r), "conv1x1").bytes.si(), weights + 2 * 32 * act);
  // Invariant: a cache never adds DRAM traffic.
  r.efficiency = 0;
  for (int b : {1, 8, 32, 128}) {
    r.batch = b;
    SolveRequest textbook_bytes = r;
    const Profile cached = run("resnet50", "l4", r);
    double dram_only = 0;
    textbook_bytes.efficiency = 0.5;
    for (const auto& o : run("resnet50", "l4", textbook_bytes).operators) dram_only += o.bytes.si();
    double with_cache = 0;
    for (const auto& o : cached.operators) with_cache += o.bytes.si();
    EXPECT_LE(with_cache, dram_only) << b;
  }
}

// ResNet-50 layer1.1's last 1x1 conv (64 -> 256 at 56 x 56) with the residual add in its epilogue,
// INT8 batch 32 on L4's 48 MB L2, by LRU stack distance (physics/cache_reuse.hpp):
//  * its input Y (conv2's output, 6.42 MB) was written just before; beside it stream the 25.7 MB
//    output, the 16 kB weights and the skip X, touched before Y: hit (C - Y) / (w3 + X + X);
//  * the skip X (the block input, 25.7 MB) was last read by the block's first conv, with w1, Y1,
//    w2 and Y2 touched since: hit (C - X - D) / (w3 + X).
TEST(EnginePhysics, ResidualSkipTensorsReuseTheCacheByStackDistance) {
  SolveRequest r;
  r.phase = Phase::Inference;
  r.precision = Precision::INT8;
  r.batch = 32;
  const Profile p = run("resnet50", "l4", r);
  const double C = 48e6, X = 32.0 * 256 * 56 * 56, Y = 32.0 * 64 * 56 * 56;
  const double w1 = 256.0 * 64, w2 = 64.0 * 64 * 9, w3 = 64.0 * 256;
  const double hit_input = (C - Y) / (w3 + 2 * X);
  const double hit_skip = (C - X - (w1 + Y + w2 + Y)) / (w3 + X);
  ASSERT_GT(hit_skip, 0.0);
  ASSERT_LT(hit_input, 1.0);
  // Operators: stem, pool, layer1.0 (4 convs, the add in the last), layer1.1 conv1, conv2, conv3.
  const OperatorResult& conv3 = p.operators.at(8);
  ASSERT_EQ(conv3.name, "conv1x1");
  ASSERT_DOUBLE_EQ(conv3.flops.si(), 2.0 * X * 64 + X);  // the GEMM plus the add
  EXPECT_NEAR(conv3.bytes.si(), w3 + X + (1 - hit_input) * Y + (1 - hit_skip) * X, 1.0);
  // At batch 256 the 205 MB skip tensor cannot stay: input and skip both come from DRAM.
  r.batch = 256;
  const OperatorResult& big = run("resnet50", "l4", r).operators.at(8);
  EXPECT_NEAR(big.bytes.si(), w3 + 8 * (X + Y + X), 1.0);
}

TEST(EnginePhysics, BidirectionalAttentionComputesWholeTiles) {
  SolveRequest r;
  r.phase = Phase::Inference;
  r.batch = 8;
  // ViT-B/16: 197 tokens (196 patches + class token), 12 heads of 64, 12 layers. The kernel runs
  // two 128-row query tiles against two 128-key blocks: 256 x 256 products for 197 x 197 useful.
  const Profile p = run("vit-b16", "h100", r);
  const OperatorResult& a = op(p, "attention");
  const double useful = 12 * 8 * 12 * 2.0 * 197 * 197 * (64 + 64);
  EXPECT_DOUBLE_EQ(a.flops.si(), useful);
  EXPECT_NEAR(p.hardware_flops.si() - p.model_flops.si(), useful * (256.0 * 256 / (197 * 197) - 1),
              1e-6 * useful);
  // BERT at 512 tokens is a whole number of tiles: nothing wasted.
  r.seq_len = 512;
  const Profile b = run("bert-base", "h100", r);
  EXPECT_DOUBLE_EQ(b.hardware_flops.si(), b.model_flops.si());
}

TEST(EnginePhysics, MaterializedAttentionWritesTheScoresToMemory) {
  SolveRequest flash, mat;
  flash.phase = mat.phase = Phase::Prefill;
  flash.seq_len = mat.seq_len = 1024;
  mat.attention = AttentionKernel::Materialized;
  const Profile f = run("llama3-8b", "h100", flash), m = run("llama3-8b", "h100", mat);
  const double layers = 32, heads = 32, S = 1024, d = 128;
  const double scores = heads * S * S;  // batch 1: every query-key product of each head
  // QK^T as a dense batched GEMM computes all S x S products; model FLOPs count the causal pairs.
  EXPECT_DOUBLE_EQ(op(m, "attn_scores").flops.si(), layers * 2 * heads * (S * (S + 1) / 2) * d);
  EXPECT_DOUBLE_EQ(op(m, "attn_softmax").bytes.si(), layers * 2 * scores * 2);  // read + write, bf16
  // Same model FLOPs as the fused kernel; more hardware FLOPs and more bytes; never faster.
  EXPECT_DOUBLE_EQ(op(m, "attn_scores").flops.si() + op(m, "attn_context").flops.si(),
                   op(f, "attention").flops.si());
  // Extra hardware FLOPs: the masked half of both GEMMs, and the softmax's 5 per score.
  EXPECT_DOUBLE_EQ(m.hardware_flops.si() - f.hardware_flops.si(),
                   layers * (2 * heads * (S * S - S * (S + 1) / 2) * (2 * d) + 5 * scores));
  EXPECT_GT(m.bytes_moved, f.bytes_moved);
  EXPECT_GT(m.latency, f.latency);
  EXPECT_THROW(op(m, "attention"), std::runtime_error);
  // Training without recomputation saves the softmax output per layer: heads x S x S x 2 bytes
  // (llama3-8b has no dropout), on top of what the fused kernel's backward needs.
  SolveRequest tf = flash, tm = mat;
  tf.phase = tm.phase = Phase::Train;
  EXPECT_DOUBLE_EQ(run("llama3-8b", "h100", tm).memory.activations.si() -
                       run("llama3-8b", "h100", tf).memory.activations.si(),
                   layers * scores * 2);
  // Selective recomputation recomputes exactly those scores.
  tf.recompute = tm.recompute = Recompute::Selective;
  EXPECT_DOUBLE_EQ(run("llama3-8b", "h100", tm).memory.activations.si(),
                   run("llama3-8b", "h100", tf).memory.activations.si());
}

TEST(EnginePhysics, AttentionRateGrowsWithTheKeysEachQueryVisits) {
  const HardwareSpec& h100 = hw("h100");
  ASSERT_GT(h100.efficiency.attention_half_keys, 0);  // calibrated from the attention microbench
  SolveRequest shorter, longer;
  shorter.phase = longer.phase = Phase::Prefill;
  shorter.seq_len = 512;
  longer.seq_len = 8192;
  const Profile ps = run("llama3-8b", "h100", shorter), pl = run("llama3-8b", "h100", longer);
  const OperatorResult& a = op(ps, "attention");
  const OperatorResult& b = op(pl, "attention");
  // Causal prefill of S tokens: each query row visits (S + 1) / 2 keys on average.
  const double keys = (512 + 1) / 2.0;
  const double peak = h100.peak(Precision::BF16).si();
  const double rate = peak * h100.efficiency.attention * keys / (keys + h100.efficiency.attention_half_keys);
  // Plus, per layer, the causal tail: the last 128-row block over all 512 keys (QK^T and PV at
  // head dim 128) alone on one of the 132 SMs.
  ASSERT_GT(h100.efficiency.attention_tail, 0);
  const double tail = h100.efficiency.attention_tail * (2.0 * 128 * 512 * 256) / (peak / 132);
  EXPECT_NEAR(a.timing.compute.si(), a.flops.si() / rate + 32 * tail, 1e-12);
  EXPECT_GT(b.flops.si() / b.timing.compute.si(), a.flops.si() / a.timing.compute.si());
  // One decode token is its own block: a 1-row tail over the cache, tiny next to the KV stream.
  SolveRequest decode;
  decode.context = 4096;
  const OperatorResult& d = op(run("llama3-8b", "h100", decode), "attention");
  EXPECT_LT(d.timing.compute, d.timing.memory);
}

TEST(EnginePhysics, WeightOnlyQuantizationPaysDequantizationOnVectorUnits) {
  SolveRequest r;
  r.precision = Precision::INT4;
  r.compute_precision = Precision::BF16;
  r.context = 0;
  const Profile p = run("llama2-70b", "a100-80gb", r);
  const HardwareSpec& a100 = hw("a100-80gb");
  // gate_up_proj weights: 80 layers x 8192 x 2*28672; 4 vector ops each at the fp32 vector rate.
  const double weights = 80.0 * 8192 * 2 * 28672;
  const double dequant = weights * 4 / (a100.peak(Precision::FP32).si() * a100.efficiency.vector);
  EXPECT_NEAR(op(p, "gate_up_proj").timing.compute.si(), dequant, 1e-12);
  EXPECT_GT(op(p, "gate_up_proj").timing.compute, op(p, "gate_up_proj").timing.memory);
  // Math narrower than the weights is rejected.
  SolveRequest bad;
  bad.precision = Precision::BF16;
  bad.compute_precision = Precision::INT8;
  EXPECT_THROW(run("llama3-8b", "h100", bad), BadInput);
}

TEST(EnginePhysics, OperatorsCarryTheirPlaceInTheModel) {
  // GPT-2 Hugging Face training: embedding + its dropout open the model, the final norm, its
  // autocast input cast, the LM head and the loss close it; everything else is the layer body.
  SolveRequest r;
  r.phase = Phase::Train;
  r.runtime = Runtime::Eager;
  r.fusion = Fusion::Hf;
  r.seq_len = 1024;
  const Profile p = run("gpt2", "h100", r);
  int embedding = 0, head = 0;
  for (const auto& o : p.operators) {
    if (o.pass != Pass::Forward) continue;
    const std::string name = o.name;
    if (o.role == OpRole::Embedding) {
      ++embedding;
      EXPECT_TRUE(name == "embedding" || name == "embedding_dropout") << name;
    } else if (o.role == OpRole::Head) {
      ++head;
      EXPECT_TRUE(name == "final_norm" || name == "amp_input_cast" || name == "lm_head" ||
                  name == "cross_entropy") << name;
    } else {
      EXPECT_NE(name, "lm_head");
    }
  }
  EXPECT_EQ(embedding, 2);
  EXPECT_EQ(head, 4);
  // Materialized attention: its four pieces are the attention core; the fused kernel is not there.
  r.attention = AttentionKernel::Materialized;
  int core = 0;
  for (const auto& o : run("gpt2", "h100", r).operators)
    if (o.pass == Pass::Forward && o.role == OpRole::AttentionCore) ++core;
  EXPECT_EQ(core, 4);  // scores, softmax, probability dropout, context
}

TEST(EnginePhysics, QuantizedLanguageModelsKeepTheirHeadInSixteenBits) {
  SolveRequest r;
  r.precision = Precision::FP8;  // llama3-8b decode, batch 1, context 1024
  const Profile fp8 = run("llama3-8b", "h100", r);
  EXPECT_EQ(fp8.head_precision, Precision::BF16);
  EXPECT_EQ(fp8.embedding_precision, Precision::BF16);
  // The head reads its 128256 x 4096 bf16 matrix (2 B/weight), plus the bf16 input and logits.
  const double v = 128256, h = 4096;
  EXPECT_DOUBLE_EQ(op(fp8, "lm_head").bytes.si(), v * h * 2 + h * 2 + v * 2);
  EXPECT_DOUBLE_EQ(op(fp8, "qkv_proj").bytes.si(), 32 * (h * 6144 * 1 + h * 1 + 6144 * 2));

  r.quantize_head = true;  // gpt-fast: the head quantized with the rest
  const Profile q = run("llama3-8b", "h100", r);
  EXPECT_EQ(q.head_precision, Precision::FP8);
  EXPECT_EQ(q.embedding_precision, Precision::BF16);  // a lookup table: never quantized
  EXPECT_DOUBLE_EQ(op(q, "lm_head").bytes.si(), v * h * 1 + h * 1 + v * 2);
  // Invariant: a wider head never makes the step faster, and costs exactly its extra bytes.
  EXPECT_GT(fp8.latency.si(), q.latency.si());
  EXPECT_DOUBLE_EQ((fp8.memory.weights - q.memory.weights).si(), v * h * (2 - 1));
}

TEST(EnginePhysics, OnlyLanguageModelsOnDevicesWithASixteenBitPathKeepAWideHead) {
  SolveRequest r;
  r.precision = Precision::INT8;
  r.phase = Phase::Inference;
  EXPECT_EQ(run("resnet50", "h100", r).head_precision, Precision::INT8);  // no LM head
  r.phase = Phase::Decode;
  // The A17 Pro's neural engine lists int8 only: nothing to keep the head in.
  const Profile phone = run("llama3.2-1b", "a17-pro", r);
  EXPECT_EQ(phone.head_precision, Precision::INT8);
  EXPECT_DOUBLE_EQ(phone.weight_bytes.si(), parameter_count(model("llama3.2-1b")) * 1.0);
  r.precision = Precision::BF16;  // nothing quantized: nothing differs
  const Profile bf16 = run("llama3-8b", "h100", r);
  EXPECT_EQ(bf16.head_precision, Precision::BF16);
  EXPECT_DOUBLE_EQ(bf16.weight_bytes.si(), parameter_count(model("llama3-8b")) * 2.0);
}

TEST(EnginePhysics, Fp8TrainingPaysTransformerEngineCastsAndTransposes) {
  SolveRequest r;
  r.phase = Phase::Train;
  r.seq_len = 2048;
  r.precision = Precision::FP8;  // llama3-8b: h 4096, q 4096, k+v 2048, ffn 14336, 32 layers
  const Profile fp8 = run("llama3-8b", "h100", r);
  const double N = 2048, h = 4096, q = 4096, kv = 2048, ffn = 14336, layers = 32;
  // Forward: the O projection's input cast and transposed (2 B in, 1 + 1 B out).
  EXPECT_DOUBLE_EQ(op(fp8, "fp8_cast_transpose").bytes.si(), layers * N * 4 * q);
  // Backward: three FP8 inputs transposed (1 B in, 1 B out) and three output gradients cast and
  // transposed (2 B in, 1 + 1 B out).
  EXPECT_DOUBLE_EQ(op(fp8, "fp8_cast_transpose", Pass::Backward).bytes.si(),
                   layers * N * (2 * (h + h + ffn) + 4 * ((q + kv) + h + h)));
  r.precision = Precision::BF16;
  EXPECT_FALSE(has_op(run("llama3-8b", "h100", r), "fp8_cast_transpose"));  // nothing to convert
}

// Selective recomputation (Korthikanti et al. 2022) drops the attention core's activations and
// recomputes it in the backward pass: with materialized attention it saves memory and costs the
// attention core's forward again (scores and context GEMMs, softmax, dropout); with a fused kernel,
// which recomputes inside its own backward anyway, it changes nothing.
TEST(EnginePhysics, SelectiveRecomputationRecomputesTheAttentionCore) {
  SolveRequest none;
  none.phase = Phase::Train;
  none.batch = 2;
  none.seq_len = 2048;
  none.attention = AttentionKernel::Materialized;
  SolveRequest selective = none;
  selective.recompute = Recompute::Selective;
  const Profile a = run("llama3.2-1b", "h100", none), b = run("llama3.2-1b", "h100", selective);
  EXPECT_LT(b.memory.activations.si(), a.memory.activations.si());
  double core_forward_flops = 0;
  for (const auto& op : a.operators)
    if (op.role == OpRole::AttentionCore && op.pass == Pass::Forward) core_forward_flops += op.flops.si();
  ASSERT_GT(core_forward_flops, 0);
  EXPECT_GT(b.latency.si(), a.latency.si());
  // The extra hardware work is the attention core's forward at its padded (all-pairs) size: at
  // least its model FLOPs, at most twice them (the causal mask's skipped half).
  const double extra = b.hardware_flops.si() - a.hardware_flops.si();
  EXPECT_GE(extra, core_forward_flops * (1 - 1e-9));
  EXPECT_LE(extra, 2.0 * core_forward_flops + 1e9);
  SolveRequest fused = selective;
  fused.attention = AttentionKernel::Flash;
  SolveRequest fused_none = none;
  fused_none.attention = AttentionKernel::Flash;
  EXPECT_DOUBLE_EQ(run("llama3.2-1b", "h100", fused).latency.si(), run("llama3.2-1b", "h100", fused_none).latency.si());
}


// Qwen3's per-head q/k RMSNorm: two norm calls per layer, reading and writing q and k once.
TEST(EnginePhysics, QkNormIsTwoNormCallsPerLayerOverQAndK) {
  SolveRequest r;
  r.batch = 4;
  const Profile p = run("qwen3-8b", "h100", r);
  const OperatorResult& norm = op(p, "qk_norm");
  EXPECT_DOUBLE_EQ(norm.count, 36);
  EXPECT_DOUBLE_EQ(norm.kernels, 2.0 * 36);
  const double elems = 4.0 * (32 * 128 + 8 * 128);  // q and k of 4 new tokens
  EXPECT_DOUBLE_EQ(norm.bytes.si(), 36 * 2 * elems * 2);
  // The same model without them launches fewer kernels and finishes sooner.
  ModelSpec without = model("qwen3-8b");
  without.tf.qk_norm = false;
  const Profile q = solve(without, hw("h100"), r);
  EXPECT_FALSE(has_op(q, "qk_norm"));
  EXPECT_LT(q.latency.si(), p.latency.si());
  EXPECT_DOUBLE_EQ(p.kernels - q.kernels, 2.0 * 36);
}

// FP8 training keeps each GEMM input for its weight gradient as the FP8 copy the GEMM read
// (TransformerEngine), and the O projection's copy beside the 16-bit attention output its backward
// keeps: Llama-3 8B (h 4096, q 4096, FFN 14336, 32 layers) at 2048 tokens saves
// 2048 x 32 x (4096 + 4096 + 14336 - 4096) x (2 - 1) B against bf16.
TEST(EnginePhysics, Fp8TrainingKeepsItsGemmInputsAsFp8Copies) {
  SolveRequest r;
  r.phase = Phase::Train;
  r.seq_len = 2048;
  r.precision = Precision::BF16;
  const Profile bf16 = run("llama3-8b", "h100", r);
  r.precision = Precision::FP8;
  const Profile fp8 = run("llama3-8b", "h100", r);
  EXPECT_DOUBLE_EQ(bf16.memory.activations.si() - fp8.memory.activations.si(),
                   2048.0 * 32 * (4096 + 4096 + 14336 - 4096));
}

TEST(EnginePhysics, DynamicActivationScalingQuantizesEachGemmInputInAKernelOfItsOwn) {
  // Llama-3.1-8B FP8 decode at batch 4 on an H100: dynamic scales add, per layer, one reduce-and-cast
  // kernel for each of the 4 inputs the linears read (QKV: hidden 4096; O: 32 heads x 128 = 4096;
  // MLP: 4096; down: 14336), each reading 2 B and writing 1 B per element: 4 x 32 kernels and
  // 4 tokens x (4096 + 4096 + 4096 + 14336) x 3 B x 32 layers of traffic. A quantized head adds its
  // input (4096 per token) in one more kernel.
  SolveRequest r;
  r.phase = Phase::Decode;
  r.batch = 4;
  r.context = 512;
  r.precision = Precision::FP8;
  r.kv_precision = Precision::BF16;
  const Profile fixed = run("llama3.1-8b", "h100", r);
  r.activation_scaling = ActivationScaling::Dynamic;
  const Profile dynamic = run("llama3.1-8b", "h100", r);
  EXPECT_DOUBLE_EQ(dynamic.kernels - fixed.kernels, 4.0 * 32);
  EXPECT_NEAR((dynamic.bytes_moved - fixed.bytes_moved).si(), 4.0 * (4096 + 4096 + 4096 + 14336) * 3 * 32, 1.0);
  EXPECT_GT(dynamic.latency.si(), fixed.latency.si());
  r.quantize_head = true;
  SolveRequest static_head = r;
  static_head.activation_scaling = ActivationScaling::Static;
  const Profile head_fixed = run("llama3.1-8b", "h100", static_head);
  const Profile head_dynamic = run("llama3.1-8b", "h100", r);
  EXPECT_DOUBLE_EQ(head_dynamic.kernels - head_fixed.kernels, 4.0 * 32 + 1);
  // Only 8-bit math has scales to take; training prices its own FP8 casts; decoders only.
  r.quantize_head = false;
  r.precision = Precision::BF16;
  EXPECT_THROW(run("llama3.1-8b", "h100", r), BadInput);
  r.precision = Precision::FP8;
  r.phase = Phase::Train;
  r.seq_len = 512;
  EXPECT_THROW(run("llama3.1-8b", "h100", r), BadInput);
  SolveRequest bert;
  bert.precision = Precision::FP8;
  bert.activation_scaling = ActivationScaling::Dynamic;
  EXPECT_THROW(run("bert-base", "h100", bert), BadInput);
}

TEST(EnginePhysics, TrainingStepsRunMatrixKernelsAtTheSustainedClock) {
  // A training step keeps the tensor cores saturated, so the board holds its power limit at a lower
  // clock: an H100's matrix kernels run at the sustained BF16 matmul rate (MSMF 745 of 989 TFLOP/s,
  // catalog/calibration/published_sustained_matmul.toml) over its calibrated burst rate.
  const HardwareSpec& h100 = hw("h100");
  const double burst = h100.efficiency.gemm[index_of(Precision::BF16)];
  ASSERT_NEAR(h100.efficiency.sustained_gemm, 745.0 / 989.0, 1e-4);
  const double expected = h100.efficiency.sustained_gemm / burst;
  EXPECT_NEAR(sustained_clock_factor({&h100, Runtime::Graph, 0, true}), expected, 1e-12);
  EXPECT_LT(expected, 1.0);
  // Outside a sustained run, under the textbook model, on a device without a sustained rate, and
  // where the calibrated burst is already below it (our H200 microbenchmark), nothing changes.
  EXPECT_EQ(sustained_clock_factor({&h100, Runtime::Graph, 0, false}), 1.0);
  EXPECT_EQ(sustained_clock_factor({&h100, Runtime::Graph, 0.5, true}), 1.0);
  EXPECT_EQ(sustained_clock_factor({&hw("a100-80gb"), Runtime::Graph, 0, true}), 1.0);
  EXPECT_EQ(sustained_clock_factor({&hw("h200"), Runtime::Graph, 0, true}), 1.0);

  // In a step: a compute-bound GEMM's time grows by exactly 1 / factor against the same device
  // without the sustained rate; memory-bound kernels keep their time; a prefill keeps the burst clock.
  HardwareSpec burst_only = h100;
  burst_only.efficiency.sustained_gemm = 0;
  SolveRequest train;
  train.phase = Phase::Train;
  train.seq_len = 4096;
  const Profile held = solve(model("llama3-8b"), h100, train);
  const Profile free = solve(model("llama3-8b"), burst_only, train);
  const auto& gemm_held = op(held, "gate_up_proj");
  const auto& gemm_free = op(free, "gate_up_proj");
  ASSERT_EQ(gemm_held.timing.wall(), Wall::Compute);
  EXPECT_NEAR(gemm_held.timing.compute.si() / gemm_free.timing.compute.si(), 1.0 / expected, 1e-9);
  EXPECT_DOUBLE_EQ(op(held, "act_mul").timing.memory.si(), op(free, "act_mul").timing.memory.si());
  EXPECT_GT(held.latency, free.latency);
  SolveRequest prefill = train;
  prefill.phase = Phase::Prefill;
  EXPECT_DOUBLE_EQ(solve(model("llama3-8b"), h100, prefill).latency.si(),
                   solve(model("llama3-8b"), burst_only, prefill).latency.si());
  // The explanation says so.
  bool said = false;
  for (const auto& line : explain(held)) said = said || line.find("Sustained run") != std::string::npos;
  EXPECT_TRUE(said);
}
