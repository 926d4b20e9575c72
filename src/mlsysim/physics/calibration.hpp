// Calibration: fit a device's efficiency profile from microbenchmarks (the JSON format of
// shared/calibration: HBM copy/read bandwidth and GEMM timings by shape and dtype).
//
// Fits, all closed-form:
//  * memory efficiency  = measured streaming read bandwidth / datasheet bandwidth;
//  * per-dtype GEMM efficiency and fixed per-call time from a least-squares line
//        t = t0 + FLOPs / (eta x peak x wave_utilization(m, n, k))
//    over the compute-bound GEMMs (those whose FLOP time exceeds their byte time);
//  * host dispatch (eager per-op cost) = median of t - bytes / achieved bandwidth over the
//    memory-bound GEMMs (matrix-vector products), which is what an isolated eager call pays;
//  * the sustained BF16 matmul rate = the `gemm_sustained` row's sustained_TFLOPs / dense peak.
#pragma once

#include <string>
#include <vector>

#include "mlsysim/catalog/hardware.hpp"

namespace mlsysim {

struct CalibrationFit {
  EfficiencyProfile profile;
  int gemm_points = 0, compute_bound_points = 0, memory_bound_points = 0;
  int attention_points = 0, conv_points = 0;  // optional sections used (0: documented ratios)
  int vector_points = 0;                       // element-wise rows used (0: vector kernels use memory)
  int strided_points = 0;                      // strided element-wise rows used (0: as vector)
  bool host_from_framework = false;  // host dispatch from the eager-framework microbenchmark
  int conv_host_points = 0;          // batch-1 conv rows that set conv_host_dispatch (0: not fitted)
  double median_abs_error = 0;  // of the fitted model over all GEMM points (fraction)
  double max_abs_error = 0;
  // Over the compute-bound GEMMs only (the rows the rate is fitted to; the memory-bound GEMVs at
  // tiny sizes time the host and the launch as much as the GPU).
  double compute_bound_median_abs_error = 0;
  double attention_median_abs_error = 0;  // of the attention fit over its rows
  int flash_attention2_points = 0;             // FlashAttention-2 forward kernel rows used (0: none)
  int flash_attention2_backward_points = 0;    // and backward ones (0: the backward uses the forward's rate)
  double flash_attention2_median_abs_error = 0;
  int head_dim_rate_points = 0;  // default-kernel rows at head dims other than 128 (0: no table fitted)
  // Only kernel timings were given (no memory or GEMM rows): the fit is what they hold (the
  // FlashAttention-2 rate, the default kernel's head-dim table), and calibration_toml writes just
  // that, leaving the device's other rates as they are.
  bool partial = false;
  // Board power readings used (EfficiencyProfile::power_*), watts; false: the published defaults.
  bool board_power = false;
  Watts board_idle{}, board_copy{}, board_gemm{};
  // The sustained BF16 matmul rate (EfficiencyProfile::sustained_gemm) from the `gemm_sustained`
  // section: back-to-back GEMMs for seconds, the median window of the second half; false: none.
  bool sustained = false;
};

// The device a microbenchmark file names (its 'hardware' field, "" if none), after checking the
// file's fields have their types (BadInput naming the row and field otherwise).
std::string microbenchmark_device(const std::string& json_text, const std::string& origin);
// `hw` supplies datasheet peaks and compute units; the measurements come from `json_text`.
CalibrationFit fit_calibration(const HardwareSpec& hw, const std::string& json_text,
                               const std::string& origin);
// The median of a fit's residuals (0 for none).
double median(std::vector<double> values);
// A TOML basic string: the text in double quotes, with quotes and backslashes escaped.
std::string toml_string(const std::string& text);
// The calibration as catalog TOML (`[[calibration]]`), loadable with --calibration; a partial fit
// writes only what it fitted.
std::string calibration_toml(const std::string& device_id, const CalibrationFit& fit);

}  // namespace mlsysim
