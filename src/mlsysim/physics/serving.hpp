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

// A serving engine's host work per iteration that its GPU waits for: around the CUDA-graph replay
// of the forward pass, the model runner copies the step's inputs to the GPU, launches the graph,
// runs the sampler's ops outside the graph, copies the sampled tokens back and synchronizes before
// the scheduler can build the next step (vLLM's V1 GPU model runner; counted in docs/SERVING.md,
// "Engine iteration"). Each such framework call costs the device's calibrated eager host dispatch
// (EfficiencyProfile::host_dispatch, from the framework microbenchmark). An engine that overlaps
// scheduling with the GPU (SGLang's overlap scheduler, vLLM --async-scheduling) hides part of it:
// `--step-host-us` sets the engine's own figure.
inline constexpr int kServingStepHostCalls = 20;
Seconds serving_step_host_time(Seconds host_dispatch);

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

// What a serving runtime holds besides the weights and the KV pool, as vLLM (V1, 0.17+) measures
// it at start-up before sizing the pool (gpu_worker.determine_available_memory):
//   KV pool = gpu_memory_utilization x device total - weights - profile peak - runtime buffers
// The profile peak is the larger of a forward pass over max_num_batched_tokens tokens and a
// sampler pass over one row of logits per sequence of that batch: min(max_num_seqs,
// max_num_batched_tokens) rows, since each sequence holds at least one token. The sampler's
// top-k/top-p path sorts each row: the fp32 logits stay live beside their sorted fp32 copy and
// the int64 indices, 16 B per (row, vocabulary entry) over the full vocabulary on every
// tensor-parallel rank (logits are gathered before sampling). Runtime buffers are the non-PyTorch growth during profiling
// (cuBLAS workspaces; with tensor parallelism the all-reduce and NCCL buffers), measured values.
struct ServingReserve {
  Bytes forward_peak{}, sampler_peak{}, runtime_buffers{};
  double sampler_rows = 0;  // sequences in the profiling batch: min(max_num_seqs, batched tokens)
  [[nodiscard]] Bytes profile_peak() const {
    return forward_peak > sampler_peak ? forward_peak : sampler_peak;
  }
  [[nodiscard]] Bytes total() const { return profile_peak() + runtime_buffers; }
};
// Sampler peak: rows x vocabulary x (4 B logits + 4 B sorted values + 8 B int64 indices).
Bytes sampler_peak_bytes(double rows, double vocabulary);
// vLLM 0.19 on H100, "non-torch forward increase memory" of its profiling log line: 0.25 GiB on
// one GPU, 2.07-2.17 GiB per GPU at tensor parallel 2 and 4 (Llama-3.1-8B, Qwen2.5-7B; llm-d-planner
// accuracy/results/v0.19.0/accuracy_report.md, 'Sensitivity: Tensor Parallelism').
Bytes serving_runtime_buffers(int tensor_parallel);

// Nearest-rank percentile (q in [0, 100]) of a sample; reorders `values` (a partial sort). 0 when empty.
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
// The exponential mean (scale) s whose draws, clipped at `cap`, average `mean`:
// E[min(X, c)] = s (1 - e^(-c/s)) for X ~ Exp(s), increasing in s toward c; needs mean < cap.
// cap <= 0: no cap, `mean` itself.
double exponential_scale_for_capped_mean(double mean, double cap);

}  // namespace mlsysim
