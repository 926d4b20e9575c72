// Request-level serving simulator: arrivals (Poisson or a trace), an iteration-level continuous-
// batching scheduler modelled on vLLM's (Kwon et al. 2023; Orca's iteration-level scheduling, Yu
// et al. 2022): FCFS admission by free KV pages, preemption by recomputation when pages run out,
// optional chunked prefill (Sarathi-Serve, Agrawal et al. 2024). Every iteration is timed by the
// engine through a cache keyed by (batch, token and context buckets). Deterministic per seed.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "mlsysim/catalog/fleet.hpp"
#include "mlsysim/catalog/hardware.hpp"
#include "mlsysim/catalog/model.hpp"
#include "mlsysim/physics/efficiency.hpp"
#include "mlsysim/solvers/serving.hpp"
#include "mlsysim/units/quantity.hpp"

namespace mlsysim {

struct TraceRequest {
  Seconds arrival{};  // the CSV column arrival_s
  int prompt_tokens = 0, output_tokens = 0;
};
// CSV with header `arrival_s,prompt_tokens,output_tokens`; arrivals non-decreasing. Throws
// BadInput naming the row (1-based, header = row 1) and the field for any bad row.
std::vector<TraceRequest> parse_trace_csv(const std::string& text, const std::string& name = "trace");

enum class LengthDist { Fixed, Exponential };

struct SimulationRequest {
  // Workload: a trace, or Poisson arrivals at `rate` with lengths drawn around the means.
  std::vector<TraceRequest> trace;
  double rate = 0;              // requests/s (Poisson)
  int requests = 1000;
  int prompt_len = 512, output_len = 128;
  LengthDist length_dist = LengthDist::Exponential;
  // A benchmark's or server's limit on each drawn length (0: the model's window only), e.g. MLPerf
  // Llama-2-70B's 1024 prompt and 1024 output tokens. Exponential draws are clipped at it with their
  // scale raised so that the clipped mean is still prompt_len / output_len.
  int max_prompt_len = 0, max_output_len = 0;
  std::uint64_t seed = 42;
  // Deployment and scheduler.
  std::optional<Precision> precision, kv_precision;
  bool quantize_head = false;  // SolveRequest::quantize_head
  DeploymentOverrides overrides;  // weight-only math, the engine's host work per iteration
  int tp = 0;                   // 0: smallest that fits (as `serve`)
  double memory_utilization = 0.90;
  int page_size = 16;
  int max_batch = 256;          // vLLM --max-num-seqs
  // vLLM --max-num-batched-tokens. 0: its default, 8192 (the chunked-prefill default), raised to the
  // longest prompt without chunked prefill (vLLM: at least max_model_len), which prefills a prompt
  // in one iteration; a value given below that longest prompt is refused.
  int max_batched_tokens = 0;
  bool chunked_prefill = false;
  double efficiency = 0;
  Runtime runtime = Runtime::Graph;
  const FleetCatalog* fleet = nullptr;  // as ServingRequest::fleet (TP all-reduces)
  // SLOs for goodput.
  Seconds ttft_slo = seconds(2.0), itl_slo = milliseconds(100);
  // find_max_rate: rates it may try next run ahead on this many threads (0: all cores, at most 16).
  // The answer and its path do not depend on it, only the wall time and the wasted runs.
  int search_threads = 0;
  std::function<void(double)> progress;  // fraction of requests finished, called now and then
  // find_max_rate: called after each run on the search's path (SearchStatus).
  std::function<void(const struct SearchStatus&)> search_progress;
};

// Where find_max_rate stands after a run on its path.
struct SearchStatus {
  int simulations = 0;  // runs on the path so far
  int requests = 0;     // requests per run now
  double rate = 0;      // the run's arrival rate, requests/s
  bool meets = false;   // whether it met both SLOs
};

struct Percentiles {
  double p50 = 0, p90 = 0, p99 = 0, mean = 0;  // seconds
};

// The run between its ramps (SimulationResult::steady_state), the window serving benchmarks such as
// ML.ENERGY's average over.
struct SteadyState {
  Seconds start{}, end{};
  double tokens_per_s = 0;         // tokens generated in the window / its length
  Watts average_power_per_gpu{};   // the GPUs' energy in the window / its length, per GPU
  Joules energy_per_token{};       // the replica's energy per token generated in the window
  double mean_batch = 0;           // running requests per iteration in the window
};

struct SimulationResult {
  long arrived = 0, completed = 0, in_flight = 0, rejected = 0;
  long preemptions = 0, iterations = 0;
  Seconds step_host{};  // the runtime's host work in each iteration (ServingDeployment::step_host)
  Percentiles ttft, itl, e2e;
  // Time per output token of each request that generates more than one, MLPerf Inference's TPOT:
  // (finish - first token) / (output tokens - 1). `itl` pools every gap between tokens instead, so a
  // long request counts once per token there and once here.
  Percentiles tpot;
  Seconds duration{};             // simulated time until the last completion
  double throughput_rps = 0;      // completed / duration
  double tokens_per_s = 0;        // generated tokens / duration
  double goodput_rps = 0;         // completed within both SLOs / duration
  double slo_attainment = 0;      // share of completed requests within both SLOs
  double mean_batch = 0;          // running requests per iteration
  // Energy of the replica's GPUs until the last completion: each step at the engine's power (a
  // fused chunked-prefill step saves one weight read's), waits for arrivals at the idle floor.
  Joules energy{};
  Watts average_power_per_gpu{};  // that energy over the duration, per GPU
  Joules energy_per_token{};      // per generated token
  // From the iteration in which --max-batch requests have their first token to the one in which all
  // but max-batch + 1 requests have finished; absent when the run is too short to have one.
  std::optional<SteadyState> steady_state;
  long kv_pages = 0;
  int tp = 1;
  double offered_rate = 0;
  long step_cache_entries = 0;
  std::vector<std::string> trace;
};

SimulationResult simulate(const ModelSpec& model, const HardwareSpec& hw, const SimulationRequest& r);

// The capacity question MLPerf Inference's Server scenario asks: the highest Poisson rate at which
// the p99 TTFT stays within `ttft_slo` and the p99 TPOT within `itl_slo`, every request served.
struct MaxRateSearch {
  double max_rate = 0;          // requests/s, the highest rate found to meet both SLOs
  double failing_rate = 0;      // the lowest rate found to miss one (max_rate x (1 + tolerance))
  SimulationResult at_max;      // the simulation at max_rate, its trace led by the search's
  int requests = 0;             // requests per run the answer was searched with (>= the request's)
  int simulations = 0;
};
// Rates are searched geometrically (doubling or halving from 1 req/s to a bracket, then bisection
// to a relative `tolerance`); every run uses the request's seed, so the same requests arrive in
// the same order with their times scaled by 1/rate and the latencies grow with the rate. The
// answer must also hold on a run twice as long, else the search repeats with twice the requests
// (a short run hides a backlog growing above capacity). Throws BadInput when no rate down to
// 1e-6 req/s meets the SLOs (a request alone misses them).
MaxRateSearch find_max_rate(const ModelSpec& model, const HardwareSpec& hw, const SimulationRequest& r,
                            double tolerance = 0.01);

// Latency-vs-load curve: one simulation per rate (same seed, same lengths).
std::vector<SimulationResult> sweep_rates(const ModelSpec& model, const HardwareSpec& hw,
                                          const SimulationRequest& r, const std::vector<double>& rates);

}  // namespace mlsysim
