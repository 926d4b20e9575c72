#include "mlsysim/solvers/accuracy.hpp"

#include <algorithm>
#include <cmath>

namespace mlsysim {
namespace {
// Quantile q of sorted values, linear interpolation (type 7, the R/NumPy default).
double quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const double pos = q * (sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (pos - lo) * (sorted[hi] - sorted[lo]);
}
}  // namespace

ErrorSummary summarize_errors(const std::vector<double>& signed_errors) {
  ErrorSummary s;
  s.count = static_cast<int>(signed_errors.size());
  if (signed_errors.empty()) return s;
  std::vector<double> abs_errors;
  double sum = 0;
  for (double e : signed_errors) {
    abs_errors.push_back(std::fabs(e));
    sum += e;
  }
  std::sort(abs_errors.begin(), abs_errors.end());
  std::vector<double> sorted_signed = signed_errors;
  std::sort(sorted_signed.begin(), sorted_signed.end());
  s.median_signed = quantile(sorted_signed, 0.5);
  s.median_abs = quantile(abs_errors, 0.5);
  s.p90_abs = quantile(abs_errors, 0.9);
  s.mean_signed = sum / signed_errors.size();
  return s;
}

}  // namespace mlsysim
