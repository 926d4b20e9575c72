// Error statistics for validation: signed relative error and its |.| quantiles.
#pragma once

#include <vector>

namespace mlsysim {

// (predicted - measured) / measured
inline double signed_relative_error(double predicted, double measured) {
  return (predicted - measured) / measured;
}

struct ErrorSummary {
  int count = 0;
  double median_abs = 0;  // median |error|
  double p90_abs = 0;     // 90th percentile |error| (linear interpolation between order statistics)
  double mean_signed = 0; // bias (mean signed error: pulled by outliers)
  double median_signed = 0;  // typical direction and size of the error, robust to outliers
};

ErrorSummary summarize_errors(const std::vector<double>& signed_errors);

}  // namespace mlsysim
