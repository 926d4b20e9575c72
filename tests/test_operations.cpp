// Running a job for weeks: failures, checkpoint/restart, energy, emissions and money
// (physics/operations.hpp, solvers/run_outlook.hpp), against the tutorial's Fragility Wall table,
// hand-computed formulas and the limits the formulas must reach.
#include <gtest/gtest.h>

#include <cmath>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/catalog/fleet.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/physics/operations.hpp"
#include "mlsysim/solvers/run_outlook.hpp"

using namespace mlsysim;
using units::hours;
using units::seconds;

TEST(Operations, TutorialFragilityWallTable) {
  // Slide 4.10: 50,000-hour GPUs; cluster MTBF = MTBF / N: 8 GPUs 260 days, 256 8 days, 1,024 2 days,
  // 8,192 6 hours, 100K 30 minutes.
  const Seconds gpu = hours(50000);
  EXPECT_EQ(std::round(cluster_mtbf(gpu, 8).si() / 86400), 260);
  EXPECT_EQ(std::round(cluster_mtbf(gpu, 256).si() / 86400), 8);
  EXPECT_EQ(std::round(cluster_mtbf(gpu, 1024).si() / 86400), 2);
  EXPECT_EQ(std::round(cluster_mtbf(gpu, 8192).si() / 3600), 6);
  EXPECT_EQ(std::round(cluster_mtbf(gpu, 100000).si() / 60), 30);
  // The speaker note: 10,000 GPUs of 50,000 hours fail every 5 hours.
  EXPECT_DOUBLE_EQ(cluster_mtbf(gpu, 10000).si(), hours(5).si());
}

TEST(Operations, DefaultsComeFromTheirSources) {
  // Llama 3: 419 unexpected interruptions in 54 days on 16,384 GPUs -> about one every 3.09 hours.
  EXPECT_NEAR(cluster_mtbf(kLlama3GpuMtbf, 16384).si() / 3600, 54.0 * 24 / 419, 1e-9);
  // EIA 2022: 1.65 billion t over 4.23 trillion kWh.
  EXPECT_NEAR(kUsGridIntensity.si() * 3.6e6, 0.390, 5e-4);
}

TEST(Operations, FailureProbabilityIsExponential) {
  EXPECT_NEAR(failure_probability(hours(1), hours(1)), 1 - std::exp(-1.0), 1e-12);
  EXPECT_NEAR(failure_probability(hours(0.01), hours(100)), 1e-4, 1e-8);  // ~ T/M when small
  EXPECT_LT(failure_probability(hours(1), hours(100)), failure_probability(hours(2), hours(100)));
}

TEST(Operations, CheckpointIntervalsByHand) {
  // delta = 60 s, M = 1 h: Young sqrt(2 x 60 x 3600) = 657.27 s; Daly with x = 60 / 7200:
  // 657.27 (1 + sqrt(x)/3 + x/9) - 60.
  const double young = std::sqrt(2.0 * 60 * 3600), x = 60.0 / 7200;
  EXPECT_NEAR(young_interval(seconds(60), hours(1)).si(), young, 1e-9);
  EXPECT_NEAR(daly_interval(seconds(60), hours(1)).si(), young * (1 + std::sqrt(x) / 3 + x / 9) - 60, 1e-9);
  // A checkpoint costing twice the MTBF or more: checkpoint every MTBF (Daly's cut-off).
  EXPECT_DOUBLE_EQ(daly_interval(hours(3), hours(1)).si(), hours(1).si());
}

TEST(Operations, WallTimeReachesItsLimitsAndDalyIsNearTheMinimum) {
  const Seconds work = hours(1000), delta = seconds(120), restart = seconds(600), m = hours(3);
  // No failures (M -> infinity): only the checkpoint writes add, T (1 + delta / tau).
  const Seconds tau = units::seconds(1800);
  EXPECT_NEAR(daly_wall_time(work, tau, delta, restart, hours(1e12)).si(), work.si() * (1 + 120.0 / 1800), 1.0);
  // With failures it is always longer than the work, and a longer restart never helps.
  const Seconds wall = daly_wall_time(work, tau, delta, restart, m);
  EXPECT_GT(wall.si(), work.si() * (1 + 120.0 / 1800));
  EXPECT_LT(wall.si(), daly_wall_time(work, tau, delta, seconds(1200), m).si());
  // Daly's interval is within 0.1% of the best interval a fine search finds, and no worse than
  // Young's first-order one.
  double best = INFINITY;
  for (double t = 60; t < 20000; t *= 1.001) best = std::min(best, daly_wall_time(work, seconds(t), delta, restart, m).si());
  const double at_daly = daly_wall_time(work, daly_interval(delta, m), delta, restart, m).si();
  EXPECT_LT(at_daly, best * 1.001);
  EXPECT_LE(at_daly, daly_wall_time(work, young_interval(delta, m), delta, restart, m).si());
}

TEST(Operations, EnergyEmissionsByHand) {
  // 1 kWh of IT energy at PUE 1.5 is 1.5 kWh; at 0.4 kg/kWh, 0.6 kg.
  const Joules it(3.6e6);
  EXPECT_DOUBLE_EQ(facility_energy(it, 1.5).si(), 5.4e6);
  EXPECT_NEAR(operational_emissions(facility_energy(it, 1.5), KgCO2ePerJoule(0.4 / 3.6e6)).si(), 0.6, 1e-12);
}

namespace {
TrainingResult train_8b(int gpus) {
  TrainingRequest r;
  r.gpus = gpus;
  r.global_batch = 4096;
  r.seq_len = 4096;
  return train(Catalog::builtin().model("llama3-8b"), Catalog::builtin().hardware("h100"),
               FleetCatalog::builtin().standard_cluster("h100", gpus), r);
}
}  // namespace

TEST(Operations, RunOutlookAddsUp) {
  const TrainingResult t = train_8b(1024);
  RunOptions o;
  const RunOutlook r = run_outlook(t, o);
  EXPECT_DOUBLE_EQ(r.cluster_mtbf.si(), o.gpu_mtbf.si() / 1024);
  EXPECT_DOUBLE_EQ(r.checkpoint_bytes.si(), 14.0 * t.parameters);
  EXPECT_DOUBLE_EQ(r.checkpoint_cost.si(), 14.0 * t.parameters / 2e12);
  EXPECT_TRUE(r.interval_is_optimal);
  EXPECT_DOUBLE_EQ(r.checkpoint_interval.si(), daly_interval(r.checkpoint_cost, r.cluster_mtbf).si());
  EXPECT_GT(r.wall_time.si(), t.time_to_train.si());
  EXPECT_NEAR(r.goodput, t.time_to_train / r.wall_time, 1e-12);
  EXPECT_NEAR(r.expected_failures, (r.wall_time / r.cluster_mtbf).si(), 1e-9);
  EXPECT_NEAR(r.gpu_hours, 1024 * r.wall_time.si() / 3600, 1e-6);
  EXPECT_NEAR(r.cost.si(), r.gpu_hours * 55.04 / 8, 1e-6);  // AWS p5.48xlarge on-demand over 8 H100s
  EXPECT_NEAR(r.facility_energy.si(), t.gpu_power.si() * 1024 * r.wall_time.si() * kSurveyAveragePue, 1.0);
  EXPECT_NEAR(r.emissions.si(), r.facility_energy.si() * kUsGridIntensity.si(), 1e-6);
  // Power: between the idle floor and the TDP.
  EXPECT_GT(t.gpu_power.si(), static_power(Catalog::builtin().hardware("h100")).si() - 1e-9);
  EXPECT_LE(t.gpu_power.si(), 700.0);
  // A checkpoint interval far from the optimum costs goodput; more reliable GPUs gain it.
  RunOptions off = o;
  off.checkpoint_interval = r.checkpoint_interval * 10;
  EXPECT_LT(run_outlook(t, off).goodput, r.goodput);
  EXPECT_FALSE(run_outlook(t, off).interval_is_optimal);
  RunOptions sturdier = o;
  sturdier.gpu_mtbf = o.gpu_mtbf * 4;
  EXPECT_GT(run_outlook(t, sturdier).goodput, r.goodput);
}

TEST(Operations, MoreGpusFailMoreOften) {
  const RunOutlook small = run_outlook(train_8b(64), RunOptions{}), big = run_outlook(train_8b(4096), RunOptions{});
  EXPECT_GT(small.cluster_mtbf.si(), big.cluster_mtbf.si());
  EXPECT_GT(small.goodput, big.goodput);
}

TEST(Operations, BadRunOptionsSayTheRange) {
  const TrainingResult t = train_8b(64);
  RunOptions o;
  o.costs.pue = 0.9;
  try {
    (void)run_outlook(t, o);
    FAIL() << "expected BadInput";
  } catch (const BadInput& e) {
    EXPECT_NE(std::string(e.what()).find("--pue must be in [1, 3]"), std::string::npos) << e.what();
  }
  o = RunOptions{};
  o.gpu_mtbf = hours(0);
  EXPECT_THROW((void)run_outlook(t, o), BadInput);
  o = RunOptions{};
  o.checkpoint_bandwidth = BytesPerSecond(-1);
  EXPECT_THROW((void)run_outlook(t, o), BadInput);
  o = RunOptions{};
  o.restart = seconds(NAN);
  EXPECT_THROW((void)run_outlook(t, o), BadInput);
}

// Per generated token: the replica's GPUs at the engine's prefill power for the TTFT and its
// decode power for the generation; cost = GPUs x $/h for as long as 1M tokens take.
TEST(Operations, ServingCostAndEmissionsPerToken) {
  const ModelSpec& m = Catalog::builtin().model("llama3-8b");
  const HardwareSpec& h = Catalog::builtin().hardware("h100");
  ServingRequest q;
  q.seq_len = 1024;
  q.batch = 32;
  q.output_len = 256;
  const ServingResult s = serve(m, h, q);
  ASSERT_GT(s.energy_per_token.si(), 0.0);
  // Between static power and the TDP for the batch's whole latency, spread over its tokens.
  const double tokens = 32.0 * 256;
  EXPECT_LE(s.energy_per_token.si(), 700.0 * s.e2e_latency.si() / tokens);
  EXPECT_GE(s.energy_per_token.si(), static_power(h).si() * s.e2e_latency.si() / tokens * (1 - 1e-9));
  OperatingCosts c;
  c.pue = 1.2;
  c.grid_intensity = KgCO2ePerJoule(0.1 / 3.6e6);
  c.gpu_rate = units::usd_per_hour(2.0);
  const ServingOutlook o = serving_outlook(s, c);
  EXPECT_DOUBLE_EQ(o.facility_energy_per_token.si(), 1.2 * s.energy_per_token.si());
  EXPECT_NEAR(o.cost_per_million_tokens.si(), 2.0 * s.gpus * 1e6 / s.request_tokens_per_s / 3600, 1e-9);
  EXPECT_NEAR(o.emissions_per_million_tokens.si(), 1.2 * s.energy_per_token.si() * 1e6 * 0.1 / 3.6e6, 1e-12);
  // A bigger batch amortizes the weights: cheaper per token.
  q.batch = 64;
  EXPECT_LT(serving_outlook(serve(m, h, q), c).cost_per_million_tokens.si(), o.cost_per_million_tokens.si());
  // Disaggregated: the prefill GPUs at their price, the decode GPUs at theirs (the GPU-hours of
  // each pool for as long as a million tokens take); a single-pool replica ignores decode prices.
  ServingRequest split = q;
  split.decode_hardware = &Catalog::builtin().hardware("l40s");
  const ServingResult d = serve(m, h, split);
  ASSERT_TRUE(d.disaggregated);
  OperatingCosts decode = c;
  decode.gpu_rate = units::usd_per_hour(0.5);
  const double hours = 1e6 / d.request_tokens_per_s / 3600;
  EXPECT_NEAR(serving_outlook(d, c, &decode).cost_per_million_tokens.si(),
              (d.tp * 2.0 + d.decode_tp * 0.5) * hours, 1e-9);
  EXPECT_NEAR(serving_outlook(s, c, &decode).cost_per_million_tokens.si(), o.cost_per_million_tokens.si(), 1e-12);
  c.gpu_rate = units::usd_per_hour(0);
  EXPECT_THROW((void)serving_outlook(s, c), BadInput);
  // Nor a node's or a rack's price taken for one GPU's, nor a grid dirtier than coal.
  c.gpu_rate = units::usd_per_hour(5000);
  try {
    (void)serving_outlook(s, c);
    ADD_FAILURE() << "accepted $5000 per GPU-hour";
  } catch (const BadInput& e) {
    EXPECT_NE(std::string(e.what()).find("(0, 1000] dollars per GPU-hour"), std::string::npos) << e.what();
  }
  c.gpu_rate = units::usd_per_hour(2.0);
  c.grid_intensity = KgCO2ePerJoule(5.0 / 3.6e6);
  EXPECT_THROW((void)serving_outlook(s, c), BadInput);
}

// When failures outpace progress the run does not finish, and says what to change instead of
// printing an overflowed wall time.
TEST(Operations, ARunThatCannotFinishSaysWhy) {
  const TrainingResult t = train_8b(4096);
  RunOptions o;
  o.gpu_mtbf = hours(1);  // 4096 GPUs: a failure every 0.9 s
  o.restart = seconds(3600);
  const RunOutlook r = run_outlook(t, o);
  EXPECT_FALSE(r.finishes);
  EXPECT_LT(r.goodput, 0.01);
  EXPECT_NE(r.why_not.find("--restart-minutes"), std::string::npos) << r.why_not;
  // Checkpointing a thousand times less often than optimal at Llama 3's failure rate: the same.
  RunOptions sparse;
  sparse.checkpoint_interval = run_outlook(t, RunOptions{}).checkpoint_interval * 1e5;
  EXPECT_FALSE(run_outlook(t, sparse).finishes);
  EXPECT_TRUE(run_outlook(t, RunOptions{}).finishes);
  // Its trace derives no wall time, energy or cost (they would be inf), and says so.
  for (const std::string& line : r.trace) {
    EXPECT_EQ(line.find("inf"), std::string::npos) << line;
    EXPECT_EQ(line.find("nan"), std::string::npos) << line;
  }
  EXPECT_NE(r.trace.back().find("the job does not finish"), std::string::npos) << r.trace.back();
}

// Flags outside what any cluster has are refused with their range (not turned into inf days).
TEST(Operations, RunFlagsOutsideTheirRangeAreRefused) {
  const TrainingResult t = train_8b(64);
  RunOptions o;
  o.gpu_mtbf = hours(1e-300);
  EXPECT_THROW((void)run_outlook(t, o), BadInput);
  o = {};
  o.checkpoint_bandwidth = BytesPerSecond(1e-300);
  EXPECT_THROW((void)run_outlook(t, o), BadInput);
  o = {};
  o.gpu_mtbf = hours(1);  // the lowest accepted
  EXPECT_NO_THROW((void)run_outlook(t, o));
}
