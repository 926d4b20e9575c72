// `mlsysim serve`: LLM serving on one replica (ServingModel + ContinuousBatchingModel): TTFT, ITL,
// KV cache, memory, throughput; speculative, disaggregated and tensor-parallel serving.
#include <fmt/format.h>

#include <algorithm>
#include <iostream>
#include <memory>

#include "command.hpp"
#include "held_out_accuracy.hpp"
#include "mlsysim/solvers/serving.hpp"
#include "mlsysim/units/format.hpp"
#include "operating_costs.hpp"
#include "serving_format.hpp"

namespace mlsysim::cli {
namespace {

using nlohmann::ordered_json;

struct ServeOptions {
  std::string model, hardware, precision, kv_precision, runtime = "graph", draft_model,
      decode_hardware;
  int seq_len = 0, batch = 1, output_len = 128, tp = 0, decode_tp = 0, prefill_chunk = 0;
  int draft_tokens = 4, page_size = 16, max_batch = 256;
  std::optional<int> mean_tokens;
  std::optional<double> acceptance_rate, kv_link_gbs, itl_slo_ms;
  DeploymentOverrideOptions deployment;
  double memory_utilization = kDefaultMemoryUtilization, efficiency = 0;
  bool quantize_head = false;
  OperatingCostFlags costs;
};

ordered_json wall(Wall w) { return to_string(w); }

ServingRequest serving_request(const ServeOptions& o, const Catalog& catalog, const FleetCatalog* fleet,
                               ModelSpec& custom_draft) {
  ServingRequest r;
  r.fleet = fleet;
  r.seq_len = o.seq_len;
  r.batch = o.batch;
  r.output_len = o.output_len;
  if (!o.precision.empty()) r.precision = parse_precision_flag("--precision", o.precision);
  if (!o.kv_precision.empty()) r.kv_precision = parse_precision_flag("--kv-precision", o.kv_precision);
  r.overrides = parse_deployment_overrides(o.deployment);
  r.quantize_head = o.quantize_head;
  r.tp = o.tp;
  r.decode_tp = o.decode_tp;
  r.prefill_chunk = o.prefill_chunk;
  r.memory_utilization = o.memory_utilization;
  r.efficiency = o.efficiency;  // checked by the solver
  r.runtime = parse_runtime_flag(o.runtime);
  if (!o.draft_model.empty()) r.draft_model = &resolve_model(catalog, o.draft_model, custom_draft);
  else if (o.acceptance_rate)
    throw BadInput("--acceptance-rate needs --draft-model (speculative decoding)");
  else if (o.draft_tokens != ServeOptions{}.draft_tokens)
    throw BadInput("--draft-tokens needs --draft-model (speculative decoding)");
  r.draft_tokens = o.draft_tokens;
  if (o.acceptance_rate) r.acceptance_rate = *o.acceptance_rate;
  if (!o.decode_hardware.empty()) r.decode_hardware = &catalog.hardware(o.decode_hardware);
  else if (o.decode_tp != 0) throw BadInput("--decode-tp needs --decode-hardware (disaggregated serving)");
  if (o.kv_link_gbs) {
    if (!r.decode_hardware) throw BadInput("--kv-link-gbs needs --decode-hardware (disaggregated serving)");
    r.kv_link_bandwidth = gigabytes_per_second(*o.kv_link_gbs);
  }
  return r;
}

// The continuous-batching question on the same replica (the TP `serve` chose); disaggregated, on
// its decode GPUs, which hold the running requests' KV caches.
BatchingRequest batching_request(const ServeOptions& o, const ServingRequest& r, const ServingResult& s) {
  BatchingRequest b;
  b.fleet = r.fleet;
  // A request caches its prompt and every generated token but the last (never fed back).
  b.seq_len = std::max(2, o.seq_len + o.output_len - 1);
  b.mean_tokens = o.mean_tokens;
  b.max_batch = o.max_batch;
  b.page_size = o.page_size;
  if (o.itl_slo_ms) {
    b.itl_slo = milliseconds(*o.itl_slo_ms);
  }
  b.precision = r.precision;
  b.kv_precision = r.kv_precision;
  b.overrides = r.overrides;
  b.quantize_head = r.quantize_head;
  b.tp = s.disaggregated ? s.decode_tp : s.tp;
  b.memory_utilization = r.memory_utilization;
  b.efficiency = r.efficiency;
  b.runtime = r.runtime;
  return b;
}

ordered_json allocator_json(const AllocatorCapacity& c) {
  return ordered_json{{"max_concurrent_requests", c.max_concurrent_requests},
                      {"memory_limit", c.memory_limit},
                      {"slo_limit", c.slo_limit},
                      {"binding", c.binding},
                      {"kv_bytes_allocated_per_request", c.kv_allocated_per_request.si()},
                      {"kv_utilization", c.kv_utilization},
                      {"itl_s", c.itl.si()},
                      {"tokens_per_s", c.tokens_per_s}};
}

struct ServeAnswer {
  const ModelSpec& model;
  const HardwareSpec& hw;
  const ServingRequest& r;
  const ServingResult& s;
  const BatchingRequest& b;
  const BatchingResult& cb;
  const ServingOutlook& money;
};

// The deployment serves when this batch fits its memory ledger and the runtime's KV pool (after its
// start-up reserve) admits at least one request within the ITL SLO.
bool serves(const ServeAnswer& a) { return a.s.feasible && a.cb.feasible; }

ordered_json serve_json(const ServeAnswer& a) {
  const ServingResult& s = a.s;
  const ServingRequest& r = a.r;
  ordered_json j;
  j["model"] = a.model.id;
  j["hardware"] = a.hw.id;
  if (r.decode_hardware) j["decode_hardware"] = r.decode_hardware->id;
  j["seq_len"] = r.seq_len;
  j["batch_size"] = r.batch;
  j["output_len"] = r.output_len;
  j["tp"] = s.tp;
  if (s.disaggregated) j["decode_tp"] = s.decode_tp;
  j["gpus"] = s.gpus;
  j["feasible"] = serves(a);
  j["ttft_s"] = s.ttft.si();
  j["itl_s"] = s.itl.si();
  j["step_host_s"] = s.step_host.si();
  j["e2e_latency_s"] = s.e2e_latency.si();
  j["kv_cache_bytes_per_request"] = s.kv_cache_per_request.si();
  j["tokens_per_s"] = s.tokens_per_s;
  j["tokens_per_s_per_gpu"] = s.tokens_per_s_per_gpu;
  j["request_tokens_per_s"] = s.request_tokens_per_s;
  j["request_tokens_per_s_per_gpu"] = s.request_tokens_per_s_per_gpu;
  j["energy_per_token_j"] = a.money.energy_per_token.si();
  j["average_power_per_gpu_w"] = s.average_power_per_gpu.si();
  j["facility_energy_per_token_j"] = a.money.facility_energy_per_token.si();
  j["cost_per_million_tokens_usd"] = a.money.cost_per_million_tokens.si();
  j["gpu_hour_usd"] = units::in_usd_per_hour(a.money.gpu_rate);
  j["emissions_per_million_tokens_kg_co2"] = a.money.emissions_per_million_tokens.si();
  j["memory_footprint_bytes"] = s.memory_footprint.si();
  j["memory_available_bytes"] = s.memory_available.si();
  j["memory_capacity_bytes"] = s.memory_capacity.si();
  j["memory_utilization"] = s.memory_utilization;
  j["memory"] = {{"weights_bytes", s.weights_per_gpu.si()},
                 {"kv_cache_bytes", s.kv_cache_per_gpu.si()},
                 {"activations_bytes", s.activations_per_gpu.si()},
                 {"draft_bytes", s.draft_per_gpu.si()}};
  j["prefill"] = {{"bottleneck", wall(s.prefill_bottleneck)},
                  {"mfu", s.prefill_mfu},
                  {"arithmetic_intensity_flop_per_byte", s.prefill_intensity.si()},
                  {"ridge_point_flop_per_byte", s.ridge_point.si()},
                  {"chunks", s.prefill_chunks},
                  {"longest_chunk_s", s.prefill_chunk_time.si()},
                  {"tp_comm_s", s.prefill_comm.si()}};
  j["decode"] = {{"bottleneck", wall(s.decode_bottleneck)},
                 {"mfu", s.decode_mfu},
                 {"arithmetic_intensity_flop_per_byte", s.decode_intensity.si()},
                 {"itl_without_speculation_s", s.itl_plain.si()},
                 {"compute_bound_batch", s.decode_compute_bound_batch},
                 {"tp_comm_s", s.decode_comm.si()}};
  if (s.speculative)
    j["speculative"] = {{"draft_model", r.draft_model->id},
                        {"draft_tokens", s.draft_tokens},
                        {"acceptance_rate", s.acceptance_rate},
                        {"expected_tokens_per_step", s.expected_tokens_per_step},
                        {"draft_step_s", s.draft_step_time.si()},
                        {"verify_s", s.verify_time.si()},
                        {"speculative_speedup", s.speculative_speedup}};
  if (s.disaggregated) j["disaggregated"] = {{"kv_transfer_s", s.kv_transfer.si()}};
  j["max_concurrent_requests"] = {{"static", a.cb.static_alloc.max_concurrent_requests},
                                  {"paged", a.cb.paged.max_concurrent_requests}};
  j["continuous_batching"] = {{"page_size", a.b.page_size},
                              {"mean_tokens", a.cb.mean_tokens},
                              {"kv_budget_bytes", std::max(0.0, a.cb.kv_budget.si())},
                              {"kv_shortfall_bytes", std::max(0.0, -a.cb.kv_budget.si())},
                              {"feasible", a.cb.feasible},
                              {"static", allocator_json(a.cb.static_alloc)},
                              {"paged", allocator_json(a.cb.paged)},
                              {"speedup_vs_static", a.cb.speedup_vs_static}};
  ordered_json trace = s.trace;
  for (const auto& l : a.money.trace) trace.push_back("Cost and energy: " + l);
  for (const auto& l : a.cb.trace) trace.push_back("Continuous batching: " + l);
  j["trace"] = trace;
  return j;
}

std::vector<std::vector<std::string>> serve_table_rows(const ServeAnswer& a) {
  const ServingResult& s = a.s;
  const BatchingResult& cb = a.cb;
  std::vector<std::vector<std::string>> rows = {
      {"TTFT", format_time(s.ttft), fmt::format("prefill, {}-bound", to_string(s.prefill_bottleneck))},
      {"ITL", format_time(s.itl), s.speculative ? fmt::format("speculative, {:.2f}x", s.speculative_speedup)
                                                : fmt::format("decode, {}-bound", to_string(s.decode_bottleneck))},
      {"end-to-end latency", format_time(s.e2e_latency), ""},
      {"KV cache / request", format_bytes(s.kv_cache_per_request),
       fmt::format("{} tokens", a.r.seq_len + a.r.output_len)},
      {"tokens/s", fmt::format("{:.4g}", s.tokens_per_s), fmt::format("{:.4g} per {}", s.tokens_per_s_per_gpu, s.unit)},
      {s.unit + "s", std::to_string(s.gpus), fmt::format("tp {}", s.tp)},
      {"cost / 1M tokens", fmt::format("${:.3g}", a.money.cost_per_million_tokens.si()),
       fmt::format("{:.3g} J/token, {:.3g} g CO2 per 1k tokens", a.money.facility_energy_per_token.si(),
                   a.money.emissions_per_million_tokens.si())},
      {"power / " + s.unit, format_power(s.average_power_per_gpu), "mean board draw of a busy " + s.unit},
      {"memory / " + s.unit, format_bytes(s.memory_footprint),
       fmt::format("of {} available ({} usable x --memory-utilization {:g})", format_bytes(s.memory_available),
                   format_bytes(s.memory_capacity), a.r.memory_utilization)},
      {"max concurrent (static)", std::to_string(cb.static_alloc.max_concurrent_requests), cb.static_alloc.binding},
      {"max concurrent (paged)", std::to_string(cb.paged.max_concurrent_requests), cb.paged.binding},
      {"feasible", serves(a) ? "yes" : "NO",
       s.feasible && !cb.feasible ? "continuous batching admits no request" : ""}};
  if (s.disaggregated) rows.insert(rows.begin() + 2, {"KV transfer", format_time(s.kv_transfer), ""});
  return rows;
}

int run_serve(const GlobalOptions& g, const ServeOptions& o) {
  const Format format = parse_format(g.format);
  const Workload w(g, o.model, o.hardware);
  const Catalog& catalog = *w.catalog;
  const ModelSpec& model = w.model;
  const HardwareSpec& hw = w.hw;
  ModelSpec custom_draft;
  const auto fleet = load_fleet(g);
  const ServingRequest r = serving_request(o, catalog, fleet.get(), custom_draft);
  const ServingResult s = serve(model, hw, r);
  const BatchingRequest b = batching_request(o, r, s);
  const HardwareSpec& pool_hw = r.decode_hardware ? *r.decode_hardware : hw;  // holds the KV caches
  const BatchingResult cb = continuous_batching(model, pool_hw, b);
  const OperatingCosts decode_costs = o.costs.costs(pool_hw);
  const ServingOutlook money = serving_outlook(s, o.costs.costs(hw), &decode_costs);
  const ServeAnswer answer{model, hw, r, s, b, cb, money};
  const ordered_json j = serve_json(answer);

  if (format == Format::Json) out_stream() << j.dump(2) << "\n";
  else if (format == Format::Csv) out_stream() << csv_from_rows(ordered_json::array({flatten_for_csv(j)}));
  else
    out_stream() << text_grid({"metric", "value", "note"}, serve_table_rows(answer)) << trace_text(j["trace"])
              << accuracy_line_for("serving", kGraphGroup, hw.id)
              << accuracy_line_for("capacity", kGraphGroup);  // the KV pool behind "max concurrent"
  if (!serves(answer)) {
    err_stream() << "error: "
              << (s.feasible ? model.id + " serving on " + pool_hw.id + ": " + batching_does_not_fit_message(cb, b, model, pool_hw)
                             : serving_does_not_fit_message(s, model))
              << "\n";
    return kExitDoesNotFit;
  }
  return kExitOk;
}

const CommandRegistrar registrar(11, "serve", [](CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<ServeOptions>();
  auto* cmd = app.add_subcommand("serve", "LLM serving: TTFT, ITL, KV cache, concurrency, speculative/disaggregated");
  add_workload_options(cmd, o->model, o->hardware, "Hardware id (prefill hardware when disaggregated)");
  cmd->add_option("--seq-len,-s", o->seq_len, "Prompt tokens per request")->required();
  cmd->add_option("--batch-size,-b", o->batch, "Concurrent requests (default 1)");
  cmd->add_option("--output-len", o->output_len, "Generated tokens per request (default 128)");
  cmd->add_option("--precision", o->precision, "Weight precision: fp16 | bf16 | fp8 | int8 | int4 ...");
  cmd->add_option("--kv-precision", o->kv_precision, "KV-cache precision (default: math precision)");
  add_deployment_override_options(cmd, o->deployment);
  cmd->add_flag("--quantize-head", o->quantize_head, kQuantizeHeadHelp);
  cmd->add_option("--tp", o->tp, "Tensor-parallel GPUs (default: smallest power of two that fits)");
  cmd->add_option("--prefill-chunk", o->prefill_chunk, "Chunked prefill: tokens per chunk (0 = off)");
  cmd->add_option("--memory-utilization", o->memory_utilization, "Usable share of device memory (default 0.9, as vLLM)");
  add_efficiency_option(cmd, o->efficiency);
  cmd->add_option("--runtime", o->runtime, "graph (default) | eager");
  cmd->add_option("--draft-model", o->draft_model, "Speculative decoding: draft model id");
  cmd->add_option("--draft-tokens", o->draft_tokens, "Speculative decoding: tokens drafted per step K (default 4)");
  cmd->add_option("--acceptance-rate", o->acceptance_rate, "Speculative decoding: per-token acceptance alpha in [0, 1] (default 0.7)");
  cmd->add_option("--decode-hardware", o->decode_hardware, "Disaggregated serving: decode hardware id");
  cmd->add_option("--decode-tp", o->decode_tp, "Disaggregated serving: decode tensor-parallel GPUs");
  cmd->add_option("--kv-link-gbs", o->kv_link_gbs, "Disaggregated serving: KV transfer link, GB/s (default 50)");
  cmd->add_option("--page-size", o->page_size, "Paged KV cache: tokens per block (default 16)");
  cmd->add_option("--max-batch", o->max_batch, "Continuous batching: max concurrent sequences, vLLM --max-num-seqs (default 256; its OpenAI server uses 1024); the KV pool shrinks by the sampler's start-up reserve, min(N, 8192) x vocabulary x 16 B");
  cmd->add_option("--mean-tokens", o->mean_tokens, "Continuous batching: mean tokens a request caches (default: seq-len + output-len - 1)");
  cmd->add_option("--itl-slo-ms", o->itl_slo_ms, "Continuous batching: ITL SLO in ms");
  add_operating_cost_flags(cmd, o->costs);
  return Command{cmd, [o, &g] { return run_serve(g, *o); }};
});

}  // namespace
}  // namespace mlsysim::cli
