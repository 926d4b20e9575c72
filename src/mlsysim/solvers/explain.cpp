// The readable trace of a solve: which wall binds, which equation, which numbers.
#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/physics/memory.hpp"
#include "mlsysim/physics/power.hpp"
#include "mlsysim/solvers/engine.hpp"
#include "mlsysim/units/format.hpp"

namespace mlsysim {
namespace {

// ", except ..." for the weights line when quantization left the embedding table or head in 16 bits.
std::string kept_in_16_bits(const Profile& p) {
  const bool embedding = p.embedding_precision != p.precision, head = p.head_precision != p.precision;
  if (!embedding && !head) return "";
  return fmt::format(", except the {} in {} (quantization toolkits leave {} out{})",
                     head ? "embedding table and output head" : "embedding table",
                     to_string(p.embedding_precision), head ? "them" : "it",
                     head ? "; --quantize-head quantizes the head too" : "");
}

}  // namespace

std::vector<std::string> explain(const Profile& p) {
  const HardwareSpec& hw = *p.hardware;
  const ModelSpec& m = *p.model;
  std::vector<std::string> lines;
  std::string shape = fmt::format("batch {}", p.batch);
  if (p.phase == Phase::Decode) shape += fmt::format(", {} tokens cached", p.context);
  else if (p.seq_len > 0) shape += fmt::format(", {} tokens/sequence", p.seq_len);
  lines.push_back(fmt::format("Workload: {} {} ({}) on {} at {}{}.", m.id, to_string(p.phase),
                              shape, hw.name, to_string(p.precision),
                              p.precision_fallback
                                  ? fmt::format(" weights with {} math (fallback: {} has no {} "
                                                "compute path)",
                                                to_string(p.compute_precision), hw.id,
                                                to_string(p.precision))
                                  : ""));
  lines.push_back(fmt::format("Lowered into {} operators ({} kernel launches, {} kernels, {} "
                              "runtime): {} of model work, {} moved.",
                              p.operators.size(), std::lround(p.kernels),
                              p.fusion == Fusion::Fused    ? "fused"
                              : p.fusion == Fusion::Hf     ? "Hugging Face module"
                                                           : "unfused one-per-op",
                              to_string(p.runtime), format_flops(p.model_flops),
                              format_bytes(p.bytes_moved)));
  lines.push_back(fmt::format("Weights: {} params x {} B{} = {}; streaming them once at the datasheet "
                              "{} takes {}.",
                              format_count(p.parameters), bytes_per_element(p.precision),
                              kept_in_16_bits(p),
                              format_bytes(p.weight_bytes), format_bandwidth(hw.memory_bandwidth),
                              format_time(p.weight_stream_time)));
  if (p.lora.enabled())
    lines.push_back(fmt::format(
        "LoRA (Hu et al. 2021): {}, {} trainable params ({:.3f}% of the model); "
        "the frozen base's GEMMs compute input gradients only (1x forward FLOPs instead of 2x), and gradients "
        "and Adam states exist for the adapters alone.",
        p.lora.describe(), format_count(p.trainable_parameters), 100 * p.trainable_parameters / p.parameters));
  if (p.teaching_efficiency > 0) {
    lines.push_back(fmt::format(
        "Textbook model: T = max(FLOPs / (peak x eta), bytes / BW) = max({} / ({} x {}), {} / {}).",
        format_flops(p.model_flops), format_rate(hw.peak(p.compute_precision)),
        p.teaching_efficiency, format_bytes(p.bytes_moved), format_bandwidth(hw.memory_bandwidth)));
  } else {
    lines.push_back(fmt::format(
        "Per operator: t = max(FLOPs / achieved FLOP/s, bytes / achieved B/s) + launch overhead; "
        "achieved bandwidth {} ({} of datasheet), large-GEMM efficiency {} of {} peak [{}].",
        format_bandwidth(hw.memory_bandwidth * hw.efficiency.memory),
        format_percent(hw.efficiency.memory), format_percent(hw.efficiency.gemm[index_of(p.compute_precision)]),
        format_rate(hw.peak(p.compute_precision)), hw.efficiency.source));
    const double clock = sustained_clock_factor(rate_model(hw, p));
    if (clock < 1.0)
      lines.push_back(fmt::format(
          "Sustained run: a training step keeps the tensor cores saturated, so the board holds its power "
          "limit at a lower clock; matrix kernels run at x{:.3f} of their calibrated rate (sustained BF16 "
          "matmul {} of {} peak over the calibrated burst {}; {}).",
          clock, format_percent(hw.efficiency.sustained_gemm), format_rate(hw.peak(Precision::BF16)),
          format_percent(hw.efficiency.gemm[index_of(Precision::BF16)]), hw.efficiency.sustained_gemm_source));
  }
  const double lat = p.latency.si();
  auto share = [&](Seconds t) { return format_percent(lat > 0 ? t.si() / lat : 0); };
  lines.push_back(fmt::format("Time: compute-bound operators {} ({}), memory-bound operators {} ({}), "
                              "launch/dispatch overhead {} ({}); latency {}.",
                              format_time(p.compute_time), share(p.compute_time),
                              format_time(p.memory_time), share(p.memory_time),
                              format_time(p.overhead_time), share(p.overhead_time),
                              format_time(p.latency)));
  lines.push_back(fmt::format("Arithmetic intensity {:.1f} FLOP/B vs ridge point {:.0f} FLOP/B "
                              "(peak / bandwidth) -> {} side of the roofline.",
                              p.arithmetic_intensity.si(), p.ridge_point.si(),
                              p.arithmetic_intensity < p.ridge_point ? "memory" : "compute"));
  // The operator that costs the most time.
  if (!p.operators.empty()) {
    auto top = std::max_element(p.operators.begin(), p.operators.end(),
                                [](const auto& a, const auto& b) {
                                  return a.timing.total() < b.timing.total();
                                });
    lines.push_back(fmt::format("Largest operator: {} ({}{}) {} = {} of latency, {}-bound.", top->name,
                                to_string(top->pass), top->count > 1
                                    ? fmt::format(", x{}", std::lround(top->count)) : "",
                                format_time(top->timing.total()), share(top->timing.total()),
                                to_string(top->timing.wall())));
  }
  lines.push_back(fmt::format("Binding wall: {}. MFU {} (model FLOPs / (latency x peak)), HFU {}; "
                              "throughput {:.4g} {}.",
                              to_string(p.bottleneck), format_percent(p.mfu), format_percent(p.hfu),
                              p.throughput, p.throughput_unit));
  const auto& mem = p.memory;
  lines.push_back(fmt::format(
      "Memory: weights {} + KV cache {} + activations {} + gradients {} + optimizer {} = {} of {} "
      "-> {}.",
      format_bytes(mem.weights), format_bytes(mem.kv_cache), format_bytes(mem.activations),
      format_bytes(mem.gradients), format_bytes(mem.optimizer_states), format_bytes(mem.total()),
      format_bytes(p.memory_capacity), p.feasible ? "fits" : "DOES NOT FIT"));
  const PowerCoefficients pc = power_coefficients(hw);
  const BoardPowerLevels levels = board_power_levels(hw);
  lines.push_back(fmt::format(
      "Energy: {} per step at {} average: each kernel body at TDP {} x min(1, {:.2f} + {:.2f} x t_mem/t_body + "
      "{:.2f} x t_comp/t_body) (memory-bound {}, compute-bound at the limit), launch gaps at the {} floor "
      "(docs/PHYSICS.md, Power).",
      format_energy(p.energy), format_power(p.average_power()), format_power(hw.tdp), pc.idle, pc.memory, pc.compute,
      format_power(levels.memory_bound), format_power(levels.idle)));
  return lines;
}

namespace {

// The weights' bytes if they were stored at `q` (the embedding table and head kept as solve() would
// keep them), for the does-not-fit remedies.
Bytes quantized_weight_bytes(const Profile& p, Precision q) {
  LoweringInput in;
  in.weight_precision = q;
  in.embedding_precision = unquantized_precision(*p.model, *p.hardware, q);
  const bool head_quantized = p.head_precision == p.precision && p.embedding_precision != p.precision;
  in.head_precision = head_quantized ? q : in.embedding_precision;
  return weight_bytes(*p.model, in, p.parameters);
}

}  // namespace

std::string describe_usable_memory(const HardwareSpec& hw) {
  if (hw.memory_usable == hw.memory_capacity) return format_bytes(hw.memory_capacity);
  return fmt::format("{} usable ({} on the datasheet)", format_bytes(hw.memory_usable),
                     format_bytes(hw.memory_capacity));
}

std::string does_not_fit_message(const Profile& p) {
  if (p.feasible) return {};
  const ModelSpec& m = *p.model;
  const HardwareSpec& hw = *p.hardware;
  const MemoryLedger& mem = p.memory;
  const Bytes need = mem.total(), have = p.memory_capacity;
  std::string msg = fmt::format("{} {} needs {} (weights {}, KV cache {}, activations {}{}), {} has {}",
                                m.id, to_string(p.phase), format_bytes(need),
                                format_bytes(mem.weights), format_bytes(mem.kv_cache),
                                format_bytes(mem.activations),
                                p.phase == Phase::Train
                                    ? fmt::format(", gradients {}, optimizer {}",
                                                  format_bytes(mem.gradients),
                                                  format_bytes(mem.optimizer_states))
                                    : "",
                                hw.id, describe_usable_memory(hw));
  std::vector<std::string> remedies;
  const int devices = static_cast<int>(std::ceil(need.si() / have.si()));
  remedies.push_back(fmt::format("shard across >= {} devices (tensor/pipeline parallel: tp_size >= {})",
                                 devices, devices));
  // Lower-precision weights (weight-only quantization keeps everything else). Training keeps
  // floating-point weights, except a LoRA run's frozen base (QLoRA: 16-bit math over it).
  const bool training = p.phase == Phase::Train;
  for (Precision q : {Precision::FP8, Precision::INT8, Precision::INT4}) {
    if (bytes_per_element(q) >= bytes_per_element(p.precision)) continue;
    const bool integer = q != Precision::FP8;
    if (training && integer && !p.lora.enabled()) continue;
    if (training && q == Precision::FP8 && !hw.supports(q)) continue;  // no FP8 math to train in
    const Bytes weights_q = quantized_weight_bytes(p, q);
    if (need - mem.weights + weights_q <= have) {
      remedies.push_back(fmt::format("use --precision {}{} (weights {} -> {})", to_string(q),
                                     training && integer ? " --compute-precision bf16 (QLoRA)" : "",
                                     format_bytes(mem.weights), format_bytes(weights_q)));
      break;
    }
  }
  // Fine-tuning with LoRA drops the base's gradients and optimizer states (Hu et al. 2021).
  if (training && !p.lora.enabled() && m.is_transformer() && mem.gradients + mem.optimizer_states > Bytes(0))
    remedies.push_back(fmt::format("fine-tuning? use --lora-rank 16 (trains low-rank adapters only: gradients and "
                                   "optimizer states {} -> well under 1% of that)",
                                   format_bytes(mem.gradients + mem.optimizer_states)));
  if (mem.kv_cache.si() > 0 && mem.weights < have) {
    const double per_seq = mem.kv_cache.si() / p.batch;
    const double spare = (have - mem.weights - mem.activations).si();
    const int max_batch = per_seq > 0 ? static_cast<int>(spare / per_seq) : 0;
    if (max_batch >= 1 && max_batch < p.batch)
      remedies.push_back(fmt::format("use --batch-size <= {} (KV cache {} per sequence)", max_batch,
                                     format_bytes(Bytes(per_seq))));
  }
  if (p.phase == Phase::Train && p.recompute != Recompute::Full && mem.activations.si() > 0)
    remedies.push_back("use --recompute full (keeps one activation per layer)");
  // A larger device of the same kind from the built-in catalog.
  const HardwareSpec* bigger = nullptr;
  for (const auto& other : Catalog::builtin().all_hardware()) {
    if (other.kind != hw.kind || other.memory_usable < need) continue;
    if (!bigger || other.memory_usable < bigger->memory_usable) bigger = &other;
  }
  if (bigger)
    remedies.push_back(fmt::format("use a device with more memory, e.g. {} ({})", bigger->id,
                                   format_bytes(bigger->memory_capacity)));
  msg += ": ";
  for (size_t i = 0; i < remedies.size(); ++i) msg += (i ? "; or " : "") + remedies[i];
  return msg;
}

}  // namespace mlsysim
