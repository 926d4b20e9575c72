// Error statistics used by `mlsysim validate`.
#include <gtest/gtest.h>

#include "mlsysim/solvers/accuracy.hpp"

using namespace mlsysim;

TEST(Accuracy, MedianAndP90OfAbsoluteErrors) {
  // |errors| sorted: 0.05 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 (n = 10).
  const std::vector<double> e = {-0.1, 0.2, -0.3, 0.4, 0.05, -0.5, 0.6, 0.7, -0.8, 0.9};
  const ErrorSummary s = summarize_errors(e);
  EXPECT_EQ(s.count, 10);
  EXPECT_DOUBLE_EQ(s.median_abs, (0.4 + 0.5) / 2);           // between the 5th and 6th
  EXPECT_NEAR(s.p90_abs, 0.8 + 0.1 * (0.9 - 0.8), 1e-12);    // position 8.1 of 0..9
  EXPECT_NEAR(s.mean_signed, (-0.1 + 0.2 - 0.3 + 0.4 + 0.05 - 0.5 + 0.6 + 0.7 - 0.8 + 0.9) / 10, 1e-12);
  // Signed errors sorted: -0.8 -0.5 -0.3 -0.1 0.05 0.2 0.4 0.6 0.7 0.9 -> median (0.05 + 0.2) / 2.
  EXPECT_NEAR(s.median_signed, (0.05 + 0.2) / 2, 1e-12);
  EXPECT_DOUBLE_EQ(signed_relative_error(110, 100), 0.1);
  EXPECT_EQ(summarize_errors({}).count, 0);
}
