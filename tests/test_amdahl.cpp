// Amdahl, Gustafson, stragglers and the performance-engineering lab's numbers.
#include <gtest/gtest.h>

#include "cli_run.hpp"

#include <array>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <sys/wait.h>

#include "mlsysim/errors.hpp"
#include "mlsysim/physics/scaling.hpp"
#include "mlsysim/solvers/amdahl.hpp"

using namespace mlsysim;

TEST(Amdahl, LabActIKernelAndAllReduce) {
  // 3x attention kernel on 12%: 1/(0.88 + 0.04) = 1.087 -> +8.7%.
  EXPECT_NEAR(amdahl_speedup(0.12, 3.0), 1.0 / 0.92, 1e-12);
  EXPECT_EQ(std::round(1000 * (amdahl_speedup(0.12, 3.0) - 1)) / 10, 8.7);
  // 2x AllReduce on 45%: 1/(0.55 + 0.225) = 1.290 -> +29%.
  EXPECT_EQ(std::round(100 * (amdahl_speedup(0.45, 2.0) - 1)), 29);
  // The ceiling of making the 12% free: 1/0.88 = +13.6%.
  EXPECT_EQ(std::round(1000 * (amdahl_limit(0.12) - 1)) / 10, 13.6);
}

TEST(Amdahl, LabActIIPipelineAndAllReduceRoi) {
  const std::vector<ProfileComponent> base{{"compute", 0.45, 1, 0}, {"allreduce", 0.30, 1, 0},
                                           {"pipeline_bubble", 0.15, 1, 0}, {"data_loading", 0.10, 1, 0}};
  // Micro-batches 4 -> 8 halve the bubble: 1/0.925 -> 35% x 1.0811 = 37.8% MFU at 0.5 weeks.
  auto p = base;
  p[2].speedup = 8.0 / 4.0;
  p[2].cost_weeks = 0.5;
  const auto a = amdahl_analysis(p, 0.35, 8.0);
  EXPECT_NEAR(a.speedup, 1 / 0.925, 1e-12);
  ASSERT_TRUE(a.new_mfu && a.roi);
  EXPECT_EQ(std::round(1000 * *a.new_mfu) / 10, 37.8);
  EXPECT_NEAR(*a.roi, (100 * 0.35 / 0.925 - 35) / 0.5, 1e-9);  // ~5.7 MFU points/week
  EXPECT_TRUE(a.within_budget);
  EXPECT_EQ(a.hotspot, "compute");
  // AllReduce 2x compression: 1/0.85 -> 41.2% MFU at 2.0 + 1.5 x (2 - 1) = 3.5 weeks.
  auto q = base;
  q[1].speedup = 2.0;
  q[1].cost_weeks = lab_allreduce_cost_weeks(2.0);
  EXPECT_DOUBLE_EQ(q[1].cost_weeks, 3.5);
  const auto b = amdahl_analysis(q, 0.35, 8.0);
  ASSERT_TRUE(b.new_mfu && b.roi);
  EXPECT_EQ(std::round(1000 * *b.new_mfu) / 10, 41.2);
  EXPECT_LT(*b.roi, *a.roi);  // the pipeline fix has the better ROI (the lab's answer B)
  // The lab's cost model for the pipeline lever: 0.5 + 0.1 per extra micro-batch.
  EXPECT_DOUBLE_EQ(lab_pipeline_cost_weeks(4, 4), 0.5);
  EXPECT_NEAR(lab_pipeline_cost_weeks(4, 8), 0.9, 1e-12);
  EXPECT_DOUBLE_EQ(lab_data_loading_cost_weeks(8), 2.0);
}

TEST(Amdahl, BudgetExceededIsReported) {
  std::vector<ProfileComponent> p{{"compute", 0.45, 1, 0}, {"allreduce", 0.30, 4, lab_allreduce_cost_weeks(4)},
                                  {"pipeline_bubble", 0.15, 4, lab_pipeline_cost_weeks(4, 16)},
                                  {"data_loading", 0.10, 1, 0}};
  const auto r = amdahl_analysis(p, 0.35, 8.0);  // 6.5 + 1.7 = 8.2 weeks
  EXPECT_NEAR(r.total_cost_weeks, 8.2, 1e-12);
  EXPECT_FALSE(r.within_budget);
}

TEST(Amdahl, BadProfilesAreRejected) {
  EXPECT_THROW(amdahl_speedup({0.5, 0.4}, {1, 1}), BadInput);  // does not sum to 1
  EXPECT_THROW(amdahl_speedup(1.2, 2), BadInput);
  EXPECT_THROW(amdahl_speedup(0.5, 0), BadInput);
  EXPECT_THROW(amdahl_analysis({}, 0.3), BadInput);
}

TEST(Gustafson, ScaledSpeedup) {
  EXPECT_DOUBLE_EQ(gustafson_speedup(0.05, 100), 100 - 0.05 * 99);
  EXPECT_LT(amdahl_speedup(0.95, 100), gustafson_speedup(0.05, 100));
}

TEST(Stragglers, ExpectedMaximumOfNormals) {
  // Tabulated E[max of n standard normals] (Harter 1961): n=2 0.5642, n=10 1.5388, n=100 2.5076.
  EXPECT_NEAR(expected_max_standard_normal(2), 0.5642, 0.03);
  EXPECT_NEAR(expected_max_standard_normal(10), 1.5388, 0.02);
  EXPECT_NEAR(expected_max_standard_normal(100), 2.5076, 0.03);
  EXPECT_DOUBLE_EQ(expected_max_standard_normal(1), 0.0);
  // Grows with the fleet: the slowest of more GPUs is slower.
  EXPECT_LT(straggler_factor_normal(1000, 0.02), straggler_factor_normal(16000, 0.02));
  EXPECT_NEAR(straggler_factor_lognormal(10, 0.05), std::exp(0.05 * expected_max_standard_normal(10)), 1e-12);
}

namespace {

using mlsysim::testing::CliResult;
using mlsysim::testing::run_cli;

// The error of a command expected to fail with exit 1 (JSON error object).
std::string cli_error(const std::string& args) {
  const CliResult r = run_cli(args + " --format json");
  EXPECT_EQ(r.code, 1) << args << "\n" << r.out;
  const auto j = nlohmann::json::parse(r.out, nullptr, false);
  return j.is_object() && j.contains("error") ? j["error"].get<std::string>() : std::string();
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST(Amdahl, MfuPastPeakIsRejectedWithTheLargestSpeedupThatFits) {
  // 50% of the step 10x faster from 60% MFU: 0.6 / (0.5 + 0.05) = 109% of peak, impossible. Staying
  // at or below peak needs (1 - f) + f/k >= 0.6 -> k <= 0.5 / (0.6 - 0.5) = 5.
  const std::vector<ProfileComponent> p{{"optimized", 0.5, 10, 0}, {"rest", 0.5, 1, 0}};
  EXPECT_THROW(amdahl_analysis(p, 0.6), BadInput);
  EXPECT_NEAR(largest_speedup_within_peak(p, 0, 0.6), 5.0, 1e-12);
  try {
    amdahl_analysis(p, 0.6);
  } catch (const BadInput& e) {
    EXPECT_TRUE(contains(e.what(), "at most 5x")) << e.what();
    EXPECT_TRUE(contains(e.what(), "109.1%")) << e.what();  // 0.6 / 0.55
  }
  // At that limit the projection is exactly the peak.
  const auto at_limit = amdahl_analysis({{"optimized", 0.5, 5, 0}, {"rest", 0.5, 1, 0}}, 0.6);
  ASSERT_TRUE(at_limit.new_mfu);
  EXPECT_NEAR(*at_limit.new_mfu, 1.0, 1e-12);
  // The whole step 4x faster from 50%: at most 1/0.5 = 2x.
  const std::vector<ProfileComponent> gemm{{"gemm", 1.0, 4, 0}};
  EXPECT_THROW(amdahl_analysis(gemm, 0.5), BadInput);
  EXPECT_NEAR(largest_speedup_within_peak(gemm, 0, 0.5), 2.0, 1e-12);
  // A component with no bound: the others alone keep the step at or below peak (1 - f = 0.9 >= 0.5).
  EXPECT_TRUE(std::isinf(largest_speedup_within_peak({{"small", 0.1, 2, 0}, {"rest", 0.9, 1, 0}}, 0, 0.5)));
  // One change alone can pass the peak even when a slowdown elsewhere keeps the total below it.
  EXPECT_THROW(amdahl_analysis({{"a", 0.5, 4, 0}, {"b", 0.5, 0.6, 0}}, 0.9), BadInput);
  EXPECT_THROW(amdahl_analysis(p, 0.0), BadInput);  // MFU 0: no useful work to scale
}

TEST(Amdahl, NoProjectionIsEverPastPeak) {
  // Invariant over a grid: whatever is accepted projects at most 100% MFU, alone and together.
  for (double f : {0.1, 0.5, 0.9, 1.0})
    for (double k : {0.5, 1.5, 3.0, 10.0, 1e3})
      for (double mfu : {0.05, 0.3, 0.6, 0.95}) {
        const std::vector<ProfileComponent> p{{"x", f, k, 0}, {"rest", 1 - f, 1, 0}};
        const double projected = mfu / ((1 - f) + f / k);  // Amdahl by hand
        if (projected > 1 + 1e-9) {
          EXPECT_THROW(amdahl_analysis(p, mfu), BadInput) << f << " " << k << " " << mfu;
          continue;
        }
        const auto r = amdahl_analysis(p, mfu);
        ASSERT_TRUE(r.new_mfu);
        EXPECT_NEAR(*r.new_mfu, projected, 1e-12);
        for (const auto& c : r.components) EXPECT_LE(*c.alone_mfu, 1 + 1e-9);
      }
}

TEST(Amdahl, WithoutABaselineMfuThereAreNoMfuFigures) {
  const std::vector<ProfileComponent> p{{"optimized", 0.5, 2, 2.0}, {"rest", 0.5, 1, 0}};
  const auto r = amdahl_analysis(p, std::nullopt);
  EXPECT_NEAR(r.speedup, 1 / 0.75, 1e-12);
  EXPECT_FALSE(r.base_mfu || r.new_mfu || r.roi);
  for (const auto& c : r.components) EXPECT_FALSE(c.alone_mfu || c.alone_roi) << c.name;
  for (const auto& t : r.trace) EXPECT_FALSE(contains(t, "MFU")) << t;
  // The CLI: no base_mfu/new_mfu/ROI in JSON or CSV, no "MFU points/week" in the table.
  const CliResult json = run_cli("amdahl -f 0.5 -k 2 --costs optimized=2 --format json");
  ASSERT_EQ(json.code, 0) << json.out;
  const auto j = nlohmann::json::parse(json.out);
  for (const char* key : {"base_mfu", "new_mfu", "roi_mfu_points_per_week"}) EXPECT_FALSE(j.contains(key)) << key;
  EXPECT_FALSE(j["components"][0].contains("alone_mfu"));
  const CliResult csv = run_cli("amdahl -f 0.5 -k 2 --format csv");
  EXPECT_FALSE(contains(csv.out, "mfu")) << csv.out;
  const CliResult table = run_cli("amdahl -f 0.5 -k 2 --costs optimized=2");
  EXPECT_FALSE(contains(table.out, "MFU")) << table.out;
  EXPECT_TRUE(contains(table.out, "2.0 engineer-weeks")) << table.out;
  // With --mfu they are there: 40% x 1/0.75 = 53.3%.
  const CliResult with = run_cli("amdahl -f 0.5 -k 2 --mfu 0.4 --format json");
  ASSERT_EQ(with.code, 0) << with.out;
  EXPECT_NEAR(nlohmann::json::parse(with.out)["new_mfu"].get<double>(), 0.4 / 0.75, 1e-12);
}

TEST(Amdahl, CliRejectsMfuPastPeak) {
  EXPECT_TRUE(contains(cli_error("amdahl -f 0.5 -k 10 --mfu 0.6"), "at most 5x"));
  EXPECT_TRUE(contains(cli_error("amdahl --profile gemm=1.0 --speedups gemm=4 --mfu 0.5"), "at most 2x"));
}

TEST(Amdahl, SpeedupFactorsAreBounded) {
  EXPECT_THROW(amdahl_analysis({{"x", 1.0, 1e308, 0}}, std::nullopt), BadInput);
  EXPECT_THROW(amdahl_analysis({{"x", 1.0, 1e-308, 0}}, std::nullopt), BadInput);
  // The bound itself is accepted and finite: the whole step a million times faster.
  const auto r = amdahl_analysis({{"x", 1.0, kMaxComponentSpeedup, 0}}, std::nullopt);
  EXPECT_NEAR(r.speedup, kMaxComponentSpeedup, 1e-6);
  const std::string e = cli_error("amdahl -f 1 -k 1e308");
  EXPECT_TRUE(contains(e, "1e+06")) << e;
  EXPECT_FALSE(contains(run_cli("amdahl -f 1 -k 1e6").out, "inf%"));
}

TEST(Amdahl, CliRejectsFlagsItWouldDrop) {
  // Two sources of the profile, or Gustafson with a profile flag: one of them would be ignored.
  EXPECT_TRUE(contains(cli_error("amdahl -f 0.5 -k 2 --profile a=1"), "contradict"));
  EXPECT_TRUE(contains(cli_error("amdahl -f 0.5 -k 2 --model llama3-8b -H h100 -n 8"), "contradict"));
  EXPECT_TRUE(contains(cli_error("amdahl -f 0.5 -k 2 --serial-fraction 0.1 --processors 4"), "contradict"));
  EXPECT_TRUE(contains(cli_error("amdahl --serial-fraction 0.1 --processors 4 -k 2"), "contradict"));
  EXPECT_TRUE(contains(cli_error("amdahl --serial-fraction 0.1 --processors 4 --mfu 0.3"), "Gustafson"));
  EXPECT_TRUE(contains(cli_error("amdahl --profile a=1 -H h100"), "contradict"));
  EXPECT_TRUE(contains(cli_error("amdahl -f 0.5 -k 2 --speedups optimized=3"), "--speedup"));
  EXPECT_TRUE(contains(cli_error("amdahl -k 2"), "needs --fraction"));
  // Each mode on its own still runs.
  EXPECT_EQ(run_cli("amdahl --serial-fraction 0.1 --processors 4").code, 0);
  EXPECT_EQ(run_cli("amdahl --profile a=0.5,b=0.5 --speedups a=2 --mfu 0.3").code, 0);
}
