// The single-node engine (`Engine.solve` in the tutorial): lower a workload into operators, time
// each one on the device (physics/efficiency.hpp), sum, and report the binding wall, MFU/HFU,
// throughput, the memory ledger and energy. Front ends call this; they never compute physics.
#pragma once

#include <string_view>

#include <optional>
#include <string>
#include <vector>

#include "mlsysim/catalog/hardware.hpp"
#include "mlsysim/catalog/model.hpp"
#include "mlsysim/physics/efficiency.hpp"
#include "mlsysim/physics/memory.hpp"
#include "mlsysim/physics/operators.hpp"

namespace mlsysim {

struct SolveRequest {
  std::optional<Phase> phase;          // default: decode for decoders, inference otherwise
  int batch = 1;
  std::optional<int> seq_len;          // prefill / train / inference tokens per sequence
  std::optional<int> context;          // decode: tokens already in the KV cache
  std::optional<Precision> precision;  // weights (and math where the device supports it)
  std::optional<Precision> kv_precision;
  // Math precision when it differs from the weights': e.g. int8 or int4 weight-only quantization
  // (weights dequantized into bf16 math, as GPTQ/AWQ/gpt-fast kernels do). Must be supported.
  std::optional<Precision> compute_precision;
  // Quantize the output head (LM head) with the other weights, as gpt-fast does. Off (the
  // default): a language model whose weights are narrower than 16 bits keeps its head in 16 bits,
  // as the quantization toolkits and FP8 training recipes do (unquantized_precision()).
  bool quantize_head = false;
  Recompute recompute = Recompute::None;
  Runtime runtime = Runtime::Graph;
  Fusion fusion = Fusion::Auto;  // auto: fused under graph, unfused under eager
  AttentionKernel attention = AttentionKernel::Flash;
  // Training: LoRA fine-tuning of a transformer (rank 0: every weight trains). With LoRA the frozen
  // base may be stored int8/int4 under 16-bit math (QLoRA, Dettmers et al. 2023).
  LoraSpec lora;
  // 8-bit inference: calibrated (static) or run-time (dynamic) scales for the GEMM inputs; dynamic
  // adds one reduce-and-cast kernel per quantized GEMM input (ActivationScaling, physics/operators.hpp).
  ActivationScaling activation_scaling = ActivationScaling::Static;
  double efficiency = 0;  // > 0: the textbook single-efficiency model (teaching mode)
  bool keep_operators = true;  // false: skip the per-operator breakdown (sweeps: no allocation)
};

struct OperatorResult {
  const char* name;
  OpClass cls;
  OpRole role;
  Pass pass;
  double count;
  double kernels;
  Flops flops;  // all repeats
  Bytes bytes;  // all repeats
  OpTiming timing;
  [[nodiscard]] FlopsPerByte intensity() const {
    return bytes.si() > 0 ? flops / bytes : FlopsPerByte(0);
  }
};

struct Profile {
  const ModelSpec* model = nullptr;
  const HardwareSpec* hardware = nullptr;
  Phase phase = Phase::Decode;
  int batch = 1, seq_len = 0, context = 0;
  Precision precision = Precision::BF16;          // weights
  Precision compute_precision = Precision::BF16;  // math
  Precision kv_precision = Precision::BF16;
  Precision head_precision = Precision::BF16;       // output head (LM head)
  Precision embedding_precision = Precision::BF16;  // token-embedding table
  bool precision_fallback = false;  // device lacks `precision` math: weight-only quantization
  Recompute recompute = Recompute::None;
  Runtime runtime = Runtime::Graph;
  Fusion fusion = Fusion::Fused;  // resolved (never Auto)
  AttentionKernel attention = AttentionKernel::Flash;
  LoraSpec lora;
  ActivationScaling activation_scaling = ActivationScaling::Static;
  double teaching_efficiency = 0;

  Seconds latency{}, compute_time{}, memory_time{}, overhead_time{};
  Wall bottleneck = Wall::Memory;
  Flops model_flops{}, hardware_flops{};
  Bytes bytes_moved{};
  FlopsPerByte arithmetic_intensity{}, ridge_point{};
  double throughput = 0;               // per second
  const char* throughput_unit = "";    // "tokens/s" or "samples/s"
  double mfu = 0, hfu = 0;
  double parameters = 0;
  double trainable_parameters = 0;     // training: what the optimizer updates (LoRA: the adapters)
  Bytes weight_bytes{};
  Seconds weight_stream_time{};        // weights / datasheet bandwidth (the napkin number)
  MemoryLedger memory;
  Bytes memory_capacity{};  // what the footprint is compared against: HardwareSpec::memory_usable
  bool feasible = true;
  Joules energy{};
  double kernels = 0;
  std::vector<OperatorResult> operators;

  [[nodiscard]] Watts average_power() const {
    return latency.si() > 0 ? energy / latency : Watts(0);
  }
};

Profile solve(const ModelSpec& model, const HardwareSpec& hw, const SolveRequest& request);

// The step a request times: its phase, else the model's own (decode for decoders, inference
// otherwise); a decoder's "inference" is its prefill.
Phase resolved_phase(const ModelSpec& model, std::optional<Phase> requested);
// Which request fields the step uses. A decode step processes one new token per sequence (its
// history is the context); training and encoder passes cache nothing; CNN, DLRM and opaque models
// take fixed-size inputs, not token sequences. solve() rejects a field given where it does not
// apply (a context of 0 is always accepted: nothing cached); sweeps vary only the ones that do.
bool step_takes_seq_len(const ModelSpec& model, Phase phase);
bool step_takes_context(const ModelSpec& model, Phase phase);
// The textbook model's single efficiency: 0 (unset) keeps the calibrated model, anything else must
// lie in (0, 1]. Every solver that takes one checks it here; BadInput otherwise.
void check_textbook_efficiency(double efficiency);
// BadInput: `hw` has no `wanted` compute path; names the ones it has and suggests `flag` with the first.
[[noreturn]] void refuse_precision(const HardwareSpec& hw, Precision wanted, std::string_view flag);

// What the device draws with nothing running: the static share of its TDP in the engine's energy
// model (energy = TDP x (static x time + dynamic terms)).
Watts static_power(const HardwareSpec& hw);

// The format a language model keeps its token-embedding table (and, unless quantize_head, its
// output head) in when the other weights are stored at `weights`: 16 bits (bf16, else fp16) when
// the weights are narrower and the device has a 16-bit path; `weights` otherwise.
Precision unquantized_precision(const ModelSpec& model, const HardwareSpec& hw, Precision weights);

// The rates a profile's operators are timed at: its runtime, the textbook model's efficiency, and
// the sustained clock of a training step.
RateModel rate_model(const HardwareSpec& hw, const Profile& p);
// The reasoning behind a profile: which wall, which equation, which numbers (one line each).
std::vector<std::string> explain(const Profile& p);
// "model needs X GB, device has Y GB: ..." with concrete remedies; empty when it fits.
std::string does_not_fit_message(const Profile& p);
// "85.0 GB usable (80.0 GB on the datasheet)", or the datasheet figure where the catalog has no
// measured usable memory.
std::string describe_usable_memory(const HardwareSpec& hw);

}  // namespace mlsysim
