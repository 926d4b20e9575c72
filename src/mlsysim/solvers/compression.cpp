#include "mlsysim/solvers/compression.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "mlsysim/catalog/compression_literature.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/physics/transformer.hpp"
#include "mlsysim/solvers/engine.hpp"
#include "mlsysim/solvers/serving.hpp"
#include "mlsysim/units/format.hpp"

namespace mlsysim {

const char* to_string(CompressionMethod m) {
  return m == CompressionMethod::Quantization ? "quantization" : "pruning";
}
const char* to_string(QuantScheme s) {
  switch (s) {
    case QuantScheme::Auto: return "auto";
    case QuantScheme::WeightOnly: return "weight-only";
    case QuantScheme::WeightsActivations: return "weights-activations";
  }
  return "?";
}

namespace {

struct Variant {
  const ModelSpec* model;
  const HardwareSpec* hw;
  Precision precision;
  std::optional<Precision> kv_precision;
  bool quantize_head = false;
};

Profile run(const Variant& v, Phase phase, const CompressionRequest& r) {
  SolveRequest s;
  s.phase = phase;
  s.batch = r.batch;
  if (phase == Phase::Decode) s.context = r.context;
  else s.seq_len = r.prefill_tokens, s.context = 0;
  s.precision = v.precision;
  s.kv_precision = v.kv_precision;
  s.quantize_head = v.quantize_head;
  s.efficiency = r.efficiency;
  s.runtime = r.runtime;
  return solve(*v.model, *v.hw, s);
}

FleetRow fleet_row(const std::string& label, const Variant& v, const CompressionRequest& r) {
  FleetRow row;
  row.label = label;
  ServingRequest s;
  s.seq_len = r.fleet_seq_len;
  s.output_len = r.fleet_output_len;
  s.batch = r.fleet_batch;
  s.precision = v.precision;
  s.kv_precision = v.kv_precision;
  s.quantize_head = v.quantize_head;
  s.efficiency = r.efficiency;
  s.runtime = r.runtime;
  const ServingResult sr = serve(*v.model, *v.hw, s);
  row.model_size = sr.weights_per_gpu * static_cast<double>(sr.tp);
  row.feasible = sr.feasible;
  row.gpus_per_replica = sr.feasible ? sr.tp : 0;
  row.ttft = sr.ttft;
  row.itl = sr.itl;
  if (sr.feasible) {
    row.replica_qps = r.fleet_batch / sr.e2e_latency.si();
    row.replicas = r.qps > 0 ? static_cast<int>(std::ceil(r.qps / row.replica_qps - 1e-9)) : 1;
    row.total_gpus = row.replicas * row.gpus_per_replica;
    row.annual_cost = usd(row.total_gpus * r.costs.gpu_hour_usd * kHoursPerYear);
    const Seconds per_token(1.0 / sr.request_tokens_per_s);  // time between the replica's tokens
    const Watts gpu_power = sr.energy_per_token / per_token / static_cast<double>(sr.gpus);
    row.annual_energy = facility_energy(gpu_power * units::hours(kHoursPerYear) * static_cast<double>(row.total_gpus),
                                        r.costs.pue);
    row.annual_emissions = operational_emissions(row.annual_energy, r.costs.grid_intensity);
  }
  return row;
}

}  // namespace

namespace {

void check_request(const ModelSpec& model, const CompressionRequest& r) {
  // The speedup is a decode (and prefill) step's, and the accuracy ranges are LLM literature.
  if (model.kind != ModelKind::Decoder)
    throw BadInput(fmt::format("compress prices a language model's decode and prefill steps and cites "
                               "LLM accuracy studies; {} is a {} model: compare its precisions with "
                               "`mlsysim solve --model {} --phase inference --precision int8` (or fp8, "
                               "bf16) instead",
                               model.id, to_string(model.kind), model.id));
  if (!(r.sparsity >= 0.0 && r.sparsity < 1.0))
    throw BadInput(fmt::format("--sparsity must be in [0, 1) (fraction of weights removed), got {}",
                               r.sparsity));
  if (r.method == CompressionMethod::Pruning && r.sparsity_type == SparsityType::NM24 &&
      std::abs(r.sparsity - 0.5) > 1e-9)
    throw BadInput(fmt::format("--sparsity-type n_m means 2:4 sparsity (exactly 0.5); got --sparsity "
                               "{}: use --sparsity 0.5", r.sparsity));
  if (r.batch < 1 || r.context < 0 || r.prefill_tokens < 1)
    throw BadInput("--batch-size must be >= 1, --context >= 0 and --prefill-tokens >= 1");
  if (r.fleet_batch < 1 || r.fleet_seq_len < 1 || r.fleet_output_len < 1)
    throw BadInput("--fleet-batch, --fleet-seq-len and --fleet-output-len must be >= 1");
  if (!(r.qps >= 0) || !std::isfinite(r.qps))
    throw BadInput(fmt::format("--qps must be >= 0 requests/s, got {}", r.qps));
  check_operating_costs(r.costs);
  check_textbook_efficiency(r.efficiency);
  if (bytes_per_element(r.baseline) < 2.0)
    throw BadInput(fmt::format("--baseline must be a 16- or 32-bit precision (fp32, bf16, fp16), got {}",
                               to_string(r.baseline)));
}

// The compressed model as the engine runs it. Not copyable: `variant` may point at `pruned` and
// `sparse_hw`, which live here.
struct Compressed {
  Variant variant;
  ModelSpec pruned;         // structured pruning: the narrower model
  HardwareSpec sparse_hw;   // 2:4 sparsity: the device seen through its sparse tensor cores
  const char* accuracy_key = "fp16";
  explicit Compressed(const Variant& base) : variant(base) {}
  Compressed(const Compressed&) = delete;
  Compressed& operator=(const Compressed&) = delete;
};

void quantize(Compressed& c, const HardwareSpec& hw, const CompressionRequest& r, double params,
              CompressionResult& out) {
  if (!r.target)
    throw BadInput("--target (quantization precision: fp8, int8, int4, fp4, fp16, bf16) is required "
                   "with --method quantization");
  const Precision q = *r.target;
  const double q_bpe = bytes_per_element(q);
  if (q_bpe > bytes_per_element(r.baseline))
    throw BadInput(fmt::format("--target {} is wider than --baseline {}: quantization narrows",
                               to_string(q), to_string(r.baseline)));
  QuantScheme scheme = r.scheme;
  if (scheme == QuantScheme::Auto)
    scheme = q_bpe >= 1.0 ? QuantScheme::WeightsActivations : QuantScheme::WeightOnly;
  out.hardware_supported = scheme == QuantScheme::WeightOnly || hw.supports(q);
  c.variant.precision = q;
  c.variant.quantize_head = r.quantize_head;
  // W8A8 also stores the KV cache in 8 bits (engine default for 8-bit math); weight-only keeps it.
  c.variant.kv_precision = scheme == QuantScheme::WeightOnly ? std::optional<Precision>(r.baseline)
                                                             : std::nullopt;
  out.label = fmt::format("{} -> {} ({})", to_string(r.baseline), to_string(q), to_string(scheme));
  out.compressed_size = Bytes(params * q_bpe);
  const bool wa = scheme == QuantScheme::WeightsActivations;
  if (q_bpe >= 2.0) c.accuracy_key = "fp16";
  else if (q == Precision::FP8) c.accuracy_key = "fp8";
  else if (q == Precision::INT8) c.accuracy_key = wa ? "int8-weights-activations" : "int8-weight-only";
  else c.accuracy_key = wa ? "int4-weights-activations" : "int4-weight-only";
  if (wa && !hw.supports(q))
    out.trace.push_back(fmt::format("{} has no {} math: weights+activations quantization cannot run "
                                    "as such; the engine runs it as weight-only ({} weights, 16-bit "
                                    "math).",
                                    hw.id, to_string(q), to_string(q)));
}

void prune(Compressed& c, const ModelSpec& model, const HardwareSpec& hw, const CompressionRequest& r,
           double params, CompressionResult& out) {
  const double s = r.sparsity;
  const double base_bpe = bytes_per_element(r.baseline);
  auto& t = out.trace;
  out.label = fmt::format("{} pruning {:.0f}%", to_string(r.sparsity_type), s * 100);
  switch (r.sparsity_type) {
    case SparsityType::Unstructured:
      out.compressed_size = Bytes(params * sparse_storage_bytes_per_weight(base_bpe, s, r.sparsity_type));
      out.runtime_weight_bytes = out.original_size;  // dense kernels need the dense matrix
      out.hardware_supported = false;
      c.accuracy_key = s <= 0.5 + 1e-9 ? "unstructured-50" : "unstructured-high";
      t.push_back("Unstructured sparsity: the matrices keep their shape; dense kernels (cuBLAS) "
                  "execute every multiply, so FLOPs and bytes per step are unchanged: storage-only "
                  "savings (checkpoint, disk, transfer).");
      break;
    case SparsityType::Structured:
      c.pruned = prune_structured(model, s);
      c.variant.model = &c.pruned;
      out.compressed_size = Bytes(parameter_count(c.pruned) * base_bpe);
      out.runtime_weight_bytes = out.compressed_size;
      c.accuracy_key = "structured-50";
      t.push_back(fmt::format("Structured pruning: FFN {} -> {} columns, attention {} -> {} heads "
                              "({} -> {} KV heads); embeddings kept: {} -> {} parameters.",
                              model.tf.ffn, c.pruned.tf.ffn, model.tf.heads, c.pruned.tf.heads,
                              model.tf.kv_heads, c.pruned.tf.kv_heads, format_count(params),
                              format_count(parameter_count(c.pruned))));
      break;
    case SparsityType::NM24:
      out.compressed_size = Bytes(params * sparse_storage_bytes_per_weight(base_bpe, s, r.sparsity_type));
      out.runtime_weight_bytes = out.original_size;  // conservative: see docs/SERVING.md
      c.accuracy_key = "n_m-2:4";
      out.hardware_supported = has_sparse_path(hw, r.baseline);
      if (out.hardware_supported) {
        c.sparse_hw = sparse_tensor_view(hw);
        c.variant.hw = &c.sparse_hw;
        t.push_back(fmt::format("2:4 sparsity: {} runs {} GEMMs on sparse tensor cores at {} "
                                "(dense {}).", hw.id, to_string(r.baseline),
                                format_rate(hw.sparse_peak[index_of(r.baseline)]),
                                format_rate(hw.peak(r.baseline))));
      } else {
        t.push_back(fmt::format("2:4 sparsity: {} lists no sparse {} peak: no sparse tensor "
                                "cores, so no speedup (storage only).",
                                hw.id, to_string(r.baseline)));
      }
      break;
  }
}

// Speed through the engine: the same decode and prefill steps, baseline and compressed.
void time_steps(const Variant& base, const Compressed& c, const CompressionRequest& r,
                CompressionResult& out) {
  const Profile bd = run(base, Phase::Decode, r), cd = run(c.variant, Phase::Decode, r);
  const Profile bp = run(base, Phase::Prefill, r), cp = run(c.variant, Phase::Prefill, r);
  out.baseline_itl = bd.latency;
  out.compressed_itl = cd.latency;
  out.baseline_ttft = bp.latency;
  out.compressed_ttft = cp.latency;
  out.inference_speedup = bd.latency / cd.latency;
  out.prefill_speedup = bp.latency / cp.latency;
  out.baseline_decode_wall = bd.bottleneck;
  out.compressed_decode_wall = cd.bottleneck;
  out.baseline_prefill_wall = bp.bottleneck;
  out.compressed_prefill_wall = cp.bottleneck;
  out.math_precision = std::string(to_string(cd.compute_precision));
  // Quantized weights as they sit in memory: the engine's ledger keeps the embedding table and (by
  // default) the LM head in 16 bits, which the napkin stored size does not.
  if (r.method == CompressionMethod::Quantization) out.runtime_weight_bytes = cd.memory.weights;
}

void attach_accuracy_range(const char* key, const CompressionRequest& r, CompressionResult& out) {
  const AccuracyRange* acc = accuracy_literature(key);
  out.accuracy_delta_low = acc->low;
  out.accuracy_delta_high = acc->high;
  // Below 50% sparsity scale the 50% range linearly (zero change at zero sparsity).
  if (r.method == CompressionMethod::Pruning && r.sparsity < 0.5) {
    out.accuracy_delta_low *= r.sparsity / 0.5;
    out.accuracy_delta_high *= r.sparsity / 0.5;
  }
  out.accuracy_delta = 0.5 * (out.accuracy_delta_low + out.accuracy_delta_high);
  out.accuracy_source = acc->source;
}

void explain_size_speed_accuracy(const ModelSpec& model, const HardwareSpec& hw,
                                 const CompressionRequest& r, CompressionResult& out) {
  auto& t = out.trace;
  t.insert(t.begin(), fmt::format("{} on {}: {}; stored size {} -> {} ({:.2f}x smaller, {} saved).",
                                  model.id, hw.name, out.label, format_bytes(out.original_size),
                                  format_bytes(out.compressed_size), out.compression_ratio,
                                  format_percent(out.memory_savings)));
  t.push_back(fmt::format("Decode (batch {}, {} cached tokens), engine: {} ({}-bound) -> {} ({}-bound, "
                          "{} math): {:.2f}x.",
                          r.batch, r.context, format_time(out.baseline_itl),
                          to_string(out.baseline_decode_wall), format_time(out.compressed_itl),
                          to_string(out.compressed_decode_wall), out.math_precision,
                          out.inference_speedup));
  t.push_back(fmt::format("Prefill ({} tokens), engine: {} ({}-bound) -> {} ({}-bound): {:.2f}x.",
                          r.prefill_tokens, format_time(out.baseline_ttft),
                          to_string(out.baseline_prefill_wall), format_time(out.compressed_ttft),
                          to_string(out.compressed_prefill_wall), out.prefill_speedup));
  if (out.compressed_decode_wall != Wall::Compute && out.inference_speedup > 1.05)
    t.push_back(fmt::format("Still not compute-bound after compression ({}-bound): the speedup comes "
                            "from moving fewer bytes, not from faster math.",
                            to_string(out.compressed_decode_wall)));
  t.push_back(fmt::format("Accuracy change: {:+.1f}% to {:+.1f}% (literature range, not a "
                          "prediction; midpoint {:+.1f}%): {}.",
                          out.accuracy_delta_low * 100, out.accuracy_delta_high * 100,
                          out.accuracy_delta * 100, out.accuracy_source));
}

// Fleet impact: the baseline, the narrower standard precisions (quantization) and the compressed
// variant, each served by the serving solver.
void add_fleet(const ModelSpec& model, const HardwareSpec& hw, const Variant& base, const Compressed& c,
               const CompressionRequest& r, CompressionResult& out) {
  std::vector<std::pair<std::string, Variant>> rows;
  rows.push_back({std::string(to_string(r.baseline)), base});
  if (r.method == CompressionMethod::Quantization) {
    for (Precision p : {Precision::INT8, Precision::INT4}) {
      if (p == *r.target || bytes_per_element(p) >= bytes_per_element(r.baseline)) continue;
      rows.push_back({std::string(to_string(p)), Variant{&model, &hw, p, r.baseline, r.quantize_head}});
    }
    rows.push_back({std::string(to_string(*r.target)), c.variant});
    std::sort(rows.begin() + 1, rows.end(), [](const auto& a, const auto& b) {
      return bytes_per_element(a.second.precision) > bytes_per_element(b.second.precision);
    });
  } else {
    rows.push_back({out.label, c.variant});
  }
  for (const auto& [label, v] : rows) out.fleet.push_back(fleet_row(label, v, r));
  auto& t = out.trace;
  t.push_back(fmt::format("Fleet: {} requests of {} + {} tokens per replica; GPUs per replica = the "
                          "smallest tensor-parallel degree that fits in {}% of {} usable; cost = GPUs x "
                          "${:.2f}/GPU-hour x 8760 h{}.",
                          r.fleet_batch, r.fleet_seq_len, r.fleet_output_len,
                          kDefaultMemoryUtilization * 100, format_bytes(hw.memory_usable),
                          r.costs.gpu_hour_usd,
                          r.costs.gpu_hour_usd == kDefaultGpuHourUsd
                              ? " (AWS p5.48xlarge on-demand $98.32/h / 8 GPUs, 2023 list price)" : ""));
  for (const FleetRow& f : out.fleet)
    t.push_back(f.feasible
                    ? fmt::format("  {}: weights {}, {} GPU(s)/replica, {:.3g} req/s per replica, "
                                  "{} replica(s) -> {} GPUs, ${:.0f}/year.",
                                  f.label, format_bytes(f.model_size), f.gpus_per_replica,
                                  f.replica_qps, f.replicas, f.total_gpus, f.annual_cost.si())
                    : fmt::format("  {}: does not fit on {} x{}.", f.label, hw.id, kMaxTensorParallel));
}

}  // namespace

CompressionResult compress(const ModelSpec& model, const HardwareSpec& hw, const CompressionRequest& r) {
  check_request(model, r);
  CompressionResult out;
  out.gpu_hour_usd = r.costs.gpu_hour_usd;
  const double params = parameter_count(model);
  out.original_size = Bytes(params * bytes_per_element(r.baseline));
  // Weight-only schemes keep the KV cache at the baseline precision.
  const Variant base{&model, &hw, r.baseline, r.baseline};
  Compressed c(base);
  if (r.method == CompressionMethod::Quantization) quantize(c, hw, r, params, out);
  else prune(c, model, hw, r, params, out);
  out.compression_ratio = out.original_size / out.compressed_size;
  out.memory_savings = 1.0 - out.compressed_size / out.original_size;
  time_steps(base, c, r, out);
  attach_accuracy_range(c.accuracy_key, r, out);
  explain_size_speed_accuracy(model, hw, r, out);
  if (r.fleet) add_fleet(model, hw, base, c, r, out);
  return out;
}

}  // namespace mlsysim
