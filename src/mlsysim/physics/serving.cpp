#include "mlsysim/physics/serving.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "mlsysim/errors.hpp"

namespace mlsysim {

Bytes sampler_peak_bytes(double rows, double vocabulary) {
  constexpr double kLogitsFp32 = 4.0, kSortedFp32 = 4.0, kIndexInt64 = 8.0;
  return Bytes(rows * vocabulary * (kLogitsFp32 + kSortedFp32 + kIndexInt64));
}

Bytes serving_runtime_buffers(int tensor_parallel) {
  // Measured, not derived: see the header. One GPU: cuBLAS/cuDNN workspaces and the CUDA-graph
  // bookkeeping; tensor parallel adds the custom all-reduce IPC buffers and NCCL's channels.
  return tensor_parallel > 1 ? gibibytes(2.1) : gibibytes(0.25);
}

Seconds serving_step_host_time(Seconds host_dispatch) { return host_dispatch * kServingStepHostCalls; }

double speculative_expected_tokens(double alpha, int k) {
  if (!(alpha >= 0.0 && alpha <= 1.0))
    throw BadInput("--acceptance-rate (draft acceptance rate alpha) must be in [0, 1], got " +
                   std::to_string(alpha) + ": use e.g. 0.6-0.8 for a same-family draft model");
  if (k < 1 || k > 64)
    throw BadInput("--draft-tokens (K) must be in [1, 64], got " + std::to_string(k) +
                   ": typical K is 3-8");
  if (alpha >= 1.0) return k + 1.0;
  // Leviathan et al. 2023, eq. (1).
  return (1.0 - std::pow(alpha, k + 1)) / (1.0 - alpha);
}

KvAllocation static_kv_allocation(double tokens, double reserved_tokens) {
  return {tokens, std::max(tokens, reserved_tokens)};
}

KvAllocation paged_kv_allocation(double tokens, int page_tokens) {
  if (page_tokens < 1)
    throw BadInput("--page-size must be >= 1 token, got " + std::to_string(page_tokens) +
                   ": vLLM uses 16");
  const double pages = std::ceil(tokens / page_tokens);
  return {tokens, pages * page_tokens};
}

double percentile(std::vector<double>& values, double q) {
  if (values.empty()) return 0;
  // Nearest-rank definition: the smallest value with at least q% of the sample at or below it.
  const double rank = std::ceil(q / 100.0 * static_cast<double>(values.size()));
  const size_t idx = static_cast<size_t>(std::clamp(rank, 1.0, static_cast<double>(values.size()))) - 1;
  // The value a full sort would put at idx, in linear time (selection, not sorting).
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(idx), values.end());
  return values[idx];
}

namespace {
constexpr double kHistMin = 1e-6;        // 1 us
constexpr double kHistRatio = 1.005;     // 0.5 % bins
constexpr int kHistBins = 4400;          // 1e-6 * 1.005^4400 ~ 3.4e3 s
const double kLogRatio = std::log(kHistRatio);
}  // namespace

LatencyHistogram::LatencyHistogram() : bins_(kHistBins + 2, 0.0) {}

void LatencyHistogram::add(double s, double w) {
  int b;
  if (!(s > kHistMin)) b = 0;
  else b = 1 + static_cast<int>(std::log(s / kHistMin) / kLogRatio);
  b = std::min(b, kHistBins + 1);
  bins_[b] += w;
  total_ += w;
  sum_ += s * w;
}

double LatencyHistogram::percentile(double q) const {
  if (total_ <= 0) return 0;
  const double target = q / 100.0 * total_;
  double acc = 0;
  for (int b = 0; b < static_cast<int>(bins_.size()); ++b) {
    acc += bins_[b];
    if (acc >= target && bins_[b] > 0) {
      if (b == 0) return kHistMin;
      // Geometric centre of the bin [min r^(b-1), min r^b).
      return kHistMin * std::pow(kHistRatio, b - 0.5);
    }
  }
  return kHistMin * std::pow(kHistRatio, kHistBins);
}

double uniform_from_bits(std::uint64_t bits) {
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

double exponential_from_uniform(double u, double mean) { return -mean * std::log1p(-u); }

double exponential_scale_for_capped_mean(double mean, double cap) {
  if (cap <= 0) return mean;
  if (!(mean > 0 && mean < cap))
    throw BadInput(fmt::format("a mean length of {} cannot come from draws capped at {}: it must be below the cap",
                               mean, cap));
  const auto clipped_mean = [cap](double s) { return s * -std::expm1(-cap / s); };
  double lo = mean, hi = mean;  // clipped_mean(mean) < mean, so the root is above it
  while (clipped_mean(hi) < mean) lo = hi, hi *= 2;
  for (int i = 0; i < 200 && hi - lo > 1e-12 * mean; ++i) {  // bisection on an increasing function
    const double mid = 0.5 * (lo + hi);
    (clipped_mean(mid) < mean ? lo : hi) = mid;
  }
  return hi;
}

}  // namespace mlsysim
