#include "mlsysim/physics/calibration.hpp"

#include <algorithm>
#include <set>
#include <array>
#include <cmath>
#include <map>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "mlsysim/errors.hpp"
#include "mlsysim/physics/efficiency.hpp"

namespace mlsysim {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

namespace {

// A measurement may beat the datasheet by timer noise and boost clocks, not by more: 5% above the
// catalog's dense peak or bandwidth means the file is another device's (or the peak a sparse one).
constexpr double kMaxMeasuredFraction = 1.05;

struct GemmPoint {
  double m, n, k, seconds;
  Precision precision;
};

std::optional<Precision> precision_of_dtype(const std::string& dtype) {
  if (dtype == "float32") return Precision::FP32;  // cuBLAS SGEMM without TF32 tensor cores
  if (dtype == "tf32") return Precision::TF32;
  if (dtype == "bfloat16") return Precision::BF16;
  if (dtype == "float16") return Precision::FP16;
  if (dtype.rfind("fp8", 0) == 0) return Precision::FP8;
  if (dtype == "int8") return Precision::INT8;
  return std::nullopt;
}

double gemm_bytes(const GemmPoint& g) {
  return (g.m * g.k + g.k * g.n + g.m * g.n) * bytes_per_element(g.precision);
}

// Ordinary least squares of y on x, accumulated point by point (every fit below is one).
struct LeastSquares {
  double sx = 0, sy = 0, sxx = 0, sxy = 0;
  int n = 0;
  void add(double x, double y) { sx += x, sy += y, sxx += x * x, sxy += x * y, ++n; }
  // y = intercept + slope * x; false with fewer than 3 points or no spread in x.
  bool line(double& intercept, double& slope) const {
    const double det = n * sxx - sx * sx;
    if (n < 3 || det <= 0) return false;
    slope = (n * sxy - sx * sy) / det;
    intercept = (sy - slope * sx) / n;
    return true;
  }
  // y = slope * x (no fixed term).
  [[nodiscard]] double slope_through_origin() const { return sxy / sxx; }
};

// Least squares of y on three regressors (y = b0 x0 + b1 x1 + b2 x2), from the normal equations
// solved by Cramer's rule; false when they are singular or there are fewer than 4 points.
struct LeastSquares3 {
  std::array<std::array<double, 3>, 3> xx{};
  std::array<double, 3> xy{};
  int n = 0;
  void add(const std::array<double, 3>& x, double y) {
    for (int i = 0; i < 3; ++i) {
      xy[i] += x[i] * y;
      for (int j = 0; j < 3; ++j) xx[i][j] += x[i] * x[j];
    }
    ++n;
  }
  bool solve(std::array<double, 3>& b) const {
    const auto det = [](const std::array<std::array<double, 3>, 3>& m) {
      return m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
             m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
             m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    };
    const double d = det(xx);
    if (n < 4 || std::fabs(d) < 1e-300) return false;
    for (int k = 0; k < 3; ++k) {
      auto m = xx;
      for (int i = 0; i < 3; ++i) m[i][k] = xy[i];
      b[k] = det(m) / d;
    }
    return true;
  }
};

// Shortest timing worth fitting a rate to: below this an isolated eager call measures the host.
constexpr double kMinKernelSeconds = 40e-6;

// Attention rate vs. key range, from `attention` rows of kind "prefill" (bf16). Time of one call
//   t = W / (peak eff_max) (1 + half_keys / keys) + tail W_block / (peak / SMs)
// (W: the call's FLOPs; W_block: its longest query block's, EfficiencyProfile::attention_tail).
// Divided by W / peak this is linear in (1 / eff_max, half_keys / eff_max, tail) against
// (1, 1 / keys, W_block SMs / W); least squares gives all three. Without a SM count, or when the
// tail comes out negative, the two-term form 1/eff = (1/eff_max)(1 + half_keys / keys) is fitted.
// Returns false (profile untouched) with too few usable rows or a nonphysical fit.
bool fit_attention(const HardwareSpec& hw, const nlohmann::json& rows, EfficiencyProfile& e, int& used,
                   double& median_abs_error) {
  std::vector<std::array<double, 4>> fitted_rows;  // (1, 1 / keys, tail regressor, 1 / efficiency)
  const double peak = hw.peak(Precision::BF16).si();
  const double sms = hw.compute_units;
  for (const auto& r : rows) {
    if (r.value("kind", "") != "prefill") continue;
    const double secs = r.value("seconds", 0.0), flops = r.value("flops", 0.0);
    const double q = r.value("q_len", 0.0), d = r.value("head_dim", 0.0);
    if (secs < kMinKernelSeconds || flops <= 0 || q <= 0 || peak <= 0) continue;
    const double keys = r.value("causal", true) ? (q + 1) / 2 : q;
    const double y = peak * secs / flops;  // 1 / efficiency
    fitted_rows.push_back({1.0, 1.0 / keys, attention_tail_flops(q, q, d, d) * sms / flops, y});
  }
  LeastSquares3 three;
  for (const auto& r : fitted_rows) three.add({r[0], r[1], r[2]}, r[3]);
  std::array<double, 3> b{};
  const bool with_tail = sms > 0 && three.solve(b) && b[0] > 1.0 && b[1] >= 0 && b[2] > 0;
  if (!with_tail) {
    LeastSquares two;
    for (const auto& r : fitted_rows) two.add(r[1], r[3]);
    double intercept = 0, slope = 0;
    if (!two.line(intercept, slope)) return false;
    if (intercept <= 1.0 || slope < 0) return false;  // nonphysical: keep the documented ratio
    b = {intercept, slope, 0.0};
  }
  e.attention = 1.0 / b[0];
  e.attention_half_keys = b[1] / b[0];
  e.attention_tail = b[2];
  used = static_cast<int>(fitted_rows.size());
  std::vector<double> errors;  // the fitted model against every row it was fitted to
  for (const auto& r : fitted_rows)
    errors.push_back(std::fabs((b[0] * r[0] + b[1] * r[1] + b[2] * r[2]) / r[3] - 1.0));
  median_abs_error = median(errors);
  return true;
}

// FlashAttention-2's matmul efficiency from its kernel timings: rows of kind "prefill_backend" whose
// backend is FLASH_ATTENTION (bench/gpu/microbench.py forces PyTorch SDPA's FlashAttention-2 kernel;
// published benchmark bars in the same form work too), "pass": "backward" for backward kernels. The
// engine times such a call as
//   t = FLOPs / (eta x peak x shape) + exponentials / special-function rate + tail + launch,
// affine in 1/eta while the call is compute-bound: timing it at eta = 1 and 1/2 gives the slope A and
// the rest R, and each row's eta = A / (t - R). The median over one pass's rows is its fit (the
// forward's into `flash_attention2`, the backward's into `flash_attention2_backward`). Needs the
// device's special-function rate and the shape and tail terms already in `e` (fit_attention first).
struct PassFit {
  int used = 0;
  double median_abs_error = 0;
};
PassFit fit_flash_attention2_pass(const HardwareSpec& hw, const nlohmann::json& rows, EfficiencyProfile& e,
                                  bool backward) {
  PassFit fit;
  if (hw.special_function_rate.si() <= 0) return fit;
  double& eta_field = backward ? e.flash_attention2_backward : e.flash_attention2;
  HardwareSpec probe = hw;
  probe.efficiency = e;
  double& probe_eta = backward ? probe.efficiency.flash_attention2_backward : probe.efficiency.flash_attention2;
  const RateModel rates{&probe, Runtime::Graph, 0};
  const auto time_at = [&](const Operator& op, double eta) {
    probe_eta = eta;
    return time_operator(rates, op);
  };
  std::vector<std::pair<Operator, double>> timed;  // (operator, measured seconds)
  std::vector<double> etas;
  for (const auto& r : rows) {
    if (r.value("kind", "") != "prefill_backend" || r.value("backend", "") != "FLASH_ATTENTION") continue;
    if ((r.value("pass", "forward") == "backward") != backward) continue;
    const double secs = r.value("seconds", 0.0), q = r.value("q_len", 0.0);
    if (secs < kMinKernelSeconds || q <= 0 || r.value("kv_len", q) != q) continue;
    const Operator op = attention_call_operator({r.value("batch", 1.0), r.value("heads", 0.0),
                                                 r.value("head_dim", 0.0), q, r.value("causal", false), backward,
                                                 Precision::BF16, AttentionKernel::FlashAttention2});
    if (op.flops <= 0) continue;
    const OpTiming full = time_at(op, 1.0), half = time_at(op, 0.5);
    if (full.memory >= full.compute) continue;  // memory-bound: not affine in 1/eta
    const double slope = (half.total() - full.total()).si(), rest = full.total().si() - slope;
    if (slope <= 0 || secs <= rest) continue;  // faster than the exponentials alone allow
    etas.push_back(slope / (secs - rest));
    timed.emplace_back(op, secs);
  }
  if (etas.empty()) return fit;
  eta_field = std::clamp(median(etas), 0.05, 1.0);
  fit.used = static_cast<int>(etas.size());
  std::vector<double> errors;
  for (const auto& [op, secs] : timed)
    errors.push_back(std::fabs(time_at(op, eta_field).total().si() / secs - 1.0));
  fit.median_abs_error = median(errors);
  return fit;
}

// Both passes into a calibration, with the source line that names their input.
bool fit_flash_attention2_from(const HardwareSpec& hw, const nlohmann::json& rows, const std::string& origin,
                               CalibrationFit& fit) {
  const PassFit forward = fit_flash_attention2_pass(hw, rows, fit.profile, false);
  if (forward.used == 0) return false;
  const PassFit backward = fit_flash_attention2_pass(hw, rows, fit.profile, true);
  fit.flash_attention2_points = forward.used;
  fit.flash_attention2_backward_points = backward.used;
  fit.flash_attention2_median_abs_error = forward.median_abs_error;
  fit.profile.flash_attention2_source = fmt::format(
      "fitted by mlsysim calibrate to {} ({} FlashAttention-2 forward timings, median |error| {:.1f}%{})", origin,
      forward.used, 100 * forward.median_abs_error,
      backward.used ? fmt::format("; {} backward, {:.1f}%", backward.used, 100 * backward.median_abs_error) : "");
  return true;
}

// The default fused kernel's rate against head dim (EfficiencyProfile::attention_head_dim_rates) and
// its backward's (attention_backward, attention_backward_head_dim_rates), from rows of kind
// "prefill_backend" whose backend is CUDNN_ATTENTION (PyTorch SDPA's cuDNN kernel, the default one on
// Hopper; published cuDNN benchmark bars in the same form work too), "pass": "backward" for backward
// kernels. Each row's speed against the engine's own time with no head-dim or backward terms,
// s = t_model / t_measured, cancels the shape and tail terms. A pass's head dim d runs at the
// geometric mean of s(d) / s(128) over the (mask, sequence length) pairs timed at both; the backward
// at head dim 128 at the geometric mean of s_backward(128) / s_forward(128) over the pairs timed in
// both passes. Returns the rows used (those at head dims other than 128, and the backward ones at 128
// with a forward partner).
constexpr double kReferenceHeadDim = 128;  // the head dim fit_attention's rows are timed at

using SpeedTable = std::map<std::pair<bool, double>, std::map<double, double>>;  // (causal, seq) -> d -> s

// exp of the mean of logarithms: the geometric mean of the ratios they are the logarithms of.
double geometric_mean_of_logs(const std::vector<double>& logs) {
  double sum = 0;
  for (double l : logs) sum += l;
  return std::exp(sum / static_cast<double>(logs.size()));
}

// Geometric means of s(d) / s(128) per head dim, the 128 entry 1; `used` counts the ratios.
std::vector<HeadDimRate> head_dim_table(const SpeedTable& speed, int& used) {
  std::map<double, std::vector<double>> log_ratios;
  for (const auto& [key, by_dim] : speed) {
    const auto reference = by_dim.find(kReferenceHeadDim);
    if (reference == by_dim.end()) continue;
    for (const auto& [d, s] : by_dim)
      if (d != kReferenceHeadDim) log_ratios[d].push_back(std::log(s / reference->second));
  }
  if (log_ratios.empty()) return {};
  std::vector<HeadDimRate> table{{kReferenceHeadDim, 1.0}};
  for (const auto& [d, logs] : log_ratios) {
    table.push_back({d, geometric_mean_of_logs(logs)});
    used += static_cast<int>(logs.size());
  }
  std::sort(table.begin(), table.end(), [](auto& a, auto& b) { return a.head_dim < b.head_dim; });
  return table;
}

int fit_attention_head_dims(const HardwareSpec& hw, const nlohmann::json& rows, EfficiencyProfile& e) {
  HardwareSpec probe = hw;
  probe.efficiency = e;
  probe.efficiency.attention_head_dim_rates.clear();
  probe.efficiency.attention_backward_head_dim_rates.clear();
  probe.efficiency.attention_backward = 0;
  const RateModel rates{&probe, Runtime::Graph, 0};
  SpeedTable forward, backward;
  for (const auto& r : rows) {
    if (r.value("kind", "") != "prefill_backend" || r.value("backend", "") != "CUDNN_ATTENTION") continue;
    const bool is_backward = r.value("pass", "forward") == "backward";
    const double secs = r.value("seconds", 0.0), q = r.value("q_len", 0.0), d = r.value("head_dim", 0.0);
    if (secs < kMinKernelSeconds || q <= 0 || d <= 0 || r.value("kv_len", q) != q) continue;
    const bool causal = r.value("causal", false);
    const Operator op = attention_call_operator({r.value("batch", 1.0), r.value("heads", 0.0), d, q, causal,
                                                 is_backward, Precision::BF16, AttentionKernel::Flash});
    if (op.flops <= 0) continue;
    (is_backward ? backward : forward)[{causal, q}][d] = time_operator(rates, op).total().si() / secs;
  }
  int used = 0;
  // What these rows cannot fit keeps the profile's current value.
  if (auto table = head_dim_table(forward, used); !table.empty()) e.attention_head_dim_rates = std::move(table);
  std::vector<double> log_backward;  // backward against forward at head dim 128, same mask and length
  for (const auto& [key, by_dim] : backward) {
    const auto f = forward.find(key);
    if (!by_dim.count(kReferenceHeadDim) || f == forward.end() || !f->second.count(kReferenceHeadDim)) continue;
    log_backward.push_back(std::log(by_dim.at(kReferenceHeadDim) / f->second.at(kReferenceHeadDim)));
  }
  if (!log_backward.empty()) {
    e.attention_backward = std::clamp(geometric_mean_of_logs(log_backward), 0.05, 1.0);
    used += static_cast<int>(log_backward.size());
    if (auto table = head_dim_table(backward, used); !table.empty())
      e.attention_backward_head_dim_rates = std::move(table);
  }
  return used;
}

// The head-dim table into a calibration, with its source line.
void fit_head_dim_rates_from(const HardwareSpec& hw, const nlohmann::json& rows, const std::string& origin,
                             CalibrationFit& fit) {
  fit.head_dim_rate_points = fit_attention_head_dims(hw, rows, fit.profile);
  if (fit.head_dim_rate_points == 0) return;
  fit.profile.attention_head_dim_source =
      fmt::format("fitted by mlsysim calibrate to {} ({} cuDNN attention timings against the same mask and "
                  "sequence length at head dim 128{})",
                  origin, fit.head_dim_rate_points,
                  fit.profile.attention_backward > 0 ? ", backward ones also against the forward" : "");
}

// Convolution efficiency from compute-bound `conv` rows: least squares through the origin of
// time against padded implicit-GEMM FLOPs / peak (the engine's own wave model). Every row above
// the host-bound floor is also kept as a timed shape (e.conv_measured). Returns whether eta was fitted.
bool fit_conv(const HardwareSpec& hw, const nlohmann::json& rows, BytesPerSecond bw,
              EfficiencyProfile& e, int& used) {
  LeastSquares fit;
  const double peak = hw.peak(Precision::BF16).si();
  e.conv_measured.clear();  // this file's timings replace any earlier calibration's
  for (const auto& r : rows) {
    const double secs = r.value("seconds", 0.0), bytes = r.value("bytes", 0.0);
    const double batch = r.value("batch", 0.0), cin = r.value("cin", 0.0), cout = r.value("cout", 0.0);
    const double ks = r.value("kernel", 0.0), stride = r.value("stride", 1.0), px = r.value("hw", 0.0);
    if (secs < kMinKernelSeconds || peak <= 0 || batch <= 0 || stride <= 0) continue;
    const double out_px = std::floor((px + 2 * std::floor(ks / 2) - ks) / stride) + 1;
    const double m = batch * out_px * out_px, k = cin * ks * ks;
    e.conv_measured.push_back({cout, k, out_px * out_px, batch, 2.0 * m * cout * k / secs});
    const double x = gemm_padded_flops(hw, m, cout, k) / peak;
    if (x * 1.25 < bytes / bw.si()) continue;  // memory-bound even at 80% efficiency
    fit.add(x, secs);
  }
  if (fit.n < 3 || fit.sxy <= 0) return false;  // the timed shapes are kept all the same
  e.conv = std::clamp(1.0 / fit.slope_through_origin(), 0.05, 1.0);
  used = fit.n;
  return true;
}

// One convolution call's host time in eager module code. The microbenchmark's batch-1 `conv` rows
// are back-to-back F.conv2d calls whose kernels take a few microseconds at most, so each row times
// the host: their median is a functional call's cost. Module code (torchvision) also pays the
// module-call overhead, the framework microbenchmark's module minus functional rate per kernel.
// Rows count only when the device model puts their kernel under a quarter of the row's time.
// Returns the number of rows used (0: fewer than 3, or no framework rates; the field stays 0).
int fit_conv_host_dispatch(const HardwareSpec& hw, const nlohmann::json& rows, const nlohmann::json& launch,
                           BytesPerSecond bw, EfficiencyProfile& e) {
  const double functional_us = launch.value("eager_functional_us_per_kernel", 0.0);
  const double module_us = launch.value("eager_module_us_per_kernel", 0.0);
  const double peak = hw.peak(Precision::BF16).si() * e.conv;
  if (functional_us <= 0 || module_us <= 0 || peak <= 0) return 0;
  std::vector<double> host;
  for (const auto& r : rows) {
    if (r.value("batch", 0.0) != 1.0) continue;
    const double secs = r.value("seconds", 0.0), flops = r.value("flops", 0.0), bytes = r.value("bytes", 0.0);
    if (secs <= 0 || std::max(flops / peak, bytes / bw.si()) > 0.25 * secs) continue;
    host.push_back(secs);
  }
  if (host.size() < 3) return 0;
  e.conv_host_dispatch = Seconds(median(host) + std::max(0.0, module_us - functional_us) * 1e-6);
  return static_cast<int>(host.size());
}

// Element-wise kernel bandwidth from `vector` rows of single-kernel ops whose byte count is exact
// (rms_norm: read + write; add: two reads + write), large enough to spill any on-chip cache
// (3x the device's L2/SRAM, at least 64 MB). silu_mul rows are left out: eager PyTorch runs them as
// two kernels, so their reported bytes are not what moved.
// Rows smaller than this may be served from the on-chip cache between timed repeats.
double cache_spilling_bytes(const HardwareSpec& hw) {
  return std::max(64e6, 3.0 * hw.onchip_memory.si());
}

bool fit_vector_bandwidth(const HardwareSpec& hw, const nlohmann::json& rows, EfficiencyProfile& e,
                          int& used) {
  const double min_bytes = cache_spilling_bytes(hw);
  std::vector<double> fractions;
  for (const auto& r : rows) {
    const std::string op = r.value("op", "");
    const double secs = r.value("seconds", 0.0), bytes = r.value("bytes", 0.0);
    if ((op != "rms_norm" && op != "add") || secs < kMinKernelSeconds || bytes < min_bytes) continue;
    fractions.push_back(bytes / secs / hw.memory_bandwidth.si());
  }
  if (fractions.size() < 2) return false;
  e.vector_memory = std::clamp(median(fractions), 0.05, 1.0);
  used = static_cast<int>(fractions.size());
  return true;
}

// Strided element-wise bandwidth, from the rows whose operands are strided views:
//  * mul_strided (x[:, ::2] * r[:, 1::2]): its reported bytes (two half-width reads, one write)
//    are what moved;
//  * silu_mul (F.silu(g) * u with g, u the two halves of one [tokens, 2 ffn] tensor, as after a
//    fused gate/up projection): two strided kernels, silu (read g, write t) then * u (read t and u,
//    write), so 5 tensor-sizes move against the 4 the row reports.
// mul_strided rows are preferred when there are two or more; the same cache-spill rule applies.
bool fit_strided_bandwidth(const HardwareSpec& hw, const nlohmann::json& rows, EfficiencyProfile& e,
                           int& used) {
  const double min_bytes = cache_spilling_bytes(hw);
  std::vector<double> strided_mul, silu_mul;
  for (const auto& r : rows) {
    const std::string op = r.value("op", "");
    const double secs = r.value("seconds", 0.0), bytes = r.value("bytes", 0.0);
    if (secs < kMinKernelSeconds) continue;
    const double moved = op == "silu_mul" ? bytes * 5.0 / 4.0 : bytes;
    if (moved < min_bytes) continue;
    const double fraction = moved / secs / hw.memory_bandwidth.si();
    if (op == "mul_strided") strided_mul.push_back(fraction);
    if (op == "silu_mul") silu_mul.push_back(fraction);
  }
  const std::vector<double>& use = strided_mul.size() >= 2 ? strided_mul : silu_mul;
  if (use.size() < 2) return false;
  e.strided_memory = std::clamp(median(use), 0.05, 1.0);
  used = static_cast<int>(use.size());
  return true;
}

// The type of each field the fits read (bench/gpu/microbench.py writes them): words are strings,
// `causal` is true/false, the rest numbers. Checked up front so a mistyped field is named with its
// row, not met later as a JSON library type error; fields the fits do not read (notes, source) pass.
void check_row_types(const nlohmann::json& row, const std::string& where) {
  static const std::set<std::string> kWords = {"dtype", "op", "kind", "backend", "pass"};
  static const std::set<std::string> kNumbers = {
      "m",     "n",      "k",        "seconds", "bytes",  "flops",  "batch",  "heads",
      "kv_heads", "head_dim", "q_len", "kv_len", "cin",  "cout",   "kernel", "stride",
      "hw",    "tokens", "width",    "read_reduce_GBps", "d2d_copy_GBps_read_plus_write",
      "eager_functional_us_per_kernel", "eager_module_us_per_kernel"};
  for (auto it = row.begin(); it != row.end(); ++it) {
    const nlohmann::json& v = it.value();
    const std::string& key = it.key();
    const char* wanted = kWords.count(key) ? (v.is_string() ? nullptr : "a string")
                         : key == "causal"  ? (v.is_boolean() ? nullptr : "true or false")
                         : kNumbers.count(key) ? (v.is_number() ? nullptr : "a number")
                                               : nullptr;
    if (wanted) throw BadInput(fmt::format("{}.{} must be {}, got {}", where, key, wanted, v.dump()));
  }
}

nlohmann::json parse_microbenchmarks(const std::string& json_text, const std::string& origin) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(json_text);
  } catch (const nlohmann::json::exception& e) {
    throw invalid_json(origin, e.what());
  }
  if (!j.is_object())
    throw BadInput(origin + ": a microbenchmark file holds one JSON object (bench/gpu/microbench.py's output), got " +
                   std::string(j.type_name()));
  if (j.contains("hardware") && !j["hardware"].is_string())
    throw BadInput(origin + ": 'hardware' must be a device id string, got " + j["hardware"].dump());
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.value().is_array()) {
      size_t row = 0;
      for (const auto& r : it.value()) {
        const std::string where = fmt::format("{}: {}[{}]", origin, it.key(), row++);
        if (!r.is_object()) throw BadInput(where + " must be an object of fields, got " + r.dump());
        check_row_types(r, where);
      }
    } else if (it.key() == "memory" || it.key() == "launch") {
      if (!it.value().is_object()) throw BadInput(fmt::format("{}: '{}' must be an object", origin, it.key()));
      check_row_types(it.value(), origin + ": " + it.key());
    }
  }
  return j;
}

// Kernel timings alone (e.g. published FlashAttention-2 benchmark bars): a partial calibration of
// what they can fit, on top of the device's current profile.
void fit_attention_only(const HardwareSpec& hw, const nlohmann::json& attention, const std::string& origin,
                        CalibrationFit& fit) {
  fit.partial = true;
  const bool fa2 = fit_flash_attention2_from(hw, attention, origin, fit);
  fit_head_dim_rates_from(hw, attention, origin, fit);
  if (!fa2 && fit.head_dim_rate_points == 0)
    throw BadInput(origin + ": no usable kernel rows: FlashAttention-2 rows (kind prefill_backend, backend "
                   "FLASH_ATTENTION, compute-bound, with a device special_function_tops) or default-kernel rows "
                   "(kind prefill_backend, backend CUDNN_ATTENTION) at head dim 128 and at least one other");
}

std::vector<GemmPoint> gemm_points_of(const HardwareSpec& hw, const nlohmann::json& gemm, const std::string& origin) {
  std::vector<GemmPoint> points;
  size_t row = 0;
  for (const auto& g : gemm) {
    ++row;
    auto prec = precision_of_dtype(g.value("dtype", ""));
    const double secs = g.value("seconds", 0.0);
    if (!prec || secs <= 0) continue;
    if (!hw.supports(*prec))
      throw BadInput(fmt::format("{}: gemm row {} uses {}, which {} does not list", origin, row,
                                 to_string(*prec), hw.id));
    points.push_back({g.value("m", 0.0), g.value("n", 0.0), g.value("k", 0.0), secs, *prec});
  }
  if (points.empty()) throw BadInput(origin + ": no usable gemm rows");
  return points;
}

// Host dispatch: time left over after streaming the bytes, for the memory-bound GEMVs. Each row is
// one isolated call: the same leftover is the fixed cost of such a call (Runtime::Isolated), taken
// over the 16-bit GEMVs only (cuBLAS's fp32 GEMV kernels stream below the copy rate, which a fixed
// cost must not absorb). Better for the eager host cost: the framework microbenchmark (nn.Module
// layers at tiny sizes, host-bound), the per-kernel host cost of the code people actually run eagerly.
void fit_call_costs(const HardwareSpec& hw, const std::vector<GemmPoint>& points, BytesPerSecond bw,
                    const nlohmann::json& j, EfficiencyProfile& e, CalibrationFit& fit) {
  std::vector<double> residual, residual_16bit;
  for (const auto& g : points) {
    const double mem_time = gemm_bytes(g) / bw.si();
    const double flop_time = 2 * g.m * g.n * g.k / (hw.peak(g.precision).si() * 0.8);
    if (mem_time <= flop_time || g.m > 8) continue;
    residual.push_back(g.seconds - mem_time);
    if (bytes_per_element(g.precision) == 2.0) residual_16bit.push_back(g.seconds - mem_time);
  }
  fit.memory_bound_points = static_cast<int>(residual.size());
  if (!residual.empty()) e.host_dispatch = Seconds(std::max(0.0, median(residual)));
  if (!residual_16bit.empty()) e.isolated_call = Seconds(std::max(0.0, median(residual_16bit)));
  if (j.contains("launch")) {
    const double module_us = j["launch"].value("eager_module_us_per_kernel", 0.0);
    if (module_us > 0) e.host_dispatch = microseconds(module_us), fit.host_from_framework = true;
  }
}

// A GEMM that is compute-bound even at 80% efficiency; its time at peak over the padded tiles.
struct GemmRoofline {
  const HardwareSpec& hw;
  BytesPerSecond bw;
  [[nodiscard]] double padded_peak_time(const GemmPoint& g) const {
    return gemm_padded_flops(hw, g.m, g.n, g.k) / hw.peak(g.precision).si();
  }
  [[nodiscard]] bool compute_bound(const GemmPoint& g) const {
    return padded_peak_time(g) * 1.25 >= gemm_bytes(g) / bw.si();
  }
};

// Per precision: least squares t = t0 + x / eta with x = FLOPs / (peak * wave utilization).
// Precisions without measurements inherit the bf16 (else first fitted) efficiency, which is returned.
// A fit above the dense peak is refused: the file cannot be a measurement of this device.
double fit_gemm_efficiencies(const std::vector<GemmPoint>& points, const GemmRoofline& roof,
                             EfficiencyProfile& e, CalibrationFit& fit) {
  e.gemm.fill(0.0);  // unmeasured precisions are filled from the measured ones below
  for (Precision p : kAllPrecisions) {
    LeastSquares times;
    for (const auto& g : points) {
      if (g.precision != p || !roof.compute_bound(g)) continue;
      times.add(roof.padded_peak_time(g), g.seconds);
    }
    if (times.n == 0) continue;
    fit.compute_bound_points += times.n;
    double t0 = 0, slope = 0;
    // No negative fixed cost: without a usable line, or with t0 < 0, fit through the origin.
    if (!times.line(t0, slope) || t0 < 0) slope = times.slope_through_origin();
    const double eta = 1.0 / slope;
    if (eta > kMaxMeasuredFraction)
      throw BadInput(fmt::format("{} GEMMs in the file run at {:.0f}% of {}'s dense {} peak ({:.0f} TFLOP/s): faster "
                                 "than the datasheet allows; is the file from another device (--hardware), or the "
                                 "catalog peak a sparse figure?",
                                 to_string(p), 100 * eta, roof.hw.id, to_string(p), roof.hw.peak(p).si() / 1e12));
    e.gemm[index_of(p)] = std::clamp(eta, 0.05, 1.0);
  }
  double fallback = e.gemm[index_of(Precision::BF16)];
  for (Precision p : kAllPrecisions)
    if (fallback <= 0 && e.gemm[index_of(p)] > 0) fallback = e.gemm[index_of(p)];
  for (Precision p : kAllPrecisions)
    if (e.gemm[index_of(p)] <= 0) e.gemm[index_of(p)] = fallback;
  return fallback;
}

// Attention, convolutions and element-wise kernels: fitted from their own sections when present,
// else attention and convolutions keep the documented ratios to the GEMM ceiling.
void fit_other_kernels(const HardwareSpec& hw, const nlohmann::json& j, BytesPerSecond bw, double gemm_ceiling,
                       const std::string& origin, EfficiencyProfile& e, CalibrationFit& fit) {
  const double default_gemm = hw.efficiency.gemm[index_of(Precision::BF16)];
  if (default_gemm > 0) {
    e.attention = hw.efficiency.attention * gemm_ceiling / default_gemm;
    e.conv = hw.efficiency.conv * gemm_ceiling / default_gemm;
  }
  if (j.contains("attention") && j["attention"].is_array()) {
    fit_attention(hw, j["attention"], e, fit.attention_points, fit.attention_median_abs_error);
    fit_flash_attention2_from(hw, j["attention"], origin, fit);  // after the shape and tail terms
    fit_head_dim_rates_from(hw, j["attention"], origin, fit);
  }
  if (j.contains("conv") && j["conv"].is_array()) {
    fit_conv(hw, j["conv"], bw, e, fit.conv_points);
    if (j.contains("launch"))
      fit.conv_host_points = fit_conv_host_dispatch(hw, j["conv"], j["launch"], bw, e);
  }
  if (j.contains("vector") && j["vector"].is_array()) {
    fit_vector_bandwidth(hw, j["vector"], e, fit.vector_points);
    fit_strided_bandwidth(hw, j["vector"], e, fit.strided_points);
  }
}

// Self-check: the fitted per-kernel model against every GEMM point (each row an isolated call,
// timed alone).
void check_gemm_fit(const HardwareSpec& hw, const std::vector<GemmPoint>& points, const GemmRoofline& roof,
                    const EfficiencyProfile& e, CalibrationFit& fit) {
  std::vector<double> errors, compute_bound_errors;
  HardwareSpec fitted = hw;
  fitted.efficiency = e;
  const RateModel rates{&fitted, Runtime::Isolated, 0};
  for (const auto& g : points) {
    Operator op;
    op.cls = OpClass::Gemm;
    op.flops = op.hw_flops = 2 * g.m * g.n * g.k;
    op.bytes = gemm_bytes(g);
    op.m = g.m, op.n = g.n, op.k = g.k, op.precision = g.precision;
    const OpTiming t = time_operator(rates, op);
    errors.push_back(std::fabs(t.total().si() - g.seconds) / g.seconds);
    if (roof.compute_bound(g)) compute_bound_errors.push_back(errors.back());
  }
  fit.median_abs_error = median(errors);
  if (!compute_bound_errors.empty()) fit.compute_bound_median_abs_error = median(compute_bound_errors);
  fit.max_abs_error = *std::max_element(errors.begin(), errors.end());
}

// A number field of a JSON object, or -1 when it is missing or not a number.
double number_or_missing(const nlohmann::json& row, const char* field) {
  return row.is_object() && row.contains(field) && row[field].is_number() ? row[field].get<double>() : -1.0;
}

// A `board_power` reading in watts: within (0, TDP + 5%] (sensors overshoot a little), kept at most
// the TDP, where the power limit holds the board.
Watts board_watts(const HardwareSpec& hw, const nlohmann::json& row, const char* field, const std::string& what,
                  const std::string& origin) {
  const double tdp = hw.tdp.si(), w = number_or_missing(row, field);
  if (!(w > 0) || w > kMaxMeasuredFraction * tdp)
    throw BadInput(fmt::format("{}: board_power {} must be a number of watts in (0, {:.0f}] ({}'s TDP {:.0f} W, "
                               "+5% for sensor overshoot), got {}",
                               origin, what, kMaxMeasuredFraction * tdp, hw.id, tdp,
                               row.is_object() && row.contains(field) ? row[field].dump() : "nothing"));
  return Watts(std::min(w, tdp));
}

// The `board_power.gemm` row's shape and precision.
GemmPoint board_power_gemm(const HardwareSpec& hw, const nlohmann::json& gemm, const std::string& origin) {
  const bool named = gemm.contains("dtype") && gemm["dtype"].is_string();
  const auto precision = precision_of_dtype(named ? gemm["dtype"].get<std::string>() : "");
  const GemmPoint g{number_or_missing(gemm, "m"), number_or_missing(gemm, "n"), number_or_missing(gemm, "k"), 0,
                    precision.value_or(Precision::BF16)};
  if (!precision || !hw.supports(*precision) || !(g.m > 0 && g.n > 0 && g.k > 0))
    throw BadInput(fmt::format("{}: board_power.gemm needs m, n and k > 0 and a dtype {} runs (e.g. \"bfloat16\")",
                               origin, hw.id));
  return g;
}

// The share of a GEMM's body its memory traffic fills, t_memory / t_compute, at the fitted rates.
double gemm_memory_share(const HardwareSpec& hw, const GemmPoint& g, BytesPerSecond bw, const EfficiencyProfile& e) {
  const double t_memory = gemm_bytes(g) / bw.si();
  const double t_compute = 2.0 * g.m * g.n * g.k / (hw.peak(g.precision).si() * e.gemm[index_of(g.precision)]);
  return std::min(1.0, t_memory / t_compute);
}

// Board power (physics/power.hpp) from `board_power` readings: the floor from an idle GPU holding
// its context, the memory term from a device-to-device copy (a body that is all memory traffic),
// the compute term from a large GEMM: at the power limit (>= 97% of TDP) it says only that
// compute-bound kernels sit there (floor + compute = 1); below it, what is left after the floor and
// the GEMM's own memory share.
void fit_board_power(const HardwareSpec& hw, const nlohmann::json& readings, BytesPerSecond bw,
                     const std::string& origin, EfficiencyProfile& e, CalibrationFit& fit) {
  const double tdp = hw.tdp.si();
  if (!(tdp > 0)) throw BadInput(origin + ": board_power needs the device's TDP, and " + hw.id + " lists none");
  const auto section = [&](const char* name) {
    return readings.is_object() ? readings.value(name, nlohmann::json()) : nlohmann::json();
  };
  fit.board_idle = board_watts(hw, readings, "idle_w", "idle_w", origin);
  fit.board_copy = board_watts(hw, section("copy"), "power_w", "copy.power_w", origin);
  const double idle_w = fit.board_idle.si(), copy_w = fit.board_copy.si();
  if (copy_w <= idle_w)
    throw BadInput(fmt::format("{}: board_power copy.power_w {:g} W is not above idle_w {:g} W: a copy kernel "
                               "streaming memory draws more than an idle GPU; were the readings taken while it ran?",
                               origin, copy_w, idle_w));
  const nlohmann::json gemm = section("gemm");
  fit.board_gemm = board_watts(hw, gemm, "power_w", "gemm.power_w", origin);
  const double gemm_w = fit.board_gemm.si();
  const GemmPoint g = board_power_gemm(hw, gemm, origin);
  e.power_idle = idle_w / tdp;
  e.power_memory = copy_w / tdp - e.power_idle;
  e.power_compute = gemm_w >= 0.97 * tdp
                        ? 1.0 - e.power_idle
                        : gemm_w / tdp - e.power_idle - e.power_memory * gemm_memory_share(hw, g, bw, e);
  if (!(e.power_compute > 0))
    throw BadInput(fmt::format("{}: board_power gemm.power_w {:g} W leaves nothing for the math over the idle "
                               "floor and the GEMM's memory traffic ({:g} W idle, {:g} W copy): a large GEMM draws "
                               "more than a copy; check the readings",
                               origin, gemm_w, idle_w, copy_w));
  fit.board_power = true;
}

std::string calibration_source(const std::string& origin, const CalibrationFit& fit, const EfficiencyProfile& e) {
  return fmt::format("calibrated from {} ({} GEMMs, median |error| {:.1f}%, {:.1f}% over the {} "
                     "compute-bound{}{}{}{}{})",
                     origin, fit.gemm_points, 100 * fit.median_abs_error,
                     100 * fit.compute_bound_median_abs_error, fit.compute_bound_points,
                     fit.attention_points ? fmt::format("; {} attention kernels, {:.1f}%", fit.attention_points,
                                                        100 * fit.attention_median_abs_error)
                                          : "",
                     fit.conv_points || !e.conv_measured.empty()
                         ? fmt::format("; {} convolutions fitted, {} conv shapes timed", fit.conv_points,
                                       e.conv_measured.size())
                         : "",
                     fit.vector_points ? fmt::format("; {} element-wise kernels, {} strided ones",
                                                     fit.vector_points, fit.strided_points)
                                       : "",
                     fit.host_from_framework
                         ? fmt::format("; eager host cost from the framework microbenchmark{}",
                                       fit.conv_host_points
                                           ? fmt::format(", a convolution call's from {} batch-1 conv rows",
                                                         fit.conv_host_points)
                                           : "")
                         : "",
                     fit.board_power ? fmt::format("; board power idle {:.0f} W, copy {:.0f} W, GEMM {:.0f} W",
                                                   fit.board_idle.si(), fit.board_copy.si(), fit.board_gemm.si())
                                     : "");
}

// The sustained BF16 matmul rate from `gemm_sustained` (bench/gpu/microbench.py: 8192^3 GEMMs back
// to back for seconds, per-window rates; sustained_TFLOPs is the median window of the second half,
// once the power limit has set the clock): as a fraction of the dense BF16 peak, checked like every
// measured rate (at most 5% above the datasheet). No bfloat16 row: nothing is fitted.
void fit_sustained_gemm(const HardwareSpec& hw, const nlohmann::json& rows, const std::string& origin,
                        EfficiencyProfile& e, CalibrationFit& fit) {
  if (!rows.is_array()) throw BadInput(origin + ": gemm_sustained must be a list of rows (bench/gpu/microbench.py)");
  for (const auto& row : rows) {
    if (!row.is_object() || row.value("dtype", std::string()) != "bfloat16") continue;
    const double tflops = number_or_missing(row, "sustained_TFLOPs");
    const double peak = hw.peak(Precision::BF16).si();
    const double fraction = tflops * 1e12 / peak;
    if (!(tflops > 0) || !(peak > 0) || fraction > kMaxMeasuredFraction)
      throw BadInput(fmt::format("{}: gemm_sustained bfloat16 sustained_TFLOPs must be in (0, {:.0f}] ({}'s dense "
                                 "BF16 peak, +5%), got {}",
                                 origin, kMaxMeasuredFraction * peak / 1e12, hw.id,
                                 row.contains("sustained_TFLOPs") ? row["sustained_TFLOPs"].dump() : "nothing"));
    e.sustained_gemm = std::min(fraction, 1.0);
    e.sustained_gemm_source = fmt::format("{}: gemm_sustained, {:g}^3 bfloat16 back to back for {:.1f} s, median "
                                          "window of the second half {:.1f} TFLOP/s",
                                          origin, number_or_missing(row, "m"), number_or_missing(row, "seconds_total"),
                                          tflops);
    fit.sustained = true;
    return;
  }
}

}  // namespace

std::string microbenchmark_device(const std::string& json_text, const std::string& origin) {
  return parse_microbenchmarks(json_text, origin).value("hardware", "");
}

CalibrationFit fit_calibration(const HardwareSpec& hw, const std::string& json_text,
                               const std::string& origin) {
  const nlohmann::json j = parse_microbenchmarks(json_text, origin);
  CalibrationFit fit;
  EfficiencyProfile& e = fit.profile;
  e = hw.efficiency;
  const bool has_attention = j.contains("attention") && j["attention"].is_array();
  if (!j.contains("memory") && !j.contains("gemm") && has_attention) {
    fit_attention_only(hw, j["attention"], origin, fit);
    return fit;
  }
  if (!j.contains("memory") || !j.contains("gemm") || !j["gemm"].is_array())
    throw BadInput(origin + ": expected the microbenchmark format with 'memory' and 'gemm' "
                   "(see shared/calibration/*.json and bench/gpu/microbench.py), or an 'attention' section "
                   "of FlashAttention-2 kernel timings alone");
  const auto& mem = j["memory"];
  // Weights are streamed (read once): the read-reduce kernel is the closest microbenchmark.
  const double read_gbs = mem.value("read_reduce_GBps", mem.value("d2d_copy_GBps_read_plus_write", 0.0));
  if (read_gbs <= 0) throw BadInput(origin + ": memory.read_reduce_GBps missing or not positive");
  e.memory = read_gbs * 1e9 / hw.memory_bandwidth.si();
  if (e.memory > kMaxMeasuredFraction)
    throw BadInput(fmt::format("{}: memory.read_reduce_GBps {:g} exceeds {}'s datasheet {:.0f} GB/s ({:.2f}x): the "
                               "file does not measure this device (check --hardware) or the catalog's bandwidth is "
                               "wrong",
                               origin, read_gbs, hw.id, hw.memory_bandwidth.si() / 1e9, e.memory));
  e.memory = std::min(e.memory, 1.0);
  const BytesPerSecond bw = hw.memory_bandwidth * e.memory;

  const std::vector<GemmPoint> points = gemm_points_of(hw, j["gemm"], origin);
  fit.gemm_points = static_cast<int>(points.size());
  fit_call_costs(hw, points, bw, j, e, fit);
  const GemmRoofline roof{hw, bw};
  const double gemm_ceiling = fit_gemm_efficiencies(points, roof, e, fit);
  fit_other_kernels(hw, j, bw, gemm_ceiling, origin, e, fit);
  if (j.contains("board_power")) fit_board_power(hw, j["board_power"], bw, origin, e, fit);
  if (j.contains("gemm_sustained")) fit_sustained_gemm(hw, j["gemm_sustained"], origin, e, fit);
  check_gemm_fit(hw, points, roof, e, fit);
  e.source = calibration_source(origin, fit, e);
  return fit;
}

std::string toml_string(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string calibration_toml(const std::string& device_id, const CalibrationFit& fit) {
  const EfficiencyProfile& e = fit.profile;
  std::string out = "[[calibration]]\n";
  out += fmt::format("device = \"{}\"\n", device_id);
  // Only a FlashAttention-2 rate fitted from this file: one the device already had keeps its own entry.
  const auto flash_attention2 = [&] {
    if (fit.flash_attention2_points == 0) return std::string();
    std::string text = fmt::format("flash_attention2_efficiency = {:.4f}\n", e.flash_attention2);
    if (fit.flash_attention2_backward_points > 0)
      text += fmt::format("flash_attention2_backward_efficiency = {:.4f}\n", e.flash_attention2_backward);
    return text + fmt::format("flash_attention2_source = {}\n", toml_string(e.flash_attention2_source));
  };
  // The default kernel's head-dim table: its source among the keys, its rows among the subtables.
  const bool head_dims = fit.head_dim_rate_points > 0;
  const std::string head_dim_source =
      head_dims ? fmt::format("attention_head_dim_source = {}\n", toml_string(e.attention_head_dim_source)) : "";
  const std::string backward_rate =
      head_dims && e.attention_backward > 0
          ? fmt::format("attention_backward_relative_rate = {:.4f}\n", e.attention_backward) : "";
  const auto head_dim_rows = [&] {
    std::string text;
    if (!head_dims) return text;
    for (const HeadDimRate& r : e.attention_head_dim_rates)
      text += fmt::format("[[calibration.attention_head_dim_rate]]\nhead_dim = {}\nrelative_rate = {:.4f}\n",
                          r.head_dim, r.relative_rate);
    for (const HeadDimRate& r : e.attention_backward_head_dim_rates)
      text += fmt::format("[[calibration.attention_head_dim_rate]]\npass = \"backward\"\nhead_dim = {}\n"
                          "relative_rate = {:.4f}\n", r.head_dim, r.relative_rate);
    return text;
  };
  if (fit.partial)  // the rest stays the device's
    return out + flash_attention2() + head_dim_source + backward_rate + head_dim_rows();
  out += fmt::format("source = {}\n", toml_string(e.source));
  out += fmt::format("memory_efficiency = {:.4f}\n", e.memory);
  out += fmt::format("attention_efficiency = {:.4f}\n", e.attention);
  if (e.attention_half_keys > 0)
    out += fmt::format("attention_half_keys = {:.1f}\n", e.attention_half_keys);
  if (e.attention_tail > 0) out += fmt::format("attention_tail = {:.3f}\n", e.attention_tail);
  out += flash_attention2() + head_dim_source + backward_rate;
  out += fmt::format("conv_efficiency = {:.4f}\n", e.conv);
  if (e.vector_memory > 0) out += fmt::format("vector_memory_efficiency = {:.4f}\n", e.vector_memory);
  if (e.strided_memory > 0)
    out += fmt::format("strided_memory_efficiency = {:.4f}\n", e.strided_memory);
  out += fmt::format("kernel_overhead_us = {:.2f}\n", e.kernel_overhead.si() * 1e6);
  out += fmt::format("host_dispatch_us = {:.2f}\n", e.host_dispatch.si() * 1e6);
  if (e.isolated_call.si() > 0) out += fmt::format("isolated_call_us = {:.2f}\n", e.isolated_call.si() * 1e6);
  if (e.conv_host_dispatch.si() > 0)
    out += fmt::format("conv_host_dispatch_us = {:.2f}\n", e.conv_host_dispatch.si() * 1e6);
  if (fit.sustained)
    out += fmt::format("sustained_gemm_efficiency = {:.4f}\nsustained_gemm_source = {}\n", e.sustained_gemm,
                       toml_string(e.sustained_gemm_source));
  if (fit.board_power)
    out += fmt::format("power_idle_fraction = {:.4f}\npower_memory_fraction = {:.4f}\n"
                       "power_compute_fraction = {:.4f}\n", e.power_idle, e.power_memory, e.power_compute);
  out += "[calibration.gemm_efficiency]\n";
  for (Precision p : kAllPrecisions) out += fmt::format("{} = {:.4f}\n", to_string(p), e.gemm[index_of(p)]);
  for (const MeasuredConv& c : e.conv_measured)
    out += fmt::format("[[calibration.conv_measured]]\nn = {}\nk = {}\nout_pixels = {}\nbatch = {}\n"
                       "tflops = {:.2f}\n", c.n, c.k, c.out_pixels, c.batch, c.flops_per_s / 1e12);
  return out + head_dim_rows();
}

}  // namespace mlsysim
