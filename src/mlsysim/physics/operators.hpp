// Operator-level lowering: a workload (model + phase + shapes + precision) becomes a short list of
// operators, each with its FLOPs and the bytes it moves. Identical transformer layers are lowered
// once and carry a repeat count, so a solve costs the same for 32 or 126 layers.
#pragma once

#include <string>
#include <vector>

#include "mlsysim/catalog/model.hpp"
#include "mlsysim/physics/precision.hpp"

namespace mlsysim {

enum class Phase { Inference, Prefill, Decode, Train };
const char* to_string(Phase p);

enum class Recompute { None, Selective, Full };
const char* to_string(Recompute r);

// What runs on which unit; selects the achieved-rate model in physics/efficiency.hpp.
enum class OpClass { Gemm, Attention, Conv, Vector, Gather, Optimizer, Opaque };
const char* to_string(OpClass c);

enum class Pass { Forward, Recompute, Backward, Update };
const char* to_string(Pass p);

// Where an operator sits in the model, for solvers that split a step (pipeline stages, the
// attention share of a layer): the repeated layer body, the token embedding (first pipeline stage),
// the output head and loss (last stage), or a piece of a materialized attention core (its scores,
// softmax, dropout and context; the fused kernel is OpClass::Attention).
enum class OpRole { Layer, Embedding, Head, AttentionCore };

// How the attention core runs:
//  * Flash: one fused FlashAttention-style kernel at the device's calibrated attention rate (what
//    PyTorch SDPA picks: cuDNN's or FlashAttention-3's Hopper kernels, FlashAttention-2 on Ampere);
//  * Materialized: the scores written to memory (pre-2022 attention, Megatron-LM 2021);
//  * FlashAttention2: the FlashAttention-2 kernel (Dao 2023) on a device calibrated for it. Its
//    softmax runs between the two matmuls of each tile in the same warps, so the exponentials'
//    special-function time adds to the matmul time instead of hiding behind it (the overlap is what
//    FlashAttention-3 adds: Shah et al. 2024, sec. 3).
enum class AttentionKernel { Flash, Materialized, FlashAttention2 };
// How 8-bit (FP8, INT8) inference gets the scales of its GEMM inputs. Static: calibrated scales
// shipped with the checkpoint, so the kernel that produces each input (a norm, the activation, the
// attention output) writes it in 8 bits itself (TensorRT-LLM/ModelOpt checkpoints, vLLM's fused
// norm + quant). Dynamic: each input's scale is its amax at run time, so every quantized GEMM input
// takes one reduce-and-cast kernel of its own before the GEMM (SGLang's per-token-group quant,
// torchao's float8 dynamic recipes, vLLM's on-line `--quantization fp8` outside its fusion pass).
enum class ActivationScaling { Static, Dynamic };

// Which weight matrix a GEMM multiplies by, for fine-tuning that trains only some of them:
// none (activations times activations: a materialized attention core), the attention sub-block's
// projections, the MLP's (dense or expert), the other weights (embedding, output head, router,
// pooler), or a LoRA adapter's low-rank factor.
enum class LinearKind { None, Attention, Mlp, Other, Adapter };

// Low-rank adaptation (Hu et al. 2021, "LoRA", arXiv:2106.09685): the pretrained weights stay
// frozen and each targeted linear W (k inputs -> n outputs) gains a trainable path x A B with
// A: k x r and B: r x n, added to x W. rank 0: no adapters (every weight trains).
enum class LoraTargets { Attention, All };  // the attention projections; or every layer linear
const char* to_string(LoraTargets t);
struct LoraSpec {
  int rank = 0;
  LoraTargets targets = LoraTargets::Attention;
  [[nodiscard]] bool enabled() const { return rank > 0; }
  // "rank 16 on the attention linears" (or "... on the layer linears"), for traces and tables.
  [[nodiscard]] std::string describe() const;
  // Whether a GEMM of this kind gets an adapter.
  [[nodiscard]] bool adapts(LinearKind k) const {
    return enabled() && (k == LinearKind::Attention || (k == LinearKind::Mlp && targets == LoraTargets::All));
  }
};

// Query rows per thread block of FlashAttention-style kernels at head dim 128 (FlashAttention-2
// paper, Dao 2023, forward block B_r = 128; FlashAttention-3 and cuDNN's Hopper kernels likewise).
constexpr double kAttentionQueryBlock = 128;

// Fused attention backward FLOPs per forward FLOP: 5 matmuls against the forward's 2
// (FlashAttention-2, Dao 2023).
constexpr double kAttentionBackwardFlopsFactor = 2.5;

// FLOPs of the longest query block of an attention call: `rows` queries (at most one block) over
// `max_keys` keys, QK^T and PV (2 FLOPs per multiply-add each, head dims dk and dv).
double attention_tail_flops(double rows, double max_keys, double dk, double dv);

struct Operator {
  const char* name = "";  // static string: lowering never allocates names
  Pass pass = Pass::Forward;
  OpClass cls = OpClass::Vector;
  double flops = 0;       // model FLOPs per instance (the useful math)
  double hw_flops = 0;    // FLOPs the hardware executes (adds recomputation)
  double bytes = 0;       // bytes read + written per instance (weights, activations, KV cache)
  double strided_bytes = 0;  // the part of `bytes` moved by strided (non-vectorized) kernels
  double m = 0, n = 0, k = 0;  // GEMM / implicit-GEMM shape, for wave quantization
  double count = 1;       // repeats (e.g. layers)
  double kernels = 1;     // kernel launches per instance
  // Framework calls the host dispatches per instance under an eager runtime, where it differs from
  // `kernels` (0: one call per kernel). Each costs EfficiencyProfile::host_dispatch.
  double host_ops = 0;
  double vector_flops = 0;  // extra vector-unit work per instance (weight-only dequantization)
  // Attention: FLOPs of the longest query block (kAttentionQueryBlock rows over the most keys any
  // block visits), which runs last and alone (EfficiencyProfile::attention_tail).
  double tail_flops = 0;
  // Attention: softmax exponentials per instance, one per attended (query, key) pair and head. The
  // backward pass recomputes them once (FlashAttention-2, Dao 2023, Algorithm 2).
  double special_function_ops = 0;
  AttentionKernel attention_kernel = AttentionKernel::Flash;  // Attention class only
  // Backward kernels and bytes per forward ones (training). 2 by default: an input-gradient and a
  // weight-gradient GEMM, or an element-wise gradient that reads the saved input and the incoming
  // gradient. 1 for ops whose gradient is one pass of the same size (dropout, dtype casts).
  double backward_scale = 2.0;
  Precision precision = Precision::BF16;  // math precision
  OpRole role = OpRole::Layer;
  LinearKind linear = LinearKind::None;  // GEMMs: the weight it multiplies by
  double instances = 1;  // weight matrices of that kind it stands for: the experts, for a routed-expert GEMM
};

// One fused attention call, the way kernel papers benchmark it (`mlsysim kernel`, and the
// calibration fit of kernel timings): `batch` x `heads` sequences of `seq` queries over as many keys.
struct AttentionCall {
  double batch = 1, heads = 1, head_dim = 128, seq = 0;
  bool causal = false, backward = false;
  Precision precision = Precision::BF16;
  AttentionKernel kernel = AttentionKernel::Flash;
};
// Its operator: FlashAttention papers' FLOPs (4·B·H·S²·D forward, halved when causal; backward
// kAttentionBackwardFlopsFactor x), Q, K, V in and O out, one softmax exponential per score.
Operator attention_call_operator(const AttentionCall& c);

struct LoweringInput {
  Phase phase = Phase::Decode;
  int batch = 1;
  int seq_len = 0;   // tokens per sequence processed (prefill/train/inference)
  int context = 0;   // cached tokens before this step (decode)
  Precision weight_precision = Precision::BF16;
  Precision compute_precision = Precision::BF16;
  Precision kv_precision = Precision::BF16;
  // The output head's and the token-embedding table's formats: the solver keeps them in 16 bits
  // when the other weights are quantized (SolveRequest::quantize_head). The head's GEMM runs in its.
  Precision head_precision = Precision::BF16;
  Precision embedding_precision = Precision::BF16;
  Recompute recompute = Recompute::None;
  // Fused (compiled/graph runtimes): residual adds ride in the next norm (vLLM's
  // fused_add_rms_norm; cuDNN/TensorRT conv epilogues), RoPE, activation and norm are one kernel
  // each. Unfused (eager PyTorch): every op is its own kernel and re-reads its inputs; CNN batch
  // norm and activation run after each convolution (bench/gpu/results/*profile*: ~32 kernels per
  // Llama layer in eager PyTorch, against ~10 fused).
  bool fused = true;
  // Hugging Face transformers modules (implies unfused): see Fusion::Hf in efficiency.hpp.
  bool hf_modules = false;
  // Last-level GPU cache (L2, AMD's Infinity Cache) that can keep a producer's output for its
  // consumer; 0 (the textbook model, or devices without one): every read comes from DRAM. Used for
  // CNN layer chains, where activations are the traffic (physics/lowering.cpp, Emitter::cache_holds).
  double cache_bytes = 0;
  // How the attention core runs (AttentionKernel above).
  AttentionKernel attention = AttentionKernel::Flash;
  // Training: LoRA fine-tuning (frozen base weights, trainable adapters) instead of full training.
  LoraSpec lora;
  // 8-bit inference: how the GEMM inputs get their scales (ActivationScaling above).
  ActivationScaling activation_scaling = ActivationScaling::Static;
};

// What a lowering found besides its operators.
struct LoweredStep {
  // Training: the parameters the optimizer updates (all of them; with LoRA, the adapters').
  double trainable_parameters = 0;
};

// Appends the operators of one step of `in.phase` to `out` (cleared first).
LoweredStep lower(const ModelSpec& model, const LoweringInput& in, std::vector<Operator>& out);

}  // namespace mlsysim
