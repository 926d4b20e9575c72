// `mlsysim simulate`: request-level continuous-batching serving simulation (tail latency under load).
#include <fmt/format.h>

#include <iostream>
#include <memory>
#include <optional>
#include <sstream>

#include "command.hpp"
#include "mlsysim/solvers/simulator.hpp"
#include "mlsysim/units/format.hpp"
#include "serving_format.hpp"

namespace mlsysim::cli {
namespace {

using nlohmann::ordered_json;

struct SimulateOptions {
  std::string model, hardware, precision, kv_precision, trace, length_dist = "exponential",
      sweep_rate, runtime = "graph";
  double rate = 0, ttft_slo_ms = 2000, itl_slo_ms = 100, memory_utilization = 0.9, efficiency = 0;
  DeploymentOverrideOptions deployment;
  int max_prompt_len = 0, max_output_len = 0;
  int requests = 1000, prompt_len = 512, output_len = 128, tp = 0, page_size = 16, max_batch = 256,
      max_batched_tokens = 0;
  std::uint64_t seed = 42;
  bool quantize_head = false;
  bool chunked_prefill = false;
  bool find_max_rate = false;
};

ordered_json pct(const Percentiles& p) {
  return {{"p50", p.p50}, {"p90", p.p90}, {"p99", p.p99}, {"mean", p.mean}};
}

ordered_json result_json(const SimulationResult& s) {
  ordered_json j;
  j["rate_rps"] = s.offered_rate;
  j["tp"] = s.tp;
  j["arrived"] = s.arrived;
  j["completed"] = s.completed;
  j["in_flight"] = s.in_flight;
  j["rejected"] = s.rejected;
  j["preemptions"] = s.preemptions;
  j["iterations"] = s.iterations;
  j["duration_s"] = s.duration.si();
  j["throughput_rps"] = s.throughput_rps;
  j["tokens_per_s"] = s.tokens_per_s;
  j["goodput_rps"] = s.goodput_rps;
  j["slo_attainment"] = s.slo_attainment;
  j["mean_batch"] = s.mean_batch;
  j["kv_pages"] = s.kv_pages;
  j["energy_j"] = s.energy.si();
  j["energy_per_token_j"] = s.energy_per_token.si();
  j["average_power_per_gpu_w"] = s.average_power_per_gpu.si();
  if (s.steady_state) {
    const SteadyState& w = *s.steady_state;
    j["steady_state"] = {{"start_s", w.start.si()},
                         {"end_s", w.end.si()},
                         {"tokens_per_s", w.tokens_per_s},
                         {"average_power_per_gpu_w", w.average_power_per_gpu.si()},
                         {"energy_per_token_j", w.energy_per_token.si()},
                         {"mean_batch", w.mean_batch}};
  } else {
    j["steady_state"] = nullptr;
  }
  j["ttft_s"] = pct(s.ttft);
  j["itl_s"] = pct(s.itl);
  j["tpot_s"] = pct(s.tpot);
  j["step_host_s"] = s.step_host.si();
  j["e2e_latency_s"] = pct(s.e2e);
  j["trace"] = s.trace;
  return j;
}

// What --find-max-rate adds ahead of the simulation at the rate it found.
ordered_json search_json(const MaxRateSearch& search, const SimulationRequest& r) {
  return {{"max_rate_rps", search.max_rate},
          {"failing_rate_rps", search.failing_rate},
          {"slo", {{"ttft_p99_s", r.ttft_slo.si()}, {"tpot_p99_s", r.itl_slo.si()}}},
          {"search_requests", search.requests},
          {"search_simulations", search.simulations}};
}

std::vector<double> parse_rates(const std::string& text) {
  std::vector<double> rates;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    if (item.empty() || *end != 0 || !(v > 0) || !std::isfinite(v))
      throw BadInput(fmt::format("--sweep-rate must be a comma-separated list of rates > 0 "
                                 "requests/s (e.g. 1,2,4,8); '{}' is not", item));
    rates.push_back(v);
  }
  if (rates.empty()) throw BadInput("--sweep-rate needs at least one rate, e.g. 1,2,4,8");
  return rates;
}

int run_simulate(const GlobalOptions& g, const SimulateOptions& o) {
  const Format format = parse_format(g.format);
  const Workload w(g, o.model, o.hardware);
  const ModelSpec& model = w.model;
  const HardwareSpec& hw = w.hw;
  const auto fleet = load_fleet(g);
  SimulationRequest r;
  r.fleet = fleet.get();
  const SimulateOptions defaults;
  if (!o.trace.empty()) {
    if (o.rate != 0 || !o.sweep_rate.empty())
      throw BadInput("--trace replays recorded arrivals: drop --rate / --sweep-rate");
    // The trace fixes every request: flags that shape generated requests would be ignored.
    if (o.requests != defaults.requests || o.prompt_len != defaults.prompt_len ||
        o.output_len != defaults.output_len || o.length_dist != defaults.length_dist || o.seed != defaults.seed ||
        o.max_prompt_len != defaults.max_prompt_len || o.max_output_len != defaults.max_output_len)
      throw BadInput("--trace replays recorded requests (their count, lengths and arrivals): drop --requests, "
                     "--prompt-len, --output-len, --max-prompt-len, --max-output-len, --length-dist and --seed, "
                     "which shape generated ones");
    r.trace = parse_trace_csv(read_file(o.trace), o.trace);
  }
  if (o.rate != 0 && !o.sweep_rate.empty())
    throw BadInput("--rate and --sweep-rate both set the arrival rate: give one (--sweep-rate runs each of its rates)");
  if (o.find_max_rate && (o.rate != 0 || !o.sweep_rate.empty() || !o.trace.empty()))
    throw BadInput("--find-max-rate searches the arrival rate itself: drop --rate, --sweep-rate and --trace");
  if (o.trace.empty() && o.sweep_rate.empty() && o.rate == 0 && !o.find_max_rate)
    throw BadInput("simulate needs its arrivals: --rate R (Poisson, requests/s > 0, e.g. --rate 5), --sweep-rate "
                   "R1,R2,... (a latency-vs-load curve), --find-max-rate (the highest rate within the SLOs) or "
                   "--trace FILE (recorded requests)");
  r.rate = o.rate;
  r.requests = o.requests;
  r.prompt_len = o.prompt_len;
  r.output_len = o.output_len;
  r.max_prompt_len = o.max_prompt_len;
  r.max_output_len = o.max_output_len;
  r.length_dist = parse_enum<LengthDist>("--length-dist", o.length_dist,
                                         {{"exponential", LengthDist::Exponential}, {"fixed", LengthDist::Fixed}});
  r.seed = o.seed;
  if (!o.precision.empty()) r.precision = parse_precision_flag("--precision", o.precision);
  if (!o.kv_precision.empty()) r.kv_precision = parse_precision_flag("--kv-precision", o.kv_precision);
  r.overrides = parse_deployment_overrides(o.deployment);
  r.quantize_head = o.quantize_head;
  if (o.tp < 0) throw BadInput(fmt::format("--tp must be >= 1, got {}", o.tp));
  r.tp = o.tp;
  r.memory_utilization = o.memory_utilization;
  r.page_size = o.page_size;
  r.max_batch = o.max_batch;
  r.max_batched_tokens = o.max_batched_tokens;
  r.chunked_prefill = o.chunked_prefill;
  r.runtime = parse_runtime_flag(o.runtime);
  r.efficiency = o.efficiency;  // checked by the solver
  r.ttft_slo = milliseconds(o.ttft_slo_ms);
  r.itl_slo = milliseconds(o.itl_slo_ms);

  TerminalProgress progress("simulating");
  if (progress.active())
    r.progress = [&progress](double f) { progress.report(fmt::format("{:5.1f}% of requests", f * 100), f >= 1.0); };

  std::vector<SimulationResult> results;
  std::optional<MaxRateSearch> search;
  if (o.find_max_rate) {
    TerminalProgress searching("searching");
    if (searching.active())  // (the search's own runs never call r.progress: it reports per run here)
      r.search_progress = [&searching](const SearchStatus& s) {
        searching.report(fmt::format("{} runs of {} requests; {:.4g} req/s {} the SLOs", s.simulations, s.requests,
                                     s.rate, s.meets ? "meets" : "misses"));
      };
    search = find_max_rate(model, hw, r);
    searching.report(fmt::format("{:.4g} req/s after {} runs", search->max_rate, search->simulations), true);
    results.push_back(search->at_max);
  } else if (!o.sweep_rate.empty()) {
    results = sweep_rates(model, hw, r, parse_rates(o.sweep_rate));
  } else {
    results.push_back(simulate(model, hw, r));
  }

  ordered_json j;
  if (results.size() == 1) {
    j["model"] = model.id;
    j["hardware"] = hw.id;
    if (search) {
      const ordered_json found = search_json(*search, r);  // named: items() keeps no temporary alive
      for (const auto& [k, v] : found.items()) j[k] = v;
    }
    const ordered_json one = result_json(results[0]);
    for (auto it = one.begin(); it != one.end(); ++it) j[it.key()] = *it;
  } else {
    j["model"] = model.id;
    j["hardware"] = hw.id;
    j["sweep"] = ordered_json::array();
    for (const auto& s : results) j["sweep"].push_back(result_json(s));
  }
  if (format == Format::Json) {
    out_stream() << j.dump(2) << "\n";
  } else if (format == Format::Csv) {
    ordered_json rows = ordered_json::array();
    for (const auto& s : results) {
      ordered_json row = {{"model", model.id}, {"hardware", hw.id}};
      ordered_json one = search ? search_json(*search, r) : ordered_json::object();
      const ordered_json simulated = result_json(s);
      for (const auto& [k, v] : simulated.items()) one[k] = v;
      const ordered_json fields = flatten_for_csv(one);  // named: items() keeps no temporary alive
      for (const auto& [k, v] : fields.items()) row[k] = v;
      rows.push_back(row);
    }
    out_stream() << csv_from_rows(rows);
  } else {
    std::vector<std::vector<std::string>> rows;
    for (const auto& s : results)
      rows.push_back({fmt::format("{:.3g}", s.offered_rate), fmt::format("{:.3g}", s.throughput_rps),
                      fmt::format("{:.3g}", s.goodput_rps),
                      format_time(Seconds(s.ttft.p50)) + " / " + format_time(Seconds(s.ttft.p99)),
                      format_time(Seconds(s.itl.p50)) + " / " + format_time(Seconds(s.itl.p99)),
                      format_time(Seconds(s.tpot.p50)) + " / " + format_time(Seconds(s.tpot.p99)),
                      format_time(Seconds(s.e2e.p50)) + " / " + format_time(Seconds(s.e2e.p99)),
                      fmt::format("{:.1f}", s.mean_batch), std::to_string(s.preemptions),
                      format_power(s.average_power_per_gpu)});
    // Under --find-max-rate the one row is the simulation at the rate found.
    out_stream() << text_grid({search ? "max rate req/s" : "rate req/s", "thru req/s", "goodput req/s",
                               "TTFT p50/p99", "ITL p50/p99", "TPOT p50/p99", "E2E p50/p99", "batch", "preempt",
                               "W/GPU"},
                              rows)
              << (results.size() > 1 ? fmt::format("(Why: the last rate, {:.3g} req/s.)\n", results.back().offered_rate)
                                     : std::string())
              << trace_text(result_json(results.back())["trace"]);
  }
  return kExitOk;
}

const CommandRegistrar registrar(13, "simulate", [](CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<SimulateOptions>();
  auto* cmd = app.add_subcommand("simulate", "Request-level continuous-batching serving simulation");
  add_workload_options(cmd, o->model, o->hardware);
  cmd->add_option("--rate", o->rate, "Poisson arrival rate, requests/s");
  cmd->add_option("--sweep-rate", o->sweep_rate, "Latency-vs-load curve: comma-separated rates (req/s)");
  cmd->add_option("--trace", o->trace, "CSV trace: arrival_s,prompt_tokens,output_tokens");
  cmd->add_option("--requests,-n", o->requests, "Requests to simulate (default 1000)");
  cmd->add_option("--prompt-len", o->prompt_len, "Mean prompt tokens (default 512)");
  cmd->add_option("--output-len", o->output_len, "Mean output tokens (default 128)");
  cmd->add_option("--max-prompt-len", o->max_prompt_len,
                  "Cap on each prompt's length, e.g. a benchmark's 1024 (exponential draws keep their mean)");
  cmd->add_option("--max-output-len", o->max_output_len,
                  "Cap on each request's output, as max_tokens (exponential draws keep their mean)");
  cmd->add_option("--length-dist", o->length_dist, "exponential (default) | fixed");
  cmd->add_option("--seed", o->seed, "Random seed (default 42)");
  cmd->add_option("--precision", o->precision, "Weight precision");
  cmd->add_option("--kv-precision", o->kv_precision, "KV-cache precision");
  add_deployment_override_options(cmd, o->deployment);
  cmd->add_flag("--quantize-head", o->quantize_head, kQuantizeHeadHelp);
  cmd->add_option("--tp", o->tp, "Tensor-parallel GPUs (default: smallest that fits)");
  cmd->add_option("--memory-utilization", o->memory_utilization, "Usable share of device memory (default 0.9)");
  cmd->add_option("--page-size", o->page_size, "KV block size in tokens (default 16)");
  cmd->add_option("--max-batch", o->max_batch, "Max running sequences, vLLM --max-num-seqs (default 256); also sizes the sampler's start-up reserve, min(N, --max-batched-tokens) x vocabulary x 16 B");
  cmd->add_option("--max-batched-tokens", o->max_batched_tokens, "Max tokens per iteration, vLLM --max-num-batched-tokens (default 8192; without --chunked-prefill at least the longest prompt, which one iteration prefills)");
  cmd->add_flag("--chunked-prefill", o->chunked_prefill, "Chunked prefill (Sarathi-Serve)");
  cmd->add_flag("--find-max-rate", o->find_max_rate,
                "Search the highest Poisson rate whose p99 TTFT and p99 TPOT meet --ttft-slo-ms and --itl-slo-ms "
                "(MLPerf Inference Server's rule); JSON max_rate_rps, and the simulation at that rate");
  cmd->add_option("--ttft-slo-ms", o->ttft_slo_ms, "SLO on TTFT, ms (default 2000): goodput; p99 for --find-max-rate");
  cmd->add_option("--itl-slo-ms", o->itl_slo_ms,
                  "SLO on time per output token, ms (default 100): goodput; p99 TPOT for --find-max-rate");
  cmd->add_option("--runtime", o->runtime, "graph (default) | eager");
  add_efficiency_option(cmd, o->efficiency);
  return Command{cmd, [o, &g] { return run_simulate(g, *o); }};
});

}  // namespace
}  // namespace mlsysim::cli
