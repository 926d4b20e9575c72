#include "mlsysim/physics/launch_queue.hpp"

#include <algorithm>
#include <cmath>

namespace mlsysim {
namespace {

// The queue's state in absolute time: when the host finished its last dispatch, and when the GPU
// finishes its last kernel.
struct Clock {
  double host = 0, gpu = 0;
};

// One instance of an operator enters the queue; returns how long the GPU idled waiting for it.
double issue(Clock& c, double host, double gpu) {
  c.host += host;
  const double start = std::max(c.gpu, c.host);
  const double idle = start - c.gpu;
  c.gpu = start + gpu;
  return idle;
}

// Runs ops[first, last) `repeats` times interleaved (a block of layers), adding each operator's
// exposed host time to `exposed`; `scale` < 1 runs a fraction of an instance (a fractional count's
// remainder). Two shortcuts keep long stacks cheap, both exact: once an iteration ends with the GPU
// as far ahead of the host as it started, every later iteration repeats it; once an iteration has
// no idle time and the lead grew, the GPU never waits again (the lead only grows, and the idle
// before a kernel, max(0, h - lead), never rises with the lead).
void run_block(const std::vector<QueuedOperator>& ops, size_t first, size_t last, double repeats, double scale,
               Clock& c, std::vector<Seconds>& exposed) {
  thread_local std::vector<double> idle;  // this iteration's idle per operator (reused: solves are hot)
  idle.assign(last - first, 0.0);
  for (double done = 0; done < repeats; ++done) {
    const Clock before = c;
    double idle_sum = 0;
    for (size_t i = first; i < last; ++i) {
      idle[i - first] = issue(c, scale * ops[i].host.si(), scale * ops[i].gpu.si());
      idle_sum += idle[i - first];
      exposed[i] += Seconds(idle[i - first]);
    }
    const double remaining = repeats - done - 1;
    const double lead_before = before.gpu - before.host, lead_after = c.gpu - c.host;
    const bool steady = std::fabs(lead_after - lead_before) <= 1e-15;
    const bool gpu_bound = idle_sum == 0 && lead_after >= lead_before;
    if (remaining > 0 && (steady || gpu_bound)) {
      for (size_t i = first; i < last; ++i) exposed[i] += Seconds(idle[i - first] * remaining);
      c.host += (c.host - before.host) * remaining;
      c.gpu += (c.gpu - before.gpu) * remaining;
      return;
    }
  }
}

}  // namespace

std::vector<Seconds> exposed_host_time(const std::vector<QueuedOperator>& ops) {
  std::vector<Seconds> exposed;
  exposed_host_time(ops, exposed);
  return exposed;
}

void exposed_host_time(const std::vector<QueuedOperator>& ops, std::vector<Seconds>& exposed) {
  exposed.assign(ops.size(), Seconds(0));
  Clock clock;
  for (size_t first = 0; first < ops.size();) {
    const double count = ops[first].count;
    if (count == 1) {  // one instance (every operator of a CNN): run_block's work without its bookkeeping
      exposed[first] += Seconds(issue(clock, ops[first].host.si(), ops[first].gpu.si()));
      ++first;
      continue;
    }
    size_t last = first + 1;
    if (count > 1)
      while (last < ops.size() && ops[last].count == count) ++last;
    const double whole = std::floor(std::max(count, 0.0)), fraction = std::max(count, 0.0) - whole;
    run_block(ops, first, last, whole, 1.0, clock, exposed);
    if (fraction > 0) run_block(ops, first, last, 1, fraction, clock, exposed);
    first = last;
  }
}

}  // namespace mlsysim
