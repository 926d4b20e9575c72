#include "mlsysim/units/format.hpp"

#include <cmath>
#include <fmt/format.h>

namespace mlsysim::units {
namespace {

// Picks the largest prefix that keeps the mantissa >= 1 and prints 3 significant digits.
std::string scaled(double v, const char* const* prefixes, const double* scales, int n,
                   const char* unit) {
  if (v == 0 || !std::isfinite(v)) return fmt::format("{:g} {}{}", v, prefixes[n - 1], unit);
  for (int i = 0; i < n; ++i) {
    const double x = v / scales[i];
    if (std::fabs(x) >= 1.0 || i == n - 1) {
      const int decimals = std::fabs(x) >= 100 ? 0 : (std::fabs(x) >= 10 ? 1 : 2);
      return fmt::format("{:.{}f} {}{}", x, decimals, prefixes[i], unit);
    }
  }
  return {};
}

constexpr const char* kDecimal[] = {"P", "T", "G", "M", "k", ""};
constexpr double kDecimalScale[] = {1e15, 1e12, 1e9, 1e6, 1e3, 1};

}  // namespace

std::string format_time(Seconds t) {
  static constexpr const char* p[] = {"", "m", "µ", "n"};
  static constexpr double s[] = {1, 1e-3, 1e-6, 1e-9};
  if (t.si() >= 86400 * 2) return fmt::format("{:.2f} days", t.si() / 86400);
  if (t.si() >= 3600 * 2) return fmt::format("{:.2f} h", t.si() / 3600);
  return scaled(t.si(), p, s, 4, "s");
}
std::string format_bytes(Bytes b) { return scaled(b.si(), kDecimal, kDecimalScale, 6, "B"); }
std::string format_flops(Flops f) { return scaled(f.si(), kDecimal, kDecimalScale, 6, "FLOP"); }
std::string format_rate(FlopsPerSecond f) {
  return scaled(f.si(), kDecimal, kDecimalScale, 6, "FLOP/s");
}
std::string format_bandwidth(BytesPerSecond b) {
  return scaled(b.si(), kDecimal, kDecimalScale, 6, "B/s");
}
std::string format_energy(Joules e) {
  static constexpr const char* p[] = {"M", "k", "", "m", "µ"};
  static constexpr double s[] = {1e6, 1e3, 1, 1e-3, 1e-6};
  return scaled(e.si(), p, s, 5, "J");
}
std::string format_power(Watts w) {
  static constexpr const char* p[] = {"k", "", "m"};
  static constexpr double s[] = {1e3, 1, 1e-3};
  return scaled(w.si(), p, s, 3, "W");
}
std::string format_count(double n) {
  static constexpr const char* p[] = {"T", "B", "M", "k", ""};
  static constexpr double s[] = {1e12, 1e9, 1e6, 1e3, 1};
  return scaled(n, p, s, 5, "");
}
std::string format_counted(long long n, const std::string& noun) {
  return fmt::format("{} {}{}", n, noun, n == 1 ? "" : "s");
}
std::string format_percent(double fraction) {
  const double pct = fraction * 100;
  return pct >= 10 ? fmt::format("{:.1f}%", pct) : fmt::format("{:.2f}%", pct);
}

}  // namespace mlsysim::units
