#include "mlsysim/solvers/engine.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "mlsysim/errors.hpp"
#include "mlsysim/physics/launch_queue.hpp"
#include "mlsysim/physics/power.hpp"
#include "mlsysim/physics/transformer.hpp"

namespace mlsysim {
namespace {

constexpr int kMaxBatch = 1 << 20;
constexpr int kDefaultContext = 1024;  // decode: tokens already cached when --context is omitted
constexpr int kDefaultLmSeqLen = 2048; // prefill/train length for LMs without a default_seq

void check_phase(const ModelSpec& m, Phase phase) {
  const bool lm = m.is_language_model();
  if ((phase == Phase::Prefill || phase == Phase::Decode) && !lm)
    throw BadInput(std::string("--phase ") + to_string(phase) + " needs a language model with a "
                   "KV cache; " + m.id + " is " + a_kind_model(m.kind) +
                   ": use --phase inference or train");
}

int default_seq_len(const ModelSpec& m) {
  if (!m.is_transformer()) return 0;
  if (m.tf.default_seq > 0) return m.tf.default_seq;
  return m.tf.max_seq > 0 ? std::min(kDefaultLmSeqLen, m.tf.max_seq) : kDefaultLmSeqLen;
}

// The math precision: the requested one if the device has it, else weight-only quantization
// with the device's best 16/32-bit path (reported as a fallback), else an error.
Precision compute_precision_for(const HardwareSpec& hw, Precision wanted, bool& fallback) {
  fallback = false;
  if (hw.supports(wanted)) return wanted;
  if (wanted == Precision::FP16 && hw.supports(Precision::BF16)) return fallback = true, Precision::BF16;
  if (wanted == Precision::BF16 && hw.supports(Precision::FP16)) return fallback = true, Precision::FP16;
  const bool quantized = bytes_per_element(wanted) < 2.0;
  if (quantized || wanted == Precision::TF32) {
    for (Precision p : {Precision::BF16, Precision::FP16, Precision::FP32})
      if (hw.supports(p)) return fallback = true, p;
  }
  refuse_precision(hw, wanted, "--precision");
}

Precision default_precision(const HardwareSpec& hw) {
  // Microcontrollers and NPUs run 8-bit integer models (TFLite Micro, NNAPI/Core ML int8).
  const bool integer_first = hw.kind == "mcu" || hw.kind == "npu";
  if (integer_first && hw.supports(Precision::INT8)) return Precision::INT8;
  for (Precision p : {Precision::BF16, Precision::FP16, Precision::FP32, Precision::INT8})
    if (hw.supports(p)) return p;
  return Precision::FP32;
}

void validate(const ModelSpec& m, const SolveRequest& r, int seq_len, int context) {
  if (r.batch < 1 || r.batch > kMaxBatch)
    throw BadInput("--batch-size must be in [1, " + std::to_string(kMaxBatch) + "], got " +
                   std::to_string(r.batch));
  check_textbook_efficiency(r.efficiency);
  if (r.seq_len && *r.seq_len < 1)
    throw BadInput("--seq-len must be >= 1, got " + std::to_string(*r.seq_len));
  if (r.context && *r.context < 0)
    throw BadInput("--context must be >= 0, got " + std::to_string(*r.context));
  if (m.is_transformer() && m.tf.max_seq > 0) {
    const long total = static_cast<long>(seq_len) + context;
    if (total > m.tf.max_seq)
      throw BadInput(m.id + " handles at most " + std::to_string(m.tf.max_seq) +
                     " tokens (max_seq); got " + std::to_string(seq_len) + " new + " +
                     std::to_string(context) + " cached = " + std::to_string(total) +
                     ": lower --seq-len/--context");
  }
}

}  // namespace

// What quantization leaves in 16 bits. Token embeddings are a lookup table, not a linear layer, so
// no quantization method below touches them. The output head (LM head) is a linear layer that the
// serving toolkits skip: NVIDIA ModelOpt's presets (TensorRT-LLM's FP8/INT8/INT4 checkpoints)
// disable "*lm_head*" (modelopt/torch/quantization/config.py, _default_disabled_quantizer_cfg);
// vLLM's FP8 and AWQ/GPTQ methods quantize the decoder's linear layers, not the vocabulary-parallel
// head; Megatron-LM's FP8 runs Transformer Engine inside the transformer layers while its output
// layer is a plain BF16 ColumnParallelLinear. gpt-fast quantizes every nn.Linear, its head
// included (SolveRequest::quantize_head).
Precision unquantized_precision(const ModelSpec& model, const HardwareSpec& hw, Precision weights) {
  if (!model.is_language_model() || bytes_per_element(weights) >= 2.0) return weights;
  if (hw.supports(Precision::BF16)) return Precision::BF16;
  if (hw.supports(Precision::FP16)) return Precision::FP16;
  return weights;  // no 16-bit path on this device (NPUs, microcontrollers): everything stays quantized
}

Phase resolved_phase(const ModelSpec& model, std::optional<Phase> requested) {
  const Phase phase = requested.value_or(model.kind == ModelKind::Decoder ? Phase::Decode : Phase::Inference);
  return phase == Phase::Inference && model.kind == ModelKind::Decoder ? Phase::Prefill : phase;
}

bool step_takes_seq_len(const ModelSpec& model, Phase phase) {
  return model.is_transformer() && phase != Phase::Decode &&
         !(model.kind == ModelKind::EncoderDecoder && phase == Phase::Inference);
}

bool step_takes_context(const ModelSpec& model, Phase phase) {
  return model.is_language_model() && (phase == Phase::Decode || phase == Phase::Prefill);
}

namespace {

// LoRA is a way to train, attaching to a transformer's linear layers at a rank below their width
// (Hu et al. 2021 use 1-64; above the width an adapter is no longer low-rank).
void check_lora(const ModelSpec& model, const LoraSpec& lora, Phase phase, const std::string& step) {
  if (lora.rank == 0) return;
  if (phase != Phase::Train)
    throw BadInput(fmt::format("--lora-rank does not apply to {}: LoRA adapters are a way to train; use "
                               "--phase train or drop --lora-rank", step));
  if (!model.is_transformer())
    throw BadInput(fmt::format("--lora-rank: LoRA adapters attach to a transformer's linear layers; {} is {}: "
                               "drop --lora-rank", model.id, a_kind_model(model.kind)));
  if (lora.rank < 0 || lora.rank > model.tf.hidden)
    throw BadInput(fmt::format("--lora-rank must be in [1, {}] ({}'s hidden size; typical ranks are 8-64), got {}",
                               model.tf.hidden, model.id, lora.rank));
}

// A field the step does not use is an error, not silently dropped: `--seq-len 4096` on a decode
// step usually means a 4096-token history, which is --context.
void reject_unused_fields(const ModelSpec& model, const SolveRequest& request, Phase phase) {
  const std::string step = model.id + "'s " + to_string(phase) + " step";
  if (request.seq_len && !step_takes_seq_len(model, phase)) {
    if (phase == Phase::Decode)
      throw BadInput(fmt::format("--seq-len does not apply to a decode step: it processes 1 new token per "
                                 "sequence; give the tokens already cached with --context {}, or use "
                                 "--phase prefill for a {}-token prompt",
                                 *request.seq_len, *request.seq_len));
    if (!model.is_transformer())
      throw BadInput(fmt::format("--seq-len does not apply to {}: {} takes fixed-size inputs, not token "
                                 "sequences; drop --seq-len",
                                 model.id, a_kind_model(model.kind)));
    throw BadInput(fmt::format("--seq-len does not apply to {} (the encoder pass over a fixed-size input); "
                               "use --phase prefill or decode for the decoder",
                               step));
  }
  if (request.context && *request.context != 0 && !step_takes_context(model, phase))
    throw BadInput(fmt::format("--context (tokens already in the KV cache) does not apply to {}: only a "
                               "language model's prefill and decode steps read a KV cache; drop --context",
                               step));
  check_lora(model, request.lora, phase, step);
  if (request.kv_precision && !step_takes_context(model, phase))
    throw BadInput(fmt::format("--kv-precision does not apply to {}: it keeps no KV cache (only a language "
                               "model's prefill and decode steps do); drop --kv-precision",
                               step));
  if (request.recompute != Recompute::None && phase != Phase::Train)
    throw BadInput(fmt::format("--recompute does not apply to {}: activation recomputation trades backward-pass "
                               "time for training memory; use --phase train or drop --recompute",
                               step));
}

// Phase, shape and defaults of the step (validated).
void resolve_shape(const ModelSpec& model, const SolveRequest& request, Profile& p) {
  p.phase = resolved_phase(model, request.phase);
  check_phase(model, p.phase);
  reject_unused_fields(model, request, p.phase);
  p.batch = request.batch;
  p.seq_len = p.phase == Phase::Decode ? 1
              : step_takes_seq_len(model, p.phase) ? request.seq_len.value_or(default_seq_len(model))
                                                   : 0;
  const int longest = model.is_transformer() && model.tf.max_seq > 0 ? model.tf.max_seq : 1 << 30;
  p.context = p.phase == Phase::Decode ? request.context.value_or(std::min(kDefaultContext, longest - 1))
              : step_takes_context(model, p.phase) ? request.context.value_or(0)
                                                   : 0;
  validate(model, request, p.seq_len, p.context);
}

// Training runs its forward and backward in floating point (mixed precision over fp32 master
// weights): an integer format, or a narrow format the device cannot compute in (weight-only
// quantization is an inference technique), would price a step nobody can run.
// The exception is a LoRA run's frozen base, which may be stored int8/int4 and dequantized into
// 16-bit math (QLoRA, Dettmers et al. 2023): only the adapters train.
void check_training_precision(const HardwareSpec& hw, const Profile& p) {
  const std::string wanted(to_string(p.precision));
  const bool integer_weights = p.precision == Precision::INT8 || p.precision == Precision::INT4;
  if (integer_weights && p.lora.enabled()) {
    if (bytes_per_element(p.compute_precision) < 2.0)  // 16-bit and wider formats are all floating point
      throw BadInput(fmt::format("--precision {} with --lora-rank: the frozen base can be stored {} (QLoRA), but "
                                 "the math must be 16-bit floating point: add --compute-precision bf16",
                                 wanted, wanted));
    return;
  }
  if (integer_weights)
    throw BadInput(fmt::format("--precision {}: training computes in floating point (bf16/fp16, or fp8 mixed "
                               "precision where the device has it); {} is an inference format: use --precision "
                               "bf16{}",
                               wanted, wanted, hw.supports(Precision::FP8) ? " or fp8" : ""));
  if (p.precision_fallback && bytes_per_element(p.precision) < 2.0)
    throw BadInput(fmt::format("--precision {}: {} has no {} compute path, and training cannot run weight-only "
                               "quantized: use --precision {}",
                               wanted, hw.id, wanted, hw.supports(Precision::FP8) ? "fp8 or bf16" : "bf16"));
}

// Weight, math and KV-cache precisions on this device (fallbacks reported, impossibilities rejected).
void resolve_precisions(const HardwareSpec& hw, const SolveRequest& request, Profile& p) {
  p.precision = request.precision.value_or(default_precision(hw));
  if (request.compute_precision) {
    const Precision math = *request.compute_precision;
    if (!hw.supports(math)) refuse_precision(hw, math, "--compute-precision");
    if (bytes_per_element(math) < bytes_per_element(p.precision))
      throw BadInput("--compute-precision " + std::string(to_string(math)) +
                     " is narrower than the weights (" + std::string(to_string(p.precision)) +
                     "): math runs at least as wide as the stored weights");
    p.compute_precision = math;
    p.precision_fallback = false;
  } else {
    p.compute_precision = compute_precision_for(hw, p.precision, p.precision_fallback);
  }
  if (p.phase == Phase::Train) check_training_precision(hw, p);
  // The KV cache is stored at the math precision (8-bit math -> 8-bit KV), never below 8 bits.
  Precision kv_default = p.compute_precision;
  if (bytes_per_element(kv_default) < 1.0)
    kv_default = hw.supports(Precision::FP8) ? Precision::FP8 : Precision::INT8;
  p.kv_precision = request.kv_precision.value_or(kv_default);
  p.embedding_precision = unquantized_precision(*p.model, hw, p.precision);
  p.head_precision = request.quantize_head ? p.precision : p.embedding_precision;
}

LoweringInput lowering_input(const Profile& p) {
  LoweringInput in;
  in.phase = p.phase;
  in.batch = p.batch;
  in.seq_len = p.seq_len;
  in.context = p.context;
  in.weight_precision = p.precision;
  in.compute_precision = p.compute_precision;
  in.kv_precision = p.kv_precision;
  in.head_precision = p.head_precision;
  in.embedding_precision = p.embedding_precision;
  in.recompute = p.recompute;
  in.fused = p.fusion == Fusion::Fused;
  in.hf_modules = p.fusion == Fusion::Hf;
  in.attention = p.attention;
  in.lora = p.lora;
  in.activation_scaling = p.activation_scaling;
  if (p.teaching_efficiency <= 0) in.cache_bytes = p.hardware->last_level_cache.si();
  return in;
}

// A step's energy in units of TDP x seconds: kernel bodies at their own power, gaps at the floor.
struct EnergyTerms {
  PowerCoefficients power;
  double body_power = 0, idle_time = 0;
  [[nodiscard]] Joules energy(const HardwareSpec& hw) const {
    return hw.tdp * Seconds(body_power + power.idle * idle_time);
  }
};

// Eager runtime: each operator's overhead becomes its launch gaps plus the host time the launch
// queue leaves exposed in this step's program order (physics/launch_queue.hpp), instead of the
// operator-alone max(GPU, host).
void queue_eager_dispatch(const std::vector<Operator>& ops, std::vector<OpTiming>& timings) {
  thread_local std::vector<QueuedOperator> queue;
  queue.clear();
  for (size_t i = 0; i < ops.size(); ++i) {
    const double n = ops[i].count > 0 ? ops[i].count : 1;
    queue.push_back({timings[i].host / n, (timings[i].body() + timings[i].launch_gaps) / n, ops[i].count});
  }
  thread_local std::vector<Seconds> exposed;
  exposed_host_time(queue, exposed);
  for (size_t i = 0; i < ops.size(); ++i) timings[i].overhead = timings[i].launch_gaps + exposed[i];
}

// Adds one timed operator to the step's sums (and to the per-operator breakdown when kept).
void accumulate_operator(const Operator& op, const OpTiming& t, bool keep_operators, Profile& p,
                         EnergyTerms& e) {
  if (keep_operators)
    p.operators.push_back({op.name, op.cls, op.role, op.pass, op.count, op.kernels * op.count,
                           Flops(op.flops * op.count), Bytes(op.bytes * op.count), t});
  p.model_flops += Flops(op.flops * op.count);
  p.hardware_flops += Flops(op.hw_flops * op.count);
  p.bytes_moved += Bytes(op.bytes * op.count);
  p.kernels += op.kernels * op.count;
  p.overhead_time += t.overhead;
  if (t.compute >= t.memory) p.compute_time += t.compute;
  else p.memory_time += t.memory;
  const double body = t.body().si();
  if (body > 0)
    e.body_power += body * body_power_fraction(e.power, t.memory.si() / body, t.compute.si() / body);
  e.idle_time += t.overhead.si();
}

// Times every operator and sums the step by wall (each operator's time goes to its binding wall).
EnergyTerms accumulate_operators(const std::vector<Operator>& ops, const RateModel& rates,
                                 bool keep_operators, Profile& p) {
  EnergyTerms e{power_coefficients(*rates.hw)};
  if (keep_operators) p.operators.reserve(ops.size());
  if (rates.runtime != Runtime::Eager || rates.teaching_efficiency > 0) {
    // Graph replay (and the textbook model): each operator's time stands alone, one pass.
    for (const Operator& op : ops) accumulate_operator(op, time_operator(rates, op), keep_operators, p, e);
    return e;
  }
  // Eager: the launch queue needs every operator's host and GPU time first.
  thread_local std::vector<OpTiming> timings;
  timings.clear();
  for (const Operator& op : ops) timings.push_back(time_operator(rates, op));
  queue_eager_dispatch(ops, timings);
  for (size_t i = 0; i < ops.size(); ++i) accumulate_operator(ops[i], timings[i], keep_operators, p, e);
  return e;
}

// Textbook model: one roofline for the whole step, T = max(FLOPs/(peak*eta), bytes/BW).
EnergyTerms apply_textbook_model(const HardwareSpec& hw, Profile& p) {
  const Seconds tc = p.model_flops / (hw.peak(p.compute_precision) * p.teaching_efficiency);
  const Seconds tm = p.bytes_moved / hw.memory_bandwidth;
  p.compute_time = tc >= tm ? tc : Seconds(0);
  p.memory_time = tc >= tm ? Seconds(0) : tm;
  p.overhead_time = Seconds(0);
  const double body = max(tc, tm).si();
  EnergyTerms e{power_coefficients(hw)};
  if (body > 0) e.body_power = body * body_power_fraction(e.power, tm.si() / body, tc.si() / body);
  return e;
}

// Latency, the binding wall, intensity vs ridge, MFU/HFU and throughput from the summed times.
void summarize_step(const ModelSpec& model, const HardwareSpec& hw, Profile& p) {
  p.latency = p.compute_time + p.memory_time + p.overhead_time;
  if (p.compute_time >= p.memory_time && p.compute_time >= p.overhead_time) p.bottleneck = Wall::Compute;
  else if (p.memory_time >= p.overhead_time) p.bottleneck = Wall::Memory;
  else p.bottleneck = Wall::Overhead;

  p.arithmetic_intensity = p.bytes_moved.si() > 0 ? p.model_flops / p.bytes_moved : FlopsPerByte(0);
  p.ridge_point = hw.ridge_point(p.compute_precision);
  const double denom = p.latency.si() * hw.peak(p.compute_precision).si();
  p.mfu = denom > 0 ? p.model_flops.si() / denom : 0;
  p.hfu = denom > 0 ? p.hardware_flops.si() / denom : 0;

  // Tokens for LM prefill/train (every token is work); sequences/samples otherwise.
  const bool tokens_are_items = model.is_language_model() &&
                                (p.phase == Phase::Prefill || p.phase == Phase::Train);
  const double items = tokens_are_items ? static_cast<double>(p.batch) * p.seq_len : p.batch;
  p.throughput = p.latency.si() > 0 ? items / p.latency.si() : 0;
  p.throughput_unit = (model.is_language_model() && p.phase != Phase::Inference) ? "tokens/s"
                                                                                 : "samples/s";
}

// Dynamic scaling quantizes GEMM inputs at run time: an 8-bit-math inference step of a decoder.
void check_activation_scaling(const ModelSpec& model, const Profile& p) {
  if (p.activation_scaling == ActivationScaling::Static) return;
  const bool eight_bit = p.compute_precision == Precision::FP8 || p.compute_precision == Precision::INT8;
  if (!eight_bit)
    throw BadInput(fmt::format("--activation-scaling dynamic quantizes GEMM inputs to 8 bits, but the math runs in "
                               "{}: use it with --precision fp8 or int8 (W8A8)",
                               to_string(p.compute_precision)));
  if (p.phase == Phase::Train)
    throw BadInput("--activation-scaling applies to inference steps; an FP8 training step already prices "
                   "Transformer Engine's casts (--precision fp8 with --phase train)");
  if (model.kind != ModelKind::Decoder)
    throw BadInput("--activation-scaling dynamic is modelled for decoder language models; " + model.id +
                   " is not one: leave it static");
}

}  // namespace

void refuse_precision(const HardwareSpec& hw, Precision wanted, std::string_view flag) {
  // Suggest the nearest path: the narrowest one at least as wide as the one asked for, of the same
  // kind (integer or floating point) where there is a choice; fp4 -> fp8, int4 -> int8.
  const auto is_integer = [](Precision p) { return to_string(p)[0] == 'i'; };
  std::string have;
  std::optional<Precision> nearest;
  for (Precision p : kAllPrecisions) {
    if (!hw.supports(p)) continue;
    have += (have.empty() ? "" : ", ") + std::string(to_string(p));
    if (bytes_per_element(p) < bytes_per_element(wanted)) continue;
    const auto rank = [&](Precision q) { return std::pair{bytes_per_element(q), is_integer(q) != is_integer(wanted)}; };
    if (!nearest || rank(p) < rank(*nearest)) nearest = p;
  }
  if (have.empty()) throw BadInput(fmt::format("{} lists no compute path (no dense peak at any precision)", hw.id));
  throw BadInput(fmt::format("{} has no {} compute path; it supports {}: use {} {}", hw.id, to_string(wanted), have,
                             flag, nearest ? to_string(*nearest) : have.substr(0, have.find(','))));
}

void check_textbook_efficiency(double efficiency) {
  // Below 1% the factor stops describing a device (textbook values are 0.3-0.6) and drives every
  // time toward infinity; 0 (the default) selects the calibrated per-operator model instead.
  constexpr double kLowest = 0.01;
  if (efficiency != 0 && !(efficiency >= kLowest && efficiency <= 1))
    throw BadInput(fmt::format("--efficiency must be in [{}, 1] (the textbook's single efficiency factor, "
                               "typically 0.3-0.6; leave it out for the calibrated per-operator model), got {}",
                               kLowest, efficiency));
}

RateModel rate_model(const HardwareSpec& hw, const Profile& p) {
  // A training step is one of a long saturated run: its matrix kernels at the power-limited clock.
  return {&hw, p.runtime, p.teaching_efficiency, p.phase == Phase::Train};
}

Profile solve(const ModelSpec& model, const HardwareSpec& hw, const SolveRequest& request) {
  Profile p;
  p.model = &model;
  p.hardware = &hw;
  resolve_shape(model, request, p);
  p.lora = request.lora;
  resolve_precisions(hw, request, p);
  p.recompute = request.recompute;
  p.runtime = request.runtime;
  p.fusion = resolve_fusion(request.fusion, request.runtime);
  p.attention = request.attention;
  p.activation_scaling = request.activation_scaling;
  check_activation_scaling(model, p);
  p.teaching_efficiency = request.efficiency;
  if (p.teaching_efficiency <= 0) require_attention_kernel(hw, p.attention);

  const LoweringInput in = lowering_input(p);
  thread_local std::vector<Operator> ops;
  const LoweredStep lowered = lower(model, in, ops);

  const RateModel rates = rate_model(hw, p);
  EnergyTerms energy = accumulate_operators(ops, rates, request.keep_operators, p);
  if (p.teaching_efficiency > 0) energy = apply_textbook_model(hw, p);
  summarize_step(model, hw, p);

  p.parameters = parameter_count(model);
  p.trainable_parameters = lowered.trainable_parameters;
  p.memory = memory_ledger(model, in, p.parameters, p.trainable_parameters);
  p.weight_bytes = p.memory.weights;
  p.weight_stream_time = p.weight_bytes / hw.memory_bandwidth;
  // Fits against what a process can allocate (the CUDA-visible total), not the datasheet label.
  p.memory_capacity = hw.memory_usable;
  p.feasible = p.memory.total() <= hw.memory_usable;
  p.energy = energy.energy(hw);
  return p;
}

Watts static_power(const HardwareSpec& hw) { return hw.tdp * power_coefficients(hw).idle; }

}  // namespace mlsysim
