// Amdahl, Gustafson, stragglers and the performance-engineering lab's numbers.
#include <gtest/gtest.h>

#include <cmath>

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
  EXPECT_EQ(std::round(1000 * a.new_mfu) / 10, 37.8);
  EXPECT_NEAR(a.roi, (100 * 0.35 / 0.925 - 35) / 0.5, 1e-9);  // ~5.7 MFU points/week
  EXPECT_TRUE(a.within_budget);
  EXPECT_EQ(a.hotspot, "compute");
  // AllReduce 2x compression: 1/0.85 -> 41.2% MFU at 2.0 + 1.5 x (2 - 1) = 3.5 weeks.
  auto q = base;
  q[1].speedup = 2.0;
  q[1].cost_weeks = lab_allreduce_cost_weeks(2.0);
  EXPECT_DOUBLE_EQ(q[1].cost_weeks, 3.5);
  const auto b = amdahl_analysis(q, 0.35, 8.0);
  EXPECT_EQ(std::round(1000 * b.new_mfu) / 10, 41.2);
  EXPECT_LT(b.roi, a.roi);  // the pipeline fix has the better ROI (the lab's answer B)
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
