// `mlsysim compress`: quantization / pruning priced through the engine, with literature accuracy
// ranges and the fleet impact (CompressionModel in the tutorial's Python API).
#include <fmt/format.h>

#include <iostream>
#include <memory>

#include "command.hpp"
#include "mlsysim/solvers/compression.hpp"
#include "mlsysim/units/format.hpp"
#include "operating_costs.hpp"
#include "serving_format.hpp"

namespace mlsysim::cli {
namespace {

using nlohmann::ordered_json;

struct CompressOptions {
  std::string model, hardware, method = "quantization", target, scheme = "auto",
      sparsity_type = "unstructured", baseline = "fp16", runtime = "graph";
  std::optional<int> target_bitwidth;
  double sparsity = 0.5, qps = 0, efficiency = 0;
  OperatingCostFlags costs;
  int batch = 1, fleet_batch = 8, fleet_output_len = 256;
  // Unset: the solver's defaults, shortened to the model's window (CompressionRequest).
  std::optional<int> context, prefill_tokens, fleet_seq_len;
  bool no_fleet = false, quantize_head = false;
};

CompressionRequest compression_request(const CompressOptions& o, const HardwareSpec& hw) {
  CompressionRequest r;
  r.method = parse_enum<CompressionMethod>("--method", o.method,
                                           {{"quantization", CompressionMethod::Quantization},
                                            {"pruning", CompressionMethod::Pruning}});
  if (!o.target.empty() && o.target_bitwidth)
    throw BadInput("give either --target or --target-bitwidth, not both");
  if (!o.target.empty()) r.target = parse_precision_flag("--target", o.target);
  if (o.target_bitwidth) {
    switch (*o.target_bitwidth) {
      case 32: r.target = Precision::FP32; break;
      case 16: r.target = Precision::FP16; break;
      case 8: r.target = Precision::INT8; break;
      case 4: r.target = Precision::INT4; break;
      default:
        throw BadInput(fmt::format("--target-bitwidth must be 32, 16, 8 or 4, got {}: use --target "
                                   "fp8 for 8-bit floating point", *o.target_bitwidth));
    }
  }
  r.scheme = parse_enum<QuantScheme>("--scheme", o.scheme,
                                     {{"auto", QuantScheme::Auto},
                                      {"weight-only", QuantScheme::WeightOnly},
                                      {"weights-activations", QuantScheme::WeightsActivations}});
  r.sparsity = o.sparsity;
  r.sparsity_type = parse_enum<SparsityType>("--sparsity-type", o.sparsity_type,
                                             {{"unstructured", SparsityType::Unstructured},
                                              {"structured", SparsityType::Structured},
                                              {"n_m", SparsityType::NM24},
                                              {"2:4", SparsityType::NM24}});
  r.baseline = parse_precision_flag("--baseline", o.baseline);
  r.batch = o.batch;
  r.context = o.context;
  r.prefill_tokens = o.prefill_tokens;
  r.fleet = !o.no_fleet;
  r.quantize_head = o.quantize_head;
  r.qps = o.qps;
  r.fleet_batch = o.fleet_batch;
  r.fleet_seq_len = o.fleet_seq_len;
  r.fleet_output_len = o.fleet_output_len;
  r.costs = o.costs.costs(hw);
  r.efficiency = o.efficiency;  // checked by the solver
  r.runtime = parse_runtime_flag(o.runtime);
  return r;
}

// A fleet row; a variant that does not fit has no replica, so its serving figures are null.
ordered_json fleet_row_json(const FleetRow& f) {
  const auto& rp = f.replica;
  const auto or_null = [&](auto value) { return rp ? ordered_json(value(*rp)) : ordered_json(nullptr); };
  return {{"label", f.label},
          {"model_size_bytes", f.model_size.si()},
          {"feasible", f.feasible()},
          {"gpus_per_replica", or_null([](const FleetReplica& x) { return x.gpus_per_replica; })},
          {"ttft_s", or_null([](const FleetReplica& x) { return x.ttft.si(); })},
          {"itl_s", or_null([](const FleetReplica& x) { return x.itl.si(); })},
          {"replica_qps", or_null([](const FleetReplica& x) { return x.replica_qps; })},
          {"replicas", or_null([](const FleetReplica& x) { return x.replicas; })},
          {"total_gpus", or_null([](const FleetReplica& x) { return x.total_gpus; })},
          {"annual_cost_usd", or_null([](const FleetReplica& x) { return x.annual_cost.si(); })},
          {"annual_energy_mwh", or_null([](const FleetReplica& x) { return x.annual_energy.si() / 3.6e9; })},
          {"annual_emissions_t_co2", or_null([](const FleetReplica& x) { return x.annual_emissions.si() / 1e3; })}};
}

ordered_json compress_json(const ModelSpec& model, const HardwareSpec& hw, const CompressionRequest& r,
                           const CompressionResult& c) {
  ordered_json j;
  j["model"] = model.id;
  j["hardware"] = hw.id;
  j["method"] = to_string(r.method);
  j["label"] = c.label;
  j["original_size_bytes"] = c.original_size.si();
  j["compressed_size_bytes"] = c.compressed_size.si();
  j["runtime_weight_bytes"] = c.runtime_weight_bytes.si();
  j["compression_ratio"] = c.compression_ratio;
  j["memory_savings"] = c.memory_savings;
  j["inference_speedup"] = c.inference_speedup;
  j["prefill_speedup"] = c.prefill_speedup;
  j["baseline_itl_s"] = c.baseline_itl.si();
  j["compressed_itl_s"] = c.compressed_itl.si();
  j["baseline_ttft_s"] = c.baseline_ttft.si();
  j["compressed_ttft_s"] = c.compressed_ttft.si();
  j["decode_bottleneck"] = {{"baseline", to_string(c.baseline_decode_wall)},
                            {"compressed", to_string(c.compressed_decode_wall)}};
  j["math_precision"] = c.math_precision;
  j["hardware_supported"] = c.hardware_supported;
  j["accuracy_delta"] = c.accuracy_delta;
  j["accuracy_delta_range"] = {{"low", c.accuracy_delta_low}, {"high", c.accuracy_delta_high}};
  j["accuracy_source"] = c.accuracy_source;
  j["accuracy_note"] = "literature range, not a prediction";
  j["prefill_bottleneck"] = {{"baseline", to_string(c.baseline_prefill_wall)},
                             {"compressed", to_string(c.compressed_prefill_wall)}};
  j["decode_fits"] = {{"baseline", c.baseline_decode_fit.fits}, {"compressed", c.compressed_decode_fit.fits}};
  j["prefill_fits"] = {{"baseline", c.baseline_prefill_fit.fits}, {"compressed", c.compressed_prefill_fit.fits}};
  j["stored_dense"] = c.stored_dense;
  j["shapes"] = {{"batch", c.shapes.batch},
                 {"context", c.shapes.context},
                 {"prefill_tokens", c.shapes.prefill_tokens},
                 {"fleet_batch", c.shapes.fleet_batch},
                 {"fleet_seq_len", c.shapes.fleet_seq_len},
                 {"fleet_output_len", c.shapes.fleet_output_len}};
  ordered_json fleet = ordered_json::array();
  for (const auto& f : c.fleet) fleet.push_back(fleet_row_json(f));
  j["gpu_hour_usd"] = units::in_usd_per_hour(c.gpu_rate);
  j["fleet"] = fleet;
  j["trace"] = c.trace;

  return j;
}

// " (does not fit on one h100)" when either variant's step exceeds the device: the times stand,
// the trace says what it needs.
std::string unfit_note(const StepFit& baseline, const StepFit& compressed, const std::string& device) {
  if (baseline.fits && compressed.fits) return "";
  const char* who = !baseline.fits && !compressed.fits ? "neither fits" : !baseline.fits ? "baseline does not fit"
                                                                                          : "compressed does not fit";
  return fmt::format("; {} on one {}", who, device);
}

// A fleet row's cells: '-' where a variant that does not fit has nothing to count or price.
std::vector<std::string> fleet_cells(const FleetRow& f) {
  if (!f.replica) return {f.label, format_bytes(f.model_size), "does not fit", "-", "-", "-", "-", "-", "-"};
  const FleetReplica& r = *f.replica;
  return {f.label, format_bytes(f.model_size), std::to_string(r.gpus_per_replica),
          fmt::format("{:.3g}", r.replica_qps), std::to_string(r.replicas), std::to_string(r.total_gpus),
          fmt::format("${:.0f}", r.annual_cost.si()), fmt::format("{:.3g}", r.annual_energy.si() / 3.6e9),
          fmt::format("{:.3g}", r.annual_emissions.si() / 1e3)};
}

void print_compress_table(const HardwareSpec& hw, const CompressionResult& c, const ordered_json& j) {
  const CompressionShapes& sh = c.shapes;
  out_stream() << text_grid({"metric", "value"},
                         {{"method", c.label},
                          {"stored size", fmt::format("{} -> {} ({:.2f}x)", format_bytes(c.original_size),
                                                      format_bytes(c.compressed_size), c.compression_ratio)},
                          {"decode speedup", fmt::format("{:.2f}x ({} -> {}, {}-bound; batch {}, {} cached{})",
                                                         c.inference_speedup, format_time(c.baseline_itl),
                                                         format_time(c.compressed_itl),
                                                         to_string(c.compressed_decode_wall), sh.batch, sh.context,
                                                         unfit_note(c.baseline_decode_fit, c.compressed_decode_fit, hw.id))},
                          {"prefill speedup", fmt::format("{:.2f}x (batch {} x {} tokens{})", c.prefill_speedup,
                                                          sh.batch, sh.prefill_tokens,
                                                          unfit_note(c.baseline_prefill_fit, c.compressed_prefill_fit, hw.id))},
                          {"accuracy change", fmt::format("{:+.1f}% to {:+.1f}% (literature range)",
                                                          c.accuracy_delta_low * 100, c.accuracy_delta_high * 100)}});
  if (!c.fleet.empty()) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& f : c.fleet) rows.push_back(fleet_cells(f));
    out_stream() << "\n" << text_grid({"fleet", "weights", "GPUs/replica", "req/s/replica", "replicas",
                                    "GPUs", "annual cost", "MWh/yr", "t CO2/yr"}, rows);
  }
  out_stream() << trace_text(j["trace"]);
}

// One record per fleet variant: the summary's columns, repeated, then that row's as fleet_*; without
// a fleet table, the summary alone. CSV then carries everything JSON does but the trace.
std::string compress_csv(const ordered_json& j) {
  const ordered_json summary = flatten_for_csv(j);  // drops the arrays (fleet, trace)
  if (j["fleet"].empty()) return csv_from_rows(ordered_json::array({summary}));
  ordered_json rows = ordered_json::array();
  for (const auto& f : j["fleet"]) {
    ordered_json row = summary;
    for (auto it = f.begin(); it != f.end(); ++it) row["fleet_" + it.key()] = *it;
    rows.push_back(std::move(row));
  }
  return csv_from_rows(rows);
}

int run_compress(const GlobalOptions& g, const CompressOptions& o) {
  const Format format = parse_format(g.format);
  const Workload w(g, o.model, o.hardware);
  const CompressionRequest r = compression_request(o, w.hw);
  const CompressionResult c = compress(w.model, w.hw, r);
  const ordered_json j = compress_json(w.model, w.hw, r, c);
  if (format == Format::Json) out_stream() << j.dump(2) << "\n";
  else if (format == Format::Csv) out_stream() << compress_csv(j);
  else print_compress_table(w.hw, c, j);
  return kExitOk;
}

const CommandRegistrar registrar(12, "compress", [](CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<CompressOptions>();
  auto* cmd = app.add_subcommand("compress", "Quantization and pruning: size, engine speedup, accuracy range, fleet");
  add_workload_options(cmd, o->model, o->hardware);
  cmd->add_option("--method", o->method, "quantization (default) | pruning");
  cmd->add_option("--target", o->target, "Quantization target precision: fp8 | int8 | int4 | fp4 | fp16");
  cmd->add_option("--target-bitwidth", o->target_bitwidth, "Quantization target bits: 16 | 8 | 4 (tutorial)");
  cmd->add_option("--scheme", o->scheme, "auto | weight-only | weights-activations");
  cmd->add_option("--sparsity", o->sparsity, "Pruning: fraction of weights removed in [0, 1) (default 0.5)");
  cmd->add_option("--sparsity-type", o->sparsity_type, "Pruning: unstructured | structured | n_m (2:4)");
  cmd->add_option("--baseline", o->baseline, "Uncompressed precision (default fp16)");
  cmd->add_option("--batch-size,-b", o->batch, "Sequences in the decode and prefill steps (default 1)");
  cmd->add_option("--context", o->context, "Decode step cached tokens (default 1024, or the model's window - 1)");
  cmd->add_option("--prefill-tokens", o->prefill_tokens, "Prefill step tokens per sequence (default 2048, or the window)");
  cmd->add_option("--qps", o->qps, "Fleet: target requests/s (0: one replica)");
  cmd->add_option("--fleet-batch", o->fleet_batch, "Fleet: requests per replica (default 8)");
  cmd->add_option("--fleet-seq-len", o->fleet_seq_len, "Fleet: prompt tokens (default 4096, shortened to fit the model's window)");
  cmd->add_option("--fleet-output-len", o->fleet_output_len, "Fleet: output tokens (default 256)");
  add_operating_cost_flags(cmd, o->costs);  // fleet: --gpu-hour-usd, --pue, --grid-kg-per-kwh
  add_efficiency_option(cmd, o->efficiency);
  cmd->add_option("--runtime", o->runtime, "graph (default) | eager");
  cmd->add_flag("--no-fleet", o->no_fleet, "Skip the fleet table");
  cmd->add_flag("--quantize-head", o->quantize_head, kQuantizeHeadHelp);
  return Command{cmd, [o, &g] { return run_compress(g, *o); }};
});

}  // namespace
}  // namespace mlsysim::cli
