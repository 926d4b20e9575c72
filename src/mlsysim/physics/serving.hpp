// Serving formulas that are not a single forward pass: speculative decoding's expected accepted
// tokens, paged vs static KV-cache allocation, percentiles of latency samples, and a deterministic
// random-number toolkit for the request-level simulator. The forward passes themselves are timed
// by the engine (solvers/engine.hpp); nothing here duplicates the roofline.
#pragma once

#include <cstdint>
#include <vector>

#include "mlsysim/units/quantity.hpp"

namespace mlsysim {

using namespace units;  // NOLINT

// Speculative decoding (Leviathan, Kalman & Matias 2023, "Fast Inference from Transformers via
// Speculative Decoding", sec. 3.1, eq. (1)): with K drafted tokens each accepted independently with
// probability alpha, one verify step of the target model yields on average
//   E[tokens] = (1 - alpha^(K+1)) / (1 - alpha)      (alpha < 1;  K + 1 when alpha = 1)
// tokens (the accepted prefix plus the target's own token). Throws BadInput outside alpha in [0, 1]
// or K < 1.
double speculative_expected_tokens(double alpha, int k);

// KV-cache allocation of one request of `tokens` tokens.
//  * Static (contiguous, as in FasterTransformer / Orca, see Kwon et al. 2023 sec. 3): the request
//    reserves `reserved_tokens` (the maximum length) up front.
//  * Paged (PagedAttention, Kwon et al. 2023 sec. 4.2): ceil(tokens / page) blocks of `page`
//    tokens, allocated on demand; only the last block is partly empty (internal fragmentation).
struct KvAllocation {
  double used_tokens = 0;       // tokens actually holding keys/values
  double allocated_tokens = 0;  // tokens' worth of memory set aside
  // used / allocated: the "effective KV utilization" of Kwon et al. 2023, Fig. 2
  [[nodiscard]] double utilization() const {
    return allocated_tokens > 0 ? used_tokens / allocated_tokens : 0;
  }
  [[nodiscard]] double waste() const { return 1.0 - utilization(); }
};
KvAllocation static_kv_allocation(double tokens, double reserved_tokens);
KvAllocation paged_kv_allocation(double tokens, int page_tokens);
// Blocks (pages) needed for `tokens` tokens.
inline long pages_for(long tokens, int page_tokens) {
  return (tokens + page_tokens - 1) / page_tokens;
}

// Nearest-rank percentile (q in [0, 100]) of a sample; sorts `values` in place. 0 when empty.
double percentile(std::vector<double>& values, double q);

// Log-spaced histogram for latency percentiles over millions of samples in O(1) memory:
// bins of 0.5 % relative width from 1 us to ~3 h, so a percentile is exact to +-0.5 %.
class LatencyHistogram {
 public:
  LatencyHistogram();
  void add(double seconds, double weight = 1.0);
  [[nodiscard]] double percentile(double q) const;  // q in [0, 100]; 0 when empty
  [[nodiscard]] double count() const { return total_; }
  [[nodiscard]] double mean() const { return total_ > 0 ? sum_ / total_ : 0; }

 private:
  std::vector<double> bins_;
  double total_ = 0, sum_ = 0;
};

// Deterministic randomness: std::mt19937_64 is specified bit-exactly by the C++ standard, while
// std:: distributions are not (their output differs across standard libraries), so draws are made
// by inverse CDF from the generator's raw 64-bit output.
double uniform_from_bits(std::uint64_t bits);  // in [0, 1): the top 53 bits
// Exponential with the given mean by inversion: -mean * ln(1 - u) (Devroye 1986, ch. 2.2).
double exponential_from_uniform(double u, double mean);

}  // namespace mlsysim
