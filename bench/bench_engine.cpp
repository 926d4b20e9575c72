// Engine speed (Google Benchmark). Not a test: run `build/bench/mlsysim_bench` and compare ratios.
//   BM_DecodeSolve: one decode step of a 32-layer LLM (Llama-3 8B on H100) -- target well < 1 us.
#include <benchmark/benchmark.h>

#include <atomic>
#include <thread>
#include <vector>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/catalog/fleet.hpp"
#include "mlsysim/solvers/engine.hpp"
#include "mlsysim/solvers/parallelism_optimizer.hpp"
#include "mlsysim/solvers/simulator.hpp"

using namespace mlsysim;

namespace {
const ModelSpec& model(const char* id) { return Catalog::builtin().model(id); }
const HardwareSpec& hw(const char* id) { return Catalog::builtin().hardware(id); }
}  // namespace

static void BM_DecodeSolve(benchmark::State& state) {
  const auto& m = model("llama3-8b");
  const auto& h = hw("h100");
  SolveRequest r;
  r.batch = 1;
  r.context = 1024;
  for (auto _ : state) {
    Profile p = solve(m, h, r);
    benchmark::DoNotOptimize(p.latency);
    r.batch = r.batch % 64 + 1;  // vary the input so nothing is hoisted
  }
}
BENCHMARK(BM_DecodeSolve);

// Eager PyTorch: the operators also run through the launch queue (physics/launch_queue.hpp).
static void BM_DecodeSolveEager(benchmark::State& state) {
  const auto& m = model("llama3-8b");
  const auto& h = hw("h100");
  SolveRequest r;
  r.context = 1024;
  r.runtime = Runtime::Eager;
  for (auto _ : state) {
    Profile p = solve(m, h, r);
    benchmark::DoNotOptimize(p.latency);
    r.batch = r.batch % 64 + 1;
  }
}
BENCHMARK(BM_DecodeSolveEager);

// The same without the per-operator breakdown (what sweeps use).
static void BM_DecodeSolveNoBreakdown(benchmark::State& state) {
  const auto& m = model("llama3-8b");
  const auto& h = hw("h100");
  SolveRequest r;
  r.context = 1024;
  r.keep_operators = false;
  for (auto _ : state) {
    benchmark::DoNotOptimize(solve(m, h, r).latency);
    r.batch = r.batch % 64 + 1;
  }
}
BENCHMARK(BM_DecodeSolveNoBreakdown);

static void BM_PrefillSolve_Llama3_70B(benchmark::State& state) {
  const auto& m = model("llama3-70b");
  const auto& h = hw("h200");
  SolveRequest r;
  r.phase = Phase::Prefill;
  r.seq_len = 2048;
  for (auto _ : state) benchmark::DoNotOptimize(solve(m, h, r).latency);
}
BENCHMARK(BM_PrefillSolve_Llama3_70B);

static void BM_TrainSolve_DeepSeekV3(benchmark::State& state) {
  const auto& m = model("deepseek-v3");
  const auto& h = hw("b200");
  SolveRequest r;
  r.phase = Phase::Train;
  r.seq_len = 4096;
  for (auto _ : state) benchmark::DoNotOptimize(solve(m, h, r).latency);
}
BENCHMARK(BM_TrainSolve_DeepSeekV3);

static void solve_resnet50(benchmark::State& state, const char* device, int batch,
                           Runtime runtime = Runtime::Graph) {
  const auto& m = model("resnet50");
  const auto& h = hw(device);
  SolveRequest r;
  r.batch = batch;
  r.runtime = runtime;
  for (auto _ : state) benchmark::DoNotOptimize(solve(m, h, r).latency);
}

static void BM_InferenceSolve_ResNet50(benchmark::State& state) { solve_resnet50(state, "a100-80gb", 256); }
BENCHMARK(BM_InferenceSolve_ResNet50);

// Batch 1 on H100: every activation and most weights fit the 50 MB L2, so the cache-reuse history
// (physics/cache_reuse.hpp) holds the whole network.
static void BM_InferenceSolve_ResNet50_Batch1(benchmark::State& state) { solve_resnet50(state, "h100", 1); }
BENCHMARK(BM_InferenceSolve_ResNet50_Batch1);

// Eager PyTorch: unfused, ~180 operators (batch norm and activation after every conv), each through
// the launch queue (physics/launch_queue.hpp) one instance at a time.
static void BM_InferenceSolve_ResNet50_Eager(benchmark::State& state) {
  solve_resnet50(state, "h100", 1, Runtime::Eager);
}
BENCHMARK(BM_InferenceSolve_ResNet50_Eager);

// A sweep over every hardware x batch x context on all cores: configurations per second.
static void BM_ParallelSweep(benchmark::State& state) {
  const auto& m = model("llama3-8b");
  const auto& devices = Catalog::builtin().all_hardware();
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  const int per_thread = 20000;
  for (auto _ : state) {
    std::atomic<double> sink{0};
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        double local = 0;
        SolveRequest r;
        for (int i = 0; i < per_thread; ++i) {
          const auto& h = devices[(i + t) % devices.size()];
          r.batch = 1 + i % 128;
          r.context = (i * 37) % 4096;
          try {
            local += solve(m, h, r).latency.si();
          } catch (...) {  // devices without a usable precision are skipped
          }
        }
        sink = sink + local;
      });
    for (auto& th : pool) th.join();
    benchmark::DoNotOptimize(sink.load());
  }
  state.SetItemsProcessed(state.iterations() * threads * per_thread);
}
BENCHMARK(BM_ParallelSweep)->Unit(benchmark::kMillisecond)->UseRealTime();

// The TP x PP x DP (x CP x EP) search for Llama-3-70B on 64 H100s (thousands of layouts).
static void BM_ParallelismSearch_Llama3_70B_64xH100(benchmark::State& state) {
  OptimizerRequest q;
  q.gpus = 64;
  q.global_batch = 512;
  q.seq_len = 4096;
  const Cluster cl = FleetCatalog::builtin().standard_cluster("h100", 64);
  for (auto _ : state) {
    const OptimizerResult r = optimize_parallelism(model("llama3-70b"), hw("h100"), cl, q);
    benchmark::DoNotOptimize(r.searched);
  }
}
BENCHMARK(BM_ParallelismSearch_Llama3_70B_64xH100)->Unit(benchmark::kMillisecond);

// Discrete-event serving simulation: 100,000 Poisson requests (256-token prompts, 64 new tokens).
static void BM_Simulate100kRequests(benchmark::State& state) {
  SimulationRequest r;
  r.rate = 20;
  r.requests = 100000;
  r.seed = 7;
  r.prompt_len = 256;
  r.output_len = 64;
  for (auto _ : state) {
    const SimulationResult s = simulate(model("llama3-8b"), hw("h100"), r);
    benchmark::DoNotOptimize(s.completed);
  }
}
BENCHMARK(BM_Simulate100kRequests)->Unit(benchmark::kMillisecond);

// MLPerf-Server-like capacity search: Llama-2-70B FP8 on two H100s, 24,576 requests per run, the
// highest Poisson rate within p99 TTFT <= 2 s and p99 TPOT <= 200 ms (a dozen or more runs at up to
// 1,000 running sequences, then one twice as long).
static void BM_FindMaxRate_Llama2_70B_MLPerfServer(benchmark::State& state) {
  SimulationRequest r;
  r.requests = 24576;
  r.prompt_len = 222;
  r.output_len = 290;
  r.precision = Precision::FP8;
  r.kv_precision = Precision::FP8;
  r.tp = 2;
  r.max_batch = 1024;
  r.max_batched_tokens = 16384;
  r.chunked_prefill = true;
  r.memory_utilization = 0.95;
  r.ttft_slo = seconds(2.0);
  r.itl_slo = milliseconds(200);
  for (auto _ : state) {
    const MaxRateSearch s = find_max_rate(model("llama2-70b"), hw("h100"), r);
    benchmark::DoNotOptimize(s.max_rate);
  }
}
BENCHMARK(BM_FindMaxRate_Llama2_70B_MLPerfServer)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
