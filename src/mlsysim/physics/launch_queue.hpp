// An eager framework's launch queue: the host issues kernels one by one (Python, dispatcher, launch
// API) and the GPU runs them in stream order. The queue is deep (CUDA allows ~1000 pending
// launches), so the host runs ahead while a long kernel executes and the GPU waits only when it
// drains the queue. For kernel i issued when the host finishes its dispatch at H_i:
//
//   H_i = H_{i-1} + h_i,   start_i = max(E_{i-1}, H_i),   E_i = start_i + g_i
//
// (a two-stage tandem pipeline, e.g. Hockney & Jesshope's pipeline timing; the step ends at E_n).
// The GPU idles start_i - E_{i-1} before kernel i: that is the host time the step exposes, and
// E_n = sum(g_i) + sum(idle_i). Summing max(h_i, g_i) per operator instead overstates a step whose
// long kernels (GEMMs) hide the dispatch of the short ones that follow; sum(h_i) alone ignores
// the GPU. Measured eager Llama-3-8B prefill on H100 (bench/gpu/results/H100_e2e_profile.json)
// is the case: 512 tokens take 29 ms, about the same as 128 tokens, while the kernels alone take
// 20 ms and the host ~28 ms.
#pragma once

#include <vector>

#include "mlsysim/units/quantity.hpp"

namespace mlsysim {

using units::Seconds;

struct QueuedOperator {
  Seconds host{};  // host dispatch of one instance
  Seconds gpu{};   // kernel bodies plus launch gaps of one instance
  double count = 1;  // instances
};

// Exposed host time (GPU idle waiting for the host) of each operator over all its instances, for
// operators in program order. Consecutive operators with the same count > 1 run as a block that
// many times (a layer stack: op1 op2 ... op1 op2 ...); others run their instances back to back.
std::vector<Seconds> exposed_host_time(const std::vector<QueuedOperator>& ops);
// The same into `exposed` (resized to ops.size()): no allocation once its capacity suffices.
void exposed_host_time(const std::vector<QueuedOperator>& ops, std::vector<Seconds>& exposed);

}  // namespace mlsysim
