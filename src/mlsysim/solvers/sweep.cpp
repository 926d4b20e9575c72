#include "mlsysim/solvers/sweep.hpp"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <optional>

#include "mlsysim/errors.hpp"
#include "mlsysim/solvers/worker_threads.hpp"

namespace mlsysim {

size_t SweepSpace::size() const {
  auto n = [](size_t k) { return std::max<size_t>(k, 1); };
  return models.size() * hardware.size() * n(phases.size()) * n(batches.size()) *
         n(seq_lens.size()) * n(contexts.size()) * n(precisions.size());
}

namespace {

// The i-th configuration of the product (mixed-radix decoding, precision fastest). A sequence
// length or context the step does not use (step_takes_seq_len/step_takes_context) is left unset
// at its first value and makes the others repeats of that one: nullopt.
std::optional<SolveRequest> request_at(const SweepSpace& s, size_t i, const ModelSpec*& model,
                                       const HardwareSpec*& hw) {
  SolveRequest r;
  r.runtime = s.runtime;
  r.keep_operators = false;
  auto take = [&i](size_t radix) {
    const size_t k = radix ? i % radix : 0;
    if (radix) i /= radix;
    return k;
  };
  if (!s.precisions.empty()) r.precision = s.precisions[take(s.precisions.size())];
  const size_t context = take(s.contexts.size()), seq_len = take(s.seq_lens.size());
  r.batch = s.batches.empty() ? 1 : s.batches[take(s.batches.size())];
  if (!s.phases.empty()) r.phase = s.phases[take(s.phases.size())];
  hw = s.hardware[take(s.hardware.size())];
  model = s.models[take(s.models.size())];
  const Phase phase = resolved_phase(*model, r.phase);
  if (!s.contexts.empty()) {
    if (step_takes_context(*model, phase)) r.context = s.contexts[context];
    else if (context > 0) return std::nullopt;
  }
  if (!s.seq_lens.empty()) {
    if (step_takes_seq_len(*model, phase)) r.seq_len = s.seq_lens[seq_len];
    else if (seq_len > 0) return std::nullopt;
  }
  return r;
}

}  // namespace

SweepResult run_sweep(const SweepSpace& space, long long threads) {
  SweepResult result;
  const size_t total = space.size();
  if (total == 0) throw BadInput("the sweep is empty: give at least one --model and one --hardware");
  result.threads = worker_thread_count(threads, total);
  // Per slot: a point, a skip (invalid combination) or a repeat (a field that does not apply).
  std::vector<std::optional<SweepPoint>> slots(total);
  std::vector<char> repeat(total, 0);
  std::mutex reason_mutex;
  const auto start = std::chrono::steady_clock::now();
  auto worker = [&](unsigned t) {
    for (size_t i = t; i < total; i += result.threads) {
      const ModelSpec* model = nullptr;
      const HardwareSpec* hw = nullptr;
      const std::optional<SolveRequest> r = request_at(space, i, model, hw);
      if (!r) {
        repeat[i] = 1;
        continue;
      }
      try {
        const Profile p = solve(*model, *hw, *r);
        slots[i] = SweepPoint{model, hw, p.phase, p.batch, p.seq_len, p.context, p.precision,
                              p.latency, p.bottleneck, p.mfu, p.throughput, p.memory.total(),
                              p.feasible};
      } catch (const BadInput& e) {
        std::lock_guard<std::mutex> lock(reason_mutex);
        if (result.first_skip_reason.empty()) result.first_skip_reason = e.what();
      }
    }
  };
  run_workers(result.threads, worker);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.points.reserve(total);
  for (size_t i = 0; i < total; ++i) {
    if (slots[i]) result.points.push_back(*slots[i]);
    else if (repeat[i]) ++result.repeats;
    else ++result.skipped;
  }
  result.evaluated = result.points.size();
  return result;
}

}  // namespace mlsysim
