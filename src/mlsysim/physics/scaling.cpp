#include "mlsysim/physics/scaling.hpp"

#include <cmath>
#include <string>

#include "mlsysim/errors.hpp"

namespace mlsysim {
namespace {
void check_fraction(double f) {
  if (!(f >= 0 && f <= 1)) throw BadInput("fraction must be in [0, 1], got " + std::to_string(f));
}
void check_speedup(double k) {
  if (!(k > 0) || !std::isfinite(k))
    throw BadInput("speedup factor must be a finite number > 0, got " + std::to_string(k));
}

// Acklam's rational approximation of the inverse standard normal CDF (relative error < 1.2e-9).
double inverse_normal_cdf(double p) {
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                             1.383577518672690e+02, -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01, -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00, 2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
  const double lo = 0.02425, hi = 1 - lo;
  if (p < lo) {
    const double q = std::sqrt(-2 * std::log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > hi) {
    const double q = std::sqrt(-2 * std::log(1 - p));
    return -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  const double q = p - 0.5, r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
         (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}
}  // namespace

double amdahl_speedup(double f, double k) {
  check_fraction(f);
  check_speedup(k);
  return 1.0 / ((1.0 - f) + f / k);
}

double amdahl_speedup(const std::vector<double>& f, const std::vector<double>& k) {
  if (f.size() != k.size() || f.empty())
    throw BadInput("multi-component Amdahl needs one speedup per fraction (got " +
                   std::to_string(f.size()) + " fractions, " + std::to_string(k.size()) + " speedups)");
  double sum_f = 0, t = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    check_fraction(f[i]);
    check_speedup(k[i]);
    sum_f += f[i];
    t += f[i] / k[i];
  }
  if (std::abs(sum_f - 1.0) > 1e-6)
    throw BadInput("profile fractions must sum to 1 (got " + std::to_string(sum_f) +
                   "); add the missing component or rescale");
  return 1.0 / t;
}

double amdahl_limit(double f) {
  check_fraction(f);
  return f >= 1 ? INFINITY : 1.0 / (1.0 - f);
}

double gustafson_speedup(double serial, int k) {
  check_fraction(serial);
  if (k < 1) throw BadInput("processors must be >= 1");
  return k - serial * (k - 1);
}

double expected_max_standard_normal(int n) {
  if (n < 1) throw BadInput("number of GPUs must be >= 1");
  if (n == 1) return 0.0;
  return inverse_normal_cdf((n - 0.375) / (n + 0.25));
}

double straggler_factor_normal(int n, double cv) {
  if (!(cv >= 0) || cv > 1) throw BadInput("straggler coefficient of variation must be in [0, 1]");
  return 1.0 + cv * expected_max_standard_normal(n);
}

double straggler_factor_lognormal(int n, double sigma) {
  if (!(sigma >= 0) || sigma > 1) throw BadInput("straggler lognormal sigma must be in [0, 1]");
  return std::exp(sigma * expected_max_standard_normal(n));
}

}  // namespace mlsysim
