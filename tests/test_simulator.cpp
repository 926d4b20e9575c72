// Request-level serving simulator: determinism, conservation of requests, percentile ordering,
// latency growing with load, goodput <= throughput, an independent replay of a single request,
// preemption under memory pressure, trace-file errors and speed.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <rapidcheck/gtest.h>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/physics/serving.hpp"
#include "mlsysim/solvers/engine.hpp"
#include "mlsysim/solvers/serving.hpp"
#include "mlsysim/solvers/simulator.hpp"

using namespace mlsysim;

namespace {
const ModelSpec& model(const char* id) { return Catalog::builtin().model(id); }
const HardwareSpec& hw(const char* id) { return Catalog::builtin().hardware(id); }
SimulationRequest poisson(double rate, int n, std::uint64_t seed = 7) {
  SimulationRequest r;
  r.rate = rate;
  r.requests = n;
  r.seed = seed;
  r.prompt_len = 256;
  r.output_len = 64;
  return r;
}
// A Poisson workload with the SLOs the max-rate tests search under: p99 TTFT <= 1 s, TPOT <= 60 ms.
SimulationRequest with_slos(int requests) {
  SimulationRequest r = poisson(1, requests);
  r.ttft_slo = seconds(1.0);
  r.itl_slo = milliseconds(60);
  return r;
}
void check_invariants(const SimulationResult& s) {
  EXPECT_EQ(s.arrived, s.completed + s.in_flight + s.rejected);
  for (const Percentiles* p : {&s.ttft, &s.itl, &s.tpot, &s.e2e}) {
    EXPECT_LE(p->p50, p->p90 * (1 + 1e-12));
    EXPECT_LE(p->p90, p->p99 * (1 + 1e-12));
  }
  EXPECT_LE(s.goodput_rps, s.throughput_rps + 1e-12);
  EXPECT_GE(s.e2e.p50, s.ttft.p50);
}
}  // namespace

TEST(Simulator, DeterministicForASeed) {
  const auto a = simulate(model("llama3-8b"), hw("h100"), poisson(10, 2000, 1));
  const auto b = simulate(model("llama3-8b"), hw("h100"), poisson(10, 2000, 1));
  const auto c = simulate(model("llama3-8b"), hw("h100"), poisson(10, 2000, 2));
  EXPECT_EQ(a.ttft.p99, b.ttft.p99);
  EXPECT_EQ(a.e2e.p50, b.e2e.p50);
  EXPECT_EQ(a.iterations, b.iterations);
  EXPECT_NE(a.e2e.p50, c.e2e.p50);
}

TEST(Simulator, ConservationAndOrdering) {
  const auto s = simulate(model("llama3-8b"), hw("h100"), poisson(20, 3000));
  check_invariants(s);
  EXPECT_EQ(s.arrived, 3000);
  EXPECT_EQ(s.completed, 3000);
  EXPECT_EQ(s.rejected, 0);
}

TEST(Simulator, LatencyGrowsWithLoad) {
  const auto curve = sweep_rates(model("llama3-8b"), hw("h100"), poisson(1, 2000), {2, 20, 60});
  ASSERT_EQ(curve.size(), 3u);
  for (const auto& s : curve) check_invariants(s);
  EXPECT_LT(curve[0].e2e.p99, curve[2].e2e.p99);
  EXPECT_LE(curve[0].ttft.p50, curve[1].ttft.p50);
  EXPECT_LE(curve[1].ttft.p50, curve[2].ttft.p50);
  EXPECT_LT(curve[0].mean_batch, curve[2].mean_batch);
  // Throughput follows the offered load while the server keeps up.
  EXPECT_NEAR(curve[0].throughput_rps, 2, 0.3);
}

TEST(Simulator, SingleRequestReplaysTheEngine) {
  // One request alone: TTFT = one prefill step, then one decode step per token, each timed by
  // the engine at the context rounded up to the simulator's 64-token bucket, each after the
  // serving runtime's host work for its iteration (20 calls at the H100's calibrated 25.03 us).
  SimulationRequest r;
  r.trace = {{Seconds(0.0), 512, 8}};
  const auto s = simulate(model("llama3-8b"), hw("h100"), r);
  const ServingDeployment d = make_deployment(model("llama3-8b"), hw("h100"), 1);
  const double host = 20 * 25.03e-6;
  const double ttft = time_step(d, Phase::Prefill, 1, 512, 0).latency.si() + host;
  double e2e = ttft;
  for (int g = 1; g < 8; ++g) {
    const int ctx = (512 + g + 63) / 64 * 64;
    e2e += time_step(d, Phase::Decode, 1, 1, ctx).latency.si() + host;
  }
  EXPECT_DOUBLE_EQ(s.ttft.p50, ttft);
  EXPECT_NEAR(s.e2e.p50, e2e, 1e-12);
  EXPECT_NEAR(s.tpot.p50, (e2e - ttft) / 7, 1e-12);  // MLPerf's TPOT: decode time / (output - 1)
  EXPECT_EQ(s.completed, 1);
}

// Per request e2e = TTFT + (output - 1) x TPOT; with every output the same length the means obey it
// too, under any load. A one-token request has no TPOT and is left out of it.
TEST(Simulator, TpotIsEachRequestsDecodeTimePerLaterToken) {
  SimulationRequest r = poisson(30, 800);
  r.length_dist = LengthDist::Fixed;
  const auto s = simulate(model("llama3-8b"), hw("h100"), r);
  check_invariants(s);
  EXPECT_NEAR(s.e2e.mean, s.ttft.mean + (r.output_len - 1) * s.tpot.mean, 1e-9 * s.e2e.mean);
  EXPECT_GT(s.tpot.mean, 0);

  SimulationRequest single;
  single.trace = {{Seconds(0.0), 128, 1}};
  const auto one = simulate(model("llama3-8b"), hw("h100"), single);
  EXPECT_EQ(one.tpot.p50, 0);
  EXPECT_EQ(one.tpot.mean, 0);
}

// Energy of a single request, by hand: each step at its engine profile's average power over its
// time, and the wait before the request arrives at the idle floor.
TEST(Simulator, EnergyIsEachStepAtItsPowerAndWaitsAtTheFloor) {
  SimulationRequest r;
  r.trace = {{Seconds(0.5), 512, 8}};
  const auto s = simulate(model("llama3-8b"), hw("h100"), r);
  const ServingDeployment d = make_deployment(model("llama3-8b"), hw("h100"), 1);
  // Each iteration's host work (20 calls x 25.03 us) passes at the idle floor too.
  const double host = 20 * 25.03e-6;
  const auto energy = [&](const StepTime& st) {
    return (st.profile.average_power() * st.latency).si() + host * static_power(hw("h100")).si();
  };
  double joules = 0.5 * static_power(hw("h100")).si() + energy(time_step(d, Phase::Prefill, 1, 512, 0));
  for (int g = 1; g < 8; ++g) joules += energy(time_step(d, Phase::Decode, 1, 1, (512 + g + 63) / 64 * 64));
  EXPECT_NEAR(s.energy.si(), joules, 1e-9 * joules);
  EXPECT_NEAR(s.average_power_per_gpu.si(), joules / s.duration.si(), 1e-9 * joules / s.duration.si());
  EXPECT_NEAR(s.energy_per_token.si(), joules / 8, 1e-9 * joules);
}

// Under load the GPUs idle less and fuse prefill chunks into decode steps: more watts per GPU, fewer
// joules per token; never above the power limit.
TEST(Simulator, LoadRaisesPowerAndLowersEnergyPerToken) {
  SimulationRequest light = poisson(0.5, 200), heavy = poisson(200, 200);
  light.chunked_prefill = heavy.chunked_prefill = true;
  const auto a = simulate(model("llama3-8b"), hw("h100"), light);
  const auto b = simulate(model("llama3-8b"), hw("h100"), heavy);
  EXPECT_GT(b.average_power_per_gpu.si(), a.average_power_per_gpu.si());
  EXPECT_LT(b.energy_per_token.si(), a.energy_per_token.si());
  for (const auto* x : {&a, &b}) {
    EXPECT_GE(x->average_power_per_gpu.si(), static_power(hw("h100")).si());
    EXPECT_LE(x->average_power_per_gpu.si(), 700.0);
  }
}

// The steady state as ML.ENERGY cuts it: requests sent at once, from max_batch first tokens to all
// but max_batch + 1 finished. In between the batch is always full, and the window's tokens, time and
// energy are parts of the run's.
TEST(Simulator, SteadyStateIsTheFullBatchBetweenTheRamps) {
  SimulationRequest r = poisson(1e6, 400);
  r.max_batch = 32;
  r.length_dist = LengthDist::Fixed;
  r.chunked_prefill = true;
  const auto s = simulate(model("llama3-8b"), hw("h100"), r);
  ASSERT_TRUE(s.steady_state.has_value());
  const SteadyState& w = *s.steady_state;
  EXPECT_GT(w.start.si(), 0);
  EXPECT_LT(w.end.si(), s.duration.si());
  EXPECT_NEAR(w.mean_batch, 32, 1e-9);
  EXPECT_GT(w.tokens_per_s, s.tokens_per_s);  // the ramps run below a full batch
  EXPECT_LE(w.average_power_per_gpu.si(), 700.0);
  EXPECT_NEAR(w.energy_per_token.si() * w.tokens_per_s, w.average_power_per_gpu.si(), 1e-9 * 700);
  // Too few requests to leave a window between the ramps: none is reported.
  r.requests = 33;
  EXPECT_FALSE(simulate(model("llama3-8b"), hw("h100"), r).steady_state.has_value());
}

TEST(Simulator, PreemptionUnderMemoryPressureKeepsEveryRequest) {
  SimulationRequest r = poisson(200, 400);
  r.prompt_len = 1024;
  r.output_len = 512;
  r.memory_utilization = 0.25;  // 20 GB: ~4 GB of KV after the 16 GB of weights
  const auto s = simulate(model("llama3-8b"), hw("h100"), r);
  EXPECT_GT(s.preemptions, 0);
  EXPECT_EQ(s.completed + s.rejected, 400);
  check_invariants(s);
}

TEST(Simulator, ChunkedPrefill) {
  SimulationRequest r = poisson(20, 2000);
  r.chunked_prefill = true;
  r.max_batched_tokens = 512;
  const auto s = simulate(model("llama3-8b"), hw("h100"), r);
  EXPECT_EQ(s.completed, 2000);
  check_invariants(s);
}

// Without chunked prefill one iteration prefills a whole prompt, so the token budget holds the
// longest one: by default it is raised to it (as vLLM raises max_num_batched_tokens to
// max_model_len); a budget given below it is refused; chunked prefill takes any budget.
TEST(Simulator, PrefillBudgetHoldsTheLongestPromptWithoutChunking) {
  SimulationRequest r;
  r.trace = {{Seconds(0.0), 100, 10}, {Seconds(0.1), 3000, 10}, {Seconds(0.2), 100, 10}};
  r.max_batched_tokens = 2048;
  EXPECT_THROW(simulate(model("llama3-8b"), hw("h100"), r), BadInput);
  r.max_batched_tokens = 3000;
  EXPECT_EQ(simulate(model("llama3-8b"), hw("h100"), r).completed, 3);
  r.max_batched_tokens = 2048;
  r.chunked_prefill = true;
  EXPECT_EQ(simulate(model("llama3-8b"), hw("h100"), r).completed, 3);
  SimulationRequest defaults;
  defaults.trace = {{Seconds(0.0), 8100, 10}};  // beyond the 8192-token chunked default, within the window
  EXPECT_EQ(simulate(model("llama3-8b"), hw("h100"), defaults).completed, 1);
}

// A request occupies prompt + output - 1 positions (the last token is never fed back), the rule
// `serve` uses: gpt2's 1024-token window holds 512 + 513.
TEST(Simulator, WindowRuleMatchesServe) {
  SimulationRequest r = poisson(1, 10);
  r.length_dist = LengthDist::Fixed;
  r.prompt_len = 512;
  r.output_len = 513;
  EXPECT_NO_THROW(simulate(model("gpt2"), hw("h100"), r));
  r.output_len = 514;
  EXPECT_THROW(simulate(model("gpt2"), hw("h100"), r), BadInput);
}

TEST(Simulator, RejectsRequestsThatCanNeverFit) {
  SimulationRequest r;
  r.trace = {{Seconds(0.0), 100, 10}, {Seconds(0.1), 9000, 10}, {Seconds(0.2), 100, 10}};  // 9010 > llama3-8b's 8192
  const auto s = simulate(model("llama3-8b"), hw("h100"), r);
  EXPECT_EQ(s.rejected, 1);
  EXPECT_EQ(s.completed, 2);
  check_invariants(s);
}

TEST(Simulator, AllRejectedIsAnErrorNotZeroLatencies) {
  // Zero completions have no latency percentiles: the error says how many overran the window.
  SimulationRequest r;
  r.trace = {{Seconds(0.0), 9000, 10}, {Seconds(0.1), 8000, 500}};  // both past llama3-8b's 8192 tokens
  try {
    simulate(model("llama3-8b"), hw("h100"), r);
    ADD_FAILURE() << "expected BadInput";
  } catch (const BadInput& e) {
    EXPECT_NE(std::string(e.what()).find("2 of 2 need more than llama3-8b's 8192-token window"), std::string::npos)
        << e.what();
  }
}

TEST(Simulator, HundredThousandRequestsAllComplete) {
  // Its speed is measured by BM_Simulate100kRequests (bench/bench_engine.cpp), not asserted here.
  const auto s = simulate(model("llama3-8b"), hw("h100"), poisson(20, 100000));
  EXPECT_EQ(s.completed, 100000);
  check_invariants(s);
}

// MLPerf Inference Server's question. The search's answer meets both p99 SLOs, a rate 1% above it
// does not (checked here by simulating both independently), and the answer moves the right way:
// a looser TTFT SLO or a faster device never lowers it.
TEST(Simulator, MaxRateMeetsTheSlosAndOnePercentMoreDoesNot) {
  const SimulationRequest r = with_slos(3000);
  const MaxRateSearch s = find_max_rate(model("llama3-8b"), hw("h100"), r);
  ASSERT_GT(s.max_rate, 0);
  EXPECT_LE(s.failing_rate / s.max_rate, 1.01 + 1e-12);
  ASSERT_GE(s.requests, r.requests);
  auto at = [&](double rate) {
    SimulationRequest q = r;
    q.rate = rate;
    q.requests = s.requests;
    return simulate(model("llama3-8b"), hw("h100"), q);
  };
  const SimulationResult ok = at(s.max_rate), over = at(s.failing_rate);
  EXPECT_LE(ok.ttft.p99, 1.0);
  EXPECT_LE(ok.tpot.p99, 0.060);
  EXPECT_TRUE(over.ttft.p99 > 1.0 || over.tpot.p99 > 0.060);
  EXPECT_EQ(s.at_max.ttft.p99, ok.ttft.p99);  // the reported run is the one at max_rate
  EXPECT_NE(s.at_max.trace.front().find("Max rate under the SLOs"), std::string::npos);

  SimulationRequest looser = r;
  looser.ttft_slo = seconds(4.0);
  EXPECT_GE(find_max_rate(model("llama3-8b"), hw("h100"), looser).max_rate, s.max_rate * (1 - 0.01));
  EXPECT_GE(find_max_rate(model("llama3-8b"), hw("h200"), r).max_rate, s.max_rate * (1 - 0.01));
}

// A short run hides a backlog growing above capacity (the last arrivals have not yet waited past the
// SLO), so the search lengthens its runs until the answer holds on one twice as long: started from
// 200 requests it lands where a search started from its final length does.
TEST(Simulator, MaxRateDoesNotDependOnTheStartingRunLength) {
  // The search's own behaviour, on the engine's forward passes alone (no per-iteration host work):
  // with it the 60 ms ITL SLO binds at a load where 400- and 800-request Poisson runs differ by 3%.
  SimulationRequest shortr = with_slos(200);
  shortr.overrides.step_host = Seconds(0);
  const MaxRateSearch a = find_max_rate(model("llama3-8b"), hw("h100"), shortr);
  EXPECT_GT(a.requests, 200);
  SimulationRequest longr = shortr;
  longr.requests = a.requests;
  const MaxRateSearch b = find_max_rate(model("llama3-8b"), hw("h100"), longr);
  EXPECT_NEAR(a.max_rate / b.max_rate, 1.0, 0.02);
  EXPECT_NE(a.at_max.trace.front().find("Confirmed on a run twice as long"), std::string::npos);

  // Each run on the path is reported once, in order (the failed confirmation that a longer search
  // starts from included once), each at the length it ran with; the last is the confirmation of the
  // answer, on a run twice as long, and it meets the SLOs. A search counts the same runs reported or not.
  std::vector<SearchStatus> steps;
  SimulationRequest watched = shortr;
  watched.search_progress = [&](const SearchStatus& s) { steps.push_back(s); };
  const MaxRateSearch w = find_max_rate(model("llama3-8b"), hw("h100"), watched);
  ASSERT_EQ(static_cast<int>(steps.size()), w.simulations);
  EXPECT_EQ(w.simulations, a.simulations);
  for (size_t i = 0; i < steps.size(); ++i) EXPECT_EQ(steps[i].simulations, static_cast<int>(i) + 1);
  for (size_t i = 1; i < steps.size(); ++i) EXPECT_GE(steps[i].requests, steps[i - 1].requests);
  EXPECT_EQ(steps.front().requests, 200);
  EXPECT_EQ(steps.back().requests, 2 * w.requests);
  EXPECT_EQ(steps.back().rate, w.max_rate);
  EXPECT_TRUE(steps.back().meets);
}

// The search runs the rates it may try next on several threads; what it answers, and the path it
// reports, are those of the one-thread search, whatever the thread count.
TEST(Simulator, MaxRateIsTheSameOnOneThreadAndOnMany) {
  SimulationRequest one = with_slos(1500), many = with_slos(1500);
  one.search_threads = 1;
  many.search_threads = 7;
  const MaxRateSearch a = find_max_rate(model("llama3-8b"), hw("h100"), one);
  const MaxRateSearch b = find_max_rate(model("llama3-8b"), hw("h100"), many);
  EXPECT_EQ(a.max_rate, b.max_rate);
  EXPECT_EQ(a.failing_rate, b.failing_rate);
  EXPECT_EQ(a.requests, b.requests);
  EXPECT_EQ(a.simulations, b.simulations);
  EXPECT_EQ(a.at_max.ttft.p99, b.at_max.ttft.p99);
  EXPECT_EQ(a.at_max.trace, b.at_max.trace);
}

// A benchmark's length cap (MLPerf Llama-2-70B: 1024 output tokens) clips the exponential draws,
// whose scale is raised so that the clipped mean is still the asked one: s (1 - e^(-c/s)) = mean,
// and 200,000 clipped draws average it.
TEST(Simulator, CappedLengthsKeepTheirMean) {
  const double s = exponential_scale_for_capped_mean(290, 1024);
  EXPECT_GT(s, 290);
  EXPECT_NEAR(s * (1 - std::exp(-1024 / s)), 290, 1e-6);
  std::mt19937_64 gen(3);
  double sum = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) sum += std::min(exponential_from_uniform(uniform_from_bits(gen()), s), 1024.0);
  EXPECT_NEAR(sum / n, 290, 0.01 * 290);
  EXPECT_DOUBLE_EQ(exponential_scale_for_capped_mean(290, 0), 290);  // no cap
  // A capped workload simulates (every draw within its caps) as an uncapped one does.
  SimulationRequest r = poisson(5, 400);
  r.max_prompt_len = 1024;
  r.max_output_len = 300;
  check_invariants(simulate(model("llama3-8b"), hw("h100"), r));
}

TEST(SimulatorErrors, MaxRateSearchThatNoRateCanMeet) {
  SimulationRequest r = poisson(1, 200);
  r.prompt_len = 4000;
  r.ttft_slo = milliseconds(1);  // one 4000-token prefill alone takes longer
  try {
    find_max_rate(model("llama3-8b"), hw("h100"), r);
    ADD_FAILURE() << "expected BadInput";
  } catch (const BadInput& e) {
    EXPECT_NE(std::string(e.what()).find("no arrival rate meets the SLOs"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--ttft-slo-ms"), std::string::npos) << e.what();
  }
  SimulationRequest traced;
  traced.trace = {{Seconds(0.0), 128, 8}};
  EXPECT_THROW(find_max_rate(model("llama3-8b"), hw("h100"), traced), BadInput);
}

TEST(SimulatorErrors, TraceRowsAndFields) {
  auto expect_bad = [](const std::string& text, const char* a, const char* b) {
    try {
      parse_trace_csv(text, "t.csv");
      ADD_FAILURE() << "expected BadInput";
    } catch (const BadInput& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find(a), std::string::npos) << m;
      EXPECT_NE(m.find(b), std::string::npos) << m;
    }
  };
  const std::string h = "arrival_s,prompt_tokens,output_tokens\n";
  expect_bad("time,prompt,output\n0,1,1\n", "row 1", "header");
  expect_bad(h + "0,10,5\n0.5,-3,5\n", "row 3", "prompt_tokens");
  expect_bad(h + "0,10,5\n0.5,10,abc\n", "row 3", "output_tokens");
  expect_bad(h + "1.0,10,5\n0.5,10,5\n", "row 3", "arrival_s");
  expect_bad(h + "x,10,5\n", "row 2", "arrival_s");
  expect_bad(h + "0,10\n", "row 2", "3 fields");
  expect_bad("", "empty", "header");
  expect_bad(h, "no requests", "t.csv");
  const auto ok = parse_trace_csv(h + "0,10,5\r\n0.5, 20 ,6\n\n");
  ASSERT_EQ(ok.size(), 2u);
  EXPECT_EQ(ok[1].prompt_tokens, 20);
}

TEST(SimulatorErrors, BadWorkloads) {
  auto expect_bad = [](SimulationRequest r, const char* needle) {
    try {
      simulate(model("llama3-8b"), hw("h100"), r);
      ADD_FAILURE() << "expected BadInput mentioning " << needle;
    } catch (const BadInput& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_bad(poisson(0, 10), "--rate");
  SimulationRequest capped = poisson(1, 10);
  capped.max_output_len = 64;  // the mean (64) cannot come from draws capped at 64
  expect_bad(capped, "--max-output-len 64 leaves no room for --output-len 64");
  capped.max_output_len = -1;
  expect_bad(capped, "--max-output-len must be >= 1");
  expect_bad(poisson(-1, 10), "--rate");
  SimulationRequest r = poisson(1, 10);
  r.prompt_len = -5;
  expect_bad(r, "--prompt-len");
  r = poisson(1, 10);
  r.output_len = 0;
  expect_bad(r, "--output-len");
  r = poisson(1, 0);
  expect_bad(r, "--requests");
  r = poisson(1, 10);
  r.page_size = 0;
  expect_bad(r, "--page-size");
  // An SLO is a finite time: an infinite one would print as "inf" and score every request good.
  r = poisson(1, 10);
  r.ttft_slo = Seconds(std::numeric_limits<double>::infinity());
  expect_bad(r, "--ttft-slo-ms must be a finite time");
  r = poisson(1, 10);
  r.itl_slo = Seconds(0);
  expect_bad(r, "--itl-slo-ms must be a finite time");
  EXPECT_THROW(simulate(model("llama3-70b"), hw("h100"), [] {
                 SimulationRequest q = poisson(1, 10);
                 q.tp = 1;
                 return q;
               }()),
               DoesNotFit);
}

RC_GTEST_PROP(SimulatorProps, InvariantsHoldForRandomWorkloads, ()) {
  SimulationRequest r;
  r.rate = *rc::gen::inRange(1, 200);
  r.requests = *rc::gen::inRange(1, 300);
  r.seed = *rc::gen::inRange(0, 1000);
  r.prompt_len = *rc::gen::inRange(1, 2048);
  r.output_len = *rc::gen::inRange(1, 512);
  r.chunked_prefill = *rc::gen::arbitrary<bool>();
  r.max_batch = *rc::gen::inRange(1, 300);
  const auto s = simulate(Catalog::builtin().model("llama3-8b"), Catalog::builtin().hardware("h100"), r);
  RC_ASSERT(s.arrived == s.completed + s.in_flight + s.rejected);
  RC_ASSERT(s.completed + s.rejected == r.requests);
  RC_ASSERT(s.ttft.p50 <= s.ttft.p99);
  RC_ASSERT(s.e2e.p50 <= s.e2e.p99);
  RC_ASSERT(s.goodput_rps <= s.throughput_rps + 1e-12);
}

// Exponential lengths near the model's window are cut there: the trace says the realized means
// fell short of the requested ones (gpt2, 1024 tokens: 900 + 100 asked), and says nothing when
// they did not.
TEST(Simulator, ClippedLengthsAreReported) {
  SimulationRequest r = poisson(2, 500);
  r.prompt_len = 900;
  r.output_len = 100;
  const auto mentions = [](const SimulationResult& s) {
    for (const auto& line : s.trace)
      if (line.find("requested means") != std::string::npos) return true;
    return false;
  };
  EXPECT_TRUE(mentions(simulate(model("gpt2"), hw("h100"), r)));
  r.prompt_len = 64;
  r.output_len = 16;
  EXPECT_FALSE(mentions(simulate(model("gpt2"), hw("h100"), r)));
}
