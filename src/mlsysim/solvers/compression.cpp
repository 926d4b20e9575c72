#include "mlsysim/solvers/compression.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string_view>

#include "mlsysim/catalog/compression_literature.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/physics/memory.hpp"
#include "mlsysim/physics/operators.hpp"
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
  // The compress flag that chose `precision`: the engine's errors say --precision.
  const char* precision_flag = "--baseline";
};

// The engine and the serving solver name their own flags (--seq-len, --precision, ...); compress
// passes the same values under its own names, so their errors are rethrown with the flag the user
// typed. (compress's flag names never contain the engine's, so a plain replace is exact.)
struct FlagRename {
  std::string_view engine, compress;
};

std::string with_compress_flags(std::string message, const std::vector<FlagRename>& renames) {
  for (const FlagRename& f : renames)
    for (size_t at = message.find(f.engine); at != std::string::npos;
         at = message.find(f.engine, at + f.compress.size()))
      message.replace(at, f.engine.size(), f.compress);
  return message;
}

template <class Call>
auto naming_compress_flags(const std::vector<FlagRename>& renames, Call&& call) -> decltype(call()) {
  try {
    return call();
  } catch (const BadInput& e) {
    throw BadInput(with_compress_flags(e.what(), renames));
  }
}

Profile run(const Variant& v, Phase phase, const CompressionShapes& sh, const CompressionRequest& r) {
  SolveRequest s;
  s.phase = phase;
  s.batch = sh.batch;
  if (phase == Phase::Decode) s.context = sh.context;
  else s.seq_len = sh.prefill_tokens, s.context = 0;
  s.precision = v.precision;
  s.kv_precision = v.kv_precision;
  s.quantize_head = v.quantize_head;
  s.efficiency = r.efficiency;
  s.runtime = r.runtime;
  return naming_compress_flags({{"--seq-len", "--prefill-tokens"}, {"--precision", v.precision_flag}},
                               [&] { return solve(*v.model, *v.hw, s); });
}

// Beyond 2^53 a double no longer counts every integer: no replica count is exact there.
constexpr double kMaxExactCount = 9007199254740992.0;

// ceil(qps / replica_qps) replicas carry the rate (one without a rate). The 1e-9 keeps a rate that
// is an exact multiple of a replica's from rounding up to one more.
std::int64_t replicas_for(double qps, double replica_qps) {
  if (qps <= 0) return 1;
  const double needed = std::ceil(qps / replica_qps - 1e-9);
  if (needed > kMaxExactCount)
    throw BadInput(fmt::format("--qps {:g} needs {:.3g} replicas at {:.3g} requests/s each, more than "
                               "can be counted exactly (2^53): lower --qps",
                               qps, needed, replica_qps));
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(needed));
}

FleetReplica fleet_replica(const ServingResult& sr, const CompressionShapes& sh, const CompressionRequest& r) {
  FleetReplica f;
  f.gpus_per_replica = sr.tp;
  f.ttft = sr.ttft;
  f.itl = sr.itl;
  f.replica_qps = sh.fleet_batch / sr.e2e_latency.si();
  f.replicas = replicas_for(r.qps, f.replica_qps);
  f.total_gpus = f.replicas * f.gpus_per_replica;
  const double gpus = static_cast<double>(f.total_gpus);
  f.annual_cost = r.costs.gpu_rate * gpus * units::hours(kHoursPerYear);
  f.annual_energy =
      facility_energy(sr.average_power_per_gpu * units::hours(kHoursPerYear) * gpus, r.costs.pue);
  f.annual_emissions = operational_emissions(f.annual_energy, r.costs.grid_intensity);
  return f;
}

FleetRow fleet_row(const std::string& label, const Variant& v, const CompressionShapes& sh,
                   const CompressionRequest& r) {
  FleetRow row;
  row.label = label;
  ServingRequest s;
  s.seq_len = sh.fleet_seq_len;
  s.output_len = sh.fleet_output_len;
  s.batch = sh.fleet_batch;
  s.precision = v.precision;
  s.kv_precision = v.kv_precision;
  s.quantize_head = v.quantize_head;
  s.efficiency = r.efficiency;
  s.runtime = r.runtime;
  const ServingResult sr = naming_compress_flags(
      {{"--batch-size", "--fleet-batch"}, {"--seq-len", "--fleet-seq-len"},
       {"--output-len", "--fleet-output-len"}, {"--precision", v.precision_flag}},
      [&] { return serve(*v.model, *v.hw, s); });
  row.model_size = sr.weights_per_gpu * static_cast<double>(sr.tp);
  if (sr.feasible) row.replica = fleet_replica(sr, sh, r);
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
  if (!(r.sparsity >= 0.0 && r.sparsity <= 0.99))
    throw BadInput(fmt::format("--sparsity must be in [0, 0.99] (fraction of weights removed), got {}",
                               r.sparsity));
  if (r.method == CompressionMethod::Pruning && r.sparsity_type == SparsityType::NM24 &&
      std::abs(r.sparsity - 0.5) > 1e-9)
    throw BadInput(fmt::format("--sparsity-type n_m means 2:4 sparsity (exactly 0.5); got --sparsity "
                               "{}: use --sparsity 0.5", r.sparsity));
  if (r.batch < 1) throw BadInput(fmt::format("--batch-size must be >= 1, got {}", r.batch));
  if (r.context && *r.context < 0)
    throw BadInput(fmt::format("--context must be >= 0 cached tokens, got {}", *r.context));
  if (r.prefill_tokens && *r.prefill_tokens < 1)
    throw BadInput(fmt::format("--prefill-tokens must be >= 1, got {}", *r.prefill_tokens));
  if (r.fleet_batch < 1 || (r.fleet_seq_len && *r.fleet_seq_len < 1) || r.fleet_output_len < 1)
    throw BadInput("--fleet-batch, --fleet-seq-len and --fleet-output-len must be >= 1");
  if (!(r.qps >= 0 && r.qps <= kMaxFleetQps))
    throw BadInput(fmt::format("--qps must be in [0, {:.0e}] requests/s (1e9 is a request every 8 s "
                               "from every person on Earth), got {:g}", kMaxFleetQps, r.qps));
  check_operating_costs(r.costs);
  check_textbook_efficiency(r.efficiency);
  if (bytes_per_element(r.baseline) < 2.0)
    throw BadInput(fmt::format("--baseline must be a 16- or 32-bit precision (fp32, bf16, fp16), got {}",
                               to_string(r.baseline)));
}

// A length the request left unset: its default, shortened to what the model's window leaves
// (`room`) and said so in the trace.
int default_length(int fallback, int room, const std::string& what, const ModelSpec& model,
                   std::vector<std::string>& trace) {
  if (room >= fallback) return fallback;
  trace.push_back(fmt::format("{} handles {} tokens (max_seq): {} {} tokens by default, not {}.",
                              model.id, model.tf.max_seq, what, room, fallback));
  return room;
}

// The steps compress times, each within the model's window (max_seq; 0: no limit). An explicit
// length that does not fit is an error naming compress's flag; an unset one is defaulted to fit.
CompressionShapes resolve_shapes(const ModelSpec& model, const CompressionRequest& r,
                                 std::vector<std::string>& trace) {
  const int window = model.tf.max_seq > 0 ? model.tf.max_seq : std::numeric_limits<int>::max();
  CompressionShapes sh;
  sh.batch = r.batch;
  // A decode step adds one token to the context it reads.
  if (r.context && *r.context > window - 1)
    throw BadInput(fmt::format("--context {}: {} handles at most {} tokens (max_seq) and the decode "
                               "step adds 1: use --context <= {}",
                               *r.context, model.id, window, window - 1));
  sh.context = r.context ? *r.context
                         : default_length(kDefaultCompressContext, window - 1, "the decode step caches",
                                          model, trace);
  if (r.prefill_tokens && *r.prefill_tokens > window)
    throw BadInput(fmt::format("--prefill-tokens {} exceeds {}'s {}-token window (max_seq): use "
                               "--prefill-tokens <= {}",
                               *r.prefill_tokens, model.id, window, window));
  sh.prefill_tokens = r.prefill_tokens ? *r.prefill_tokens
                                       : default_length(kDefaultCompressPrefillTokens, window,
                                                        "the prefill step takes", model, trace);
  sh.fleet_batch = r.fleet_batch;
  sh.fleet_output_len = r.fleet_output_len;
  if (!r.fleet) {
    sh.fleet_seq_len = r.fleet_seq_len.value_or(kDefaultFleetSeqLen);
    return sh;
  }
  // The last generated token is never fed back: a request occupies prompt + output - 1 positions.
  const long room = static_cast<long>(window) - r.fleet_output_len + 1;
  if (room < 1)
    throw BadInput(fmt::format("--fleet-output-len {}: {} handles at most {} tokens (max_seq), and a "
                               "request needs a prompt token too: use --fleet-output-len <= {}",
                               r.fleet_output_len, model.id, window, window));
  if (r.fleet_seq_len && *r.fleet_seq_len > room)
    throw BadInput(fmt::format("{} handles at most {} tokens: --fleet-seq-len {} + --fleet-output-len "
                               "{} - 1 (the last token is not fed back) = {}; use --fleet-seq-len <= "
                               "{} or a shorter --fleet-output-len",
                               model.id, window, *r.fleet_seq_len, r.fleet_output_len,
                               static_cast<long>(*r.fleet_seq_len) + r.fleet_output_len - 1, room));
  sh.fleet_seq_len = r.fleet_seq_len
                         ? *r.fleet_seq_len
                         : default_length(kDefaultFleetSeqLen, static_cast<int>(room),
                                          fmt::format("with {} output tokens, a fleet request's prompt is",
                                                      r.fleet_output_len),
                                          model, trace);
  return sh;
}

// The compressed model as the engine runs it. Not copyable: `variant` may point at `pruned` and
// `device_view`, which live here.
struct Compressed {
  Variant variant;
  ModelSpec pruned;          // structured pruning: the narrower model; 2:4: the compressed layout
  HardwareSpec device_view;  // the device as the compressed model uses it (2:4 sparse, weight-only)
  const char* accuracy_key = "fp16";
  explicit Compressed(const Variant& base) : variant(base) {}
  Compressed(const Compressed&) = delete;
  Compressed& operator=(const Compressed&) = delete;
};

// The quantized checkpoint's bytes: the weights at `q` but the token-embedding table and (unless
// quantize_head) the LM head at the engine's unquantized_precision(), exactly what its ledger holds.
Bytes quantized_stored_size(const ModelSpec& model, const HardwareSpec& hw, Precision q,
                            bool quantize_head, double params) {
  LoweringInput in;
  in.weight_precision = q;
  in.embedding_precision = unquantized_precision(model, hw, q);
  in.head_precision = quantize_head ? q : in.embedding_precision;
  return weight_bytes(model, in, params);
}

// Why the stored size exceeds parameters x bits: which tables stayed 16-bit, and the flag that
// quantizes the head (a tied head is the embedding table: nothing more to quantize).
void explain_kept_16_bit(const ModelSpec& model, const HardwareSpec& hw, Precision q, bool quantize_head,
                         double params, CompressionResult& out) {
  const Bytes uniform(params * bytes_per_element(q));
  if (!(out.compressed_size > uniform)) return;
  const bool tied = transformer_params(model.tf, model.kind).lm_head <= 0;
  const char* kept = tied ? " (tied to the LM head)" : quantize_head ? "" : " and the LM head";
  out.trace.push_back(fmt::format(
      "A quantized checkpoint keeps the token-embedding table{} in {} (as AWQ/GPTQ and ModelOpt "
      "checkpoints do): {} stored, not the {} of every weight at {}{}.",
      kept, to_string(unquantized_precision(model, hw, q)), format_bytes(out.compressed_size),
      format_bytes(uniform), to_string(q),
      tied || quantize_head ? "" : "; --quantize-head quantizes the head"));
}

void quantize(Compressed& c, const ModelSpec& model, const HardwareSpec& hw, const CompressionRequest& r,
              double params, CompressionResult& out) {
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
  const bool weight_only = scheme == QuantScheme::WeightOnly;
  out.hardware_supported = weight_only || hw.supports(q);
  c.variant.precision = q;
  c.variant.quantize_head = r.quantize_head;
  c.variant.precision_flag = "--target";
  // W8A8 also stores the KV cache in 8 bits (engine default for 8-bit math); weight-only keeps it.
  c.variant.kv_precision = weight_only ? std::optional<Precision>(r.baseline) : std::nullopt;
  // Weight-only kernels dequantize into 16-bit math even where the device has `q` math (fp8 and
  // int8 tensor cores): the engine sees a device without it.
  if (weight_only && q_bpe < 2.0) {
    c.device_view = weight_only_view(hw, q);
    c.variant.hw = &c.device_view;
  }
  out.label = fmt::format("{} -> {} ({})", to_string(r.baseline), to_string(q), to_string(scheme));
  out.compressed_size = quantized_stored_size(model, hw, q, r.quantize_head, params);
  explain_kept_16_bit(model, hw, q, r.quantize_head, params, out);
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

// Unstructured checkpoints: the sparse format, or the dense matrix where the format's index costs
// more than the removed values save. (2:4 checkpoints are the engine's ledger of the 2:4 layout.)
Bytes sparse_stored_size(double params, double base_bpe, const CompressionRequest& r, CompressionResult& out) {
  const double sparse = sparse_storage_bytes_per_weight(base_bpe, r.sparsity, r.sparsity_type);
  if (sparse_format_pays(base_bpe, r.sparsity, r.sparsity_type)) return Bytes(params * sparse);
  out.stored_dense = true;
  out.trace.push_back(fmt::format("At {} sparsity the sparse format ({:.3f} B/weight with its index) "
                                  "is larger than the dense {:.3f} B/weight: stored dense.",
                                  format_percent(r.sparsity), sparse, base_bpe));
  return Bytes(params * base_bpe);
}

void prune(Compressed& c, const ModelSpec& model, const HardwareSpec& hw, const CompressionRequest& r,
           double params, CompressionResult& out) {
  const double s = r.sparsity;
  const double base_bpe = bytes_per_element(r.baseline);
  auto& t = out.trace;
  out.label = fmt::format("{} pruning {:.0f}%", to_string(r.sparsity_type), s * 100);
  switch (r.sparsity_type) {
    case SparsityType::Unstructured:
      out.compressed_size = sparse_stored_size(params, base_bpe, r, out);
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
    case SparsityType::NM24: {
      c.pruned = model;
      c.pruned.block_weights = WeightLayout::Sparse24;
      LoweringInput stored;  // the checkpoint at the baseline precision, as the engine's ledger holds it
      stored.weight_precision = stored.embedding_precision = stored.head_precision = r.baseline;
      out.compressed_size = weight_bytes(c.pruned, stored, params);
      c.accuracy_key = "n_m-2:4";
      out.hardware_supported = has_sparse_path(hw, r.baseline);
      t.push_back(fmt::format("2:4 storage: block weights at {:.4g} B each (half the values plus a "
                              "2-bit index per kept value), the embedding table and LM head dense: {}.",
                              base_bpe * block_weight_storage_fraction(c.pruned, base_bpe),
                              format_bytes(out.compressed_size)));
      if (out.hardware_supported) {
        // Sparse tensor-core kernels read the compressed matrices, so a memory-bound step moves
        // fewer bytes as well (Neural Magic measured ~30% lower latency from 2:4 alone on Hopper
        // with vLLM's CUTLASS kernels, 2024: below this bandwidth bound).
        c.variant.model = &c.pruned;
        c.device_view = sparse_tensor_view(hw);
        c.variant.hw = &c.device_view;
        t.push_back(fmt::format("2:4 sparsity: {} runs {} GEMMs on sparse tensor cores at {} "
                                "(dense {}), reading the compressed weights.", hw.id,
                                to_string(r.baseline), format_rate(hw.sparse_peak[index_of(r.baseline)]),
                                format_rate(hw.peak(r.baseline))));
      } else {
        out.runtime_weight_bytes = out.original_size;  // decompressed for dense kernels
        t.push_back(fmt::format("2:4 sparsity: {} lists no sparse {} peak: no sparse tensor "
                                "cores, so the weights are decompressed for dense kernels: no "
                                "speedup (storage only).",
                                hw.id, to_string(r.baseline)));
      }
      break;
    }
  }
}

StepFit step_fit(const Profile& p) { return {p.feasible, p.memory, p.memory_capacity}; }

// Speed through the engine: the same decode and prefill steps, baseline and compressed.
void time_steps(const Variant& base, const Compressed& c, const CompressionRequest& r,
                CompressionResult& out) {
  const CompressionShapes& sh = out.shapes;
  const Profile bd = run(base, Phase::Decode, sh, r), cd = run(c.variant, Phase::Decode, sh, r);
  const Profile bp = run(base, Phase::Prefill, sh, r), cp = run(c.variant, Phase::Prefill, sh, r);
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
  out.baseline_decode_fit = step_fit(bd);
  out.compressed_decode_fit = step_fit(cd);
  out.baseline_prefill_fit = step_fit(bp);
  out.compressed_prefill_fit = step_fit(cp);
  out.math_precision = std::string(to_string(cd.compute_precision));
  // Quantized or 2:4-compressed weights as they sit in memory: the engine's ledger, which the
  // stored size matches.
  if (r.method == CompressionMethod::Quantization || c.variant.model->block_weights == WeightLayout::Sparse24)
    out.runtime_weight_bytes = cd.memory.weights;
}

void attach_accuracy_range(const char* key, const CompressionRequest& r, CompressionResult& out) {
  const AccuracyRange* acc = accuracy_literature(key);
  out.accuracy_delta_low = acc->low;
  out.accuracy_delta_high = acc->high;
  out.accuracy_source = acc->source;
  // Below 50% sparsity scale the 50% range linearly (zero change at zero sparsity).
  if (r.method == CompressionMethod::Pruning && r.sparsity < 0.5) {
    out.accuracy_delta_low *= r.sparsity / 0.5;
    out.accuracy_delta_high *= r.sparsity / 0.5;
  }
  // Past the sparsity the cited studies measured, their range says nothing about the loss: its
  // low end becomes losing everything (one-shot pruning collapses there).
  const double measured_up_to = std::string_view(key) == "unstructured-high" ? 0.8
                                : std::string_view(key) == "structured-50"   ? 0.5
                                                                             : 1.0;
  if (r.method == CompressionMethod::Pruning && r.sparsity > measured_up_to + 1e-9) {
    out.accuracy_delta_low = -1.0;
    out.accuracy_source += fmt::format(" [{} sparsity is beyond the {:.0f}% these studies measured: the low end is "
                                       "total loss, not a measured figure]",
                                       format_percent(r.sparsity), 100 * measured_up_to);
  }
  out.accuracy_delta = 0.5 * (out.accuracy_delta_low + out.accuracy_delta_high);
}

// "baseline 1.34 TB (weights ..., KV cache ..., activations ...)" for a variant whose step does not fit.
std::string unfit_part(const char* variant, const StepFit& f) {
  return fmt::format("{} {} (weights {}, KV cache {}, activations {})", variant, format_bytes(f.memory.total()),
                     format_bytes(f.memory.weights), format_bytes(f.memory.kv_cache),
                     format_bytes(f.memory.activations));
}

// A timed step one device cannot hold: said, with what each variant needs and what would help:
// smaller step shapes, or, when the weights alone exceed the device, a tensor-parallel replica.
void explain_unfit(const char* step, const StepFit& base, const StepFit& comp, const char* shape_flags,
                   const HardwareSpec& hw, const CompressionRequest& r, std::vector<std::string>& t) {
  if (base.fits && comp.fits) return;
  std::string parts;
  for (const auto& [variant, f] : {std::pair{"baseline", &base}, std::pair{"compressed", &comp}})
    if (!f->fits) parts += (parts.empty() ? "" : "; ") + unfit_part(variant, *f);
  const bool weights_alone = (!base.fits && base.memory.weights > base.capacity) ||
                             (!comp.fits && comp.memory.weights > comp.capacity);
  const std::string remedy =
      weights_alone ? fmt::format("The weights alone exceed one device: {}",
                                  r.fleet ? "the fleet table gives the GPUs a replica needs."
                                          : "drop --no-fleet for the GPUs a replica needs.")
                    : fmt::format("Lower {}.", shape_flags);
  t.push_back(fmt::format("Does not fit on one {} with {}: the {} step needs {}; timed as if it did. {}", hw.id,
                          describe_usable_memory(hw), step, parts, remedy));
}

void explain_size_speed_accuracy(const ModelSpec& model, const HardwareSpec& hw,
                                 const CompressionRequest& r, CompressionResult& out) {
  auto& t = out.trace;
  const CompressionShapes& sh = out.shapes;
  t.insert(t.begin(), fmt::format("{} on {}: {}; stored size {} -> {} ({:.2f}x smaller, {} saved).",
                                  model.id, hw.name, out.label, format_bytes(out.original_size),
                                  format_bytes(out.compressed_size), out.compression_ratio,
                                  format_percent(out.memory_savings)));
  t.push_back(fmt::format("Decode (batch {}, {} cached tokens), engine: {} ({}-bound) -> {} ({}-bound, "
                          "{} math): {:.2f}x.",
                          sh.batch, sh.context, format_time(out.baseline_itl),
                          to_string(out.baseline_decode_wall), format_time(out.compressed_itl),
                          to_string(out.compressed_decode_wall), out.math_precision,
                          out.inference_speedup));
  t.push_back(fmt::format("Prefill (batch {} x {} tokens), engine: {} ({}-bound) -> {} ({}-bound): {:.2f}x.",
                          sh.batch, sh.prefill_tokens, format_time(out.baseline_ttft),
                          to_string(out.baseline_prefill_wall), format_time(out.compressed_ttft),
                          to_string(out.compressed_prefill_wall), out.prefill_speedup));
  explain_unfit("decode", out.baseline_decode_fit, out.compressed_decode_fit, "--batch-size or --context", hw, r, t);
  explain_unfit("prefill", out.baseline_prefill_fit, out.compressed_prefill_fit, "--batch-size or --prefill-tokens",
                hw, r, t);
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
  const CompressionShapes& sh = out.shapes;
  std::vector<std::pair<std::string, Variant>> rows;
  rows.push_back({std::string(to_string(r.baseline)), base});
  // The comparison precisions quantized exactly as the target is (same --scheme, same head), each
  // through quantize(); `others` keeps their device views alive while the rows are served.
  std::vector<std::unique_ptr<Compressed>> others;
  if (r.method == CompressionMethod::Quantization) {
    for (Precision p : {Precision::INT8, Precision::INT4}) {
      if (p == *r.target || bytes_per_element(p) >= bytes_per_element(r.baseline)) continue;
      CompressionRequest as_p = r;
      as_p.target = p;
      CompressionResult scratch;
      others.push_back(std::make_unique<Compressed>(base));
      quantize(*others.back(), model, hw, as_p, parameter_count(model), scratch);
      rows.push_back({std::string(to_string(p)), others.back()->variant});
    }
    rows.push_back({std::string(to_string(*r.target)), c.variant});
    std::sort(rows.begin() + 1, rows.end(), [](const auto& a, const auto& b) {
      return bytes_per_element(a.second.precision) > bytes_per_element(b.second.precision);
    });
  } else {
    rows.push_back({out.label, c.variant});
  }
  for (const auto& [label, v] : rows) out.fleet.push_back(fleet_row(label, v, sh, r));
  auto& t = out.trace;
  t.push_back(fmt::format("Fleet: {} requests of {} + {} tokens per replica; GPUs per replica = the "
                          "smallest tensor-parallel degree that fits in {}% of {} usable; cost = GPUs x "
                          "${:.2f}/GPU-hour ({}) x 8760 h.",
                          sh.fleet_batch, sh.fleet_seq_len, sh.fleet_output_len,
                          kDefaultMemoryUtilization * 100, format_bytes(hw.memory_usable),
                          units::in_usd_per_hour(r.costs.gpu_rate), r.costs.gpu_rate_source));
  for (const FleetRow& f : out.fleet)
    t.push_back(f.replica
                    ? fmt::format("  {}: weights {}, {} GPU(s)/replica, {:.3g} req/s per replica, "
                                  "{} replica(s) -> {} GPUs, ${:.0f}/year.",
                                  f.label, format_bytes(f.model_size), f.replica->gpus_per_replica,
                                  f.replica->replica_qps, f.replica->replicas, f.replica->total_gpus,
                                  f.replica->annual_cost.si())
                    : fmt::format("  {}: weights {}, does not fit on {} x{}.", f.label,
                                  format_bytes(f.model_size), hw.id, kMaxTensorParallel));
}

}  // namespace

CompressionResult compress(const ModelSpec& model, const HardwareSpec& hw, const CompressionRequest& r) {
  check_request(model, r);
  CompressionResult out;
  out.shapes = resolve_shapes(model, r, out.trace);
  out.gpu_rate = r.costs.gpu_rate;
  const double params = parameter_count(model);
  out.original_size = Bytes(params * bytes_per_element(r.baseline));
  // Weight-only schemes keep the KV cache at the baseline precision.
  const Variant base{&model, &hw, r.baseline, r.baseline};
  Compressed c(base);
  if (r.method == CompressionMethod::Quantization) quantize(c, model, hw, r, params, out);
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
