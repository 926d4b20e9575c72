// The eager launch queue (physics/launch_queue.hpp): host dispatch overlapping GPU execution.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <numeric>

#include "mlsysim/physics/launch_queue.hpp"

using namespace mlsysim;
using namespace mlsysim::units;

namespace {

double total(const std::vector<Seconds>& v) {
  double s = 0;
  for (Seconds x : v) s += x.si();
  return s;
}

// Step time = every kernel body plus every idle gap the host leaves (see the header's recurrence).
double step_time(const std::vector<QueuedOperator>& ops) {
  double gpu = 0;
  for (const auto& o : ops) gpu += o.gpu.si() * o.count;
  return gpu + total(exposed_host_time(ops));
}

}  // namespace

TEST(LaunchQueue, LongKernelsHideTheDispatchOfShortOnes) {
  // A layer of a 100 us GEMM then a 2 us element-wise kernel, each 25 us of host dispatch, three
  // layers. By hand: the host issues the GEMM at 25 (the GPU waits 25), runs ahead while it
  // executes to 125, and every later kernel is issued before the GPU is free:
  // E = 25 + 3 x (100 + 2) = 331 us. The per-operator max would say 3 x (100 + 25) = 375 us.
  const std::vector<QueuedOperator> layer = {{microseconds(25), microseconds(100), 3},
                                             {microseconds(25), microseconds(2), 3}};
  const auto exposed = exposed_host_time(layer);
  EXPECT_NEAR(exposed[0].si(), 25e-6, 1e-15);
  EXPECT_NEAR(exposed[1].si(), 0.0, 1e-15);
  EXPECT_NEAR(step_time(layer), 331e-6, 1e-15);
}

TEST(LaunchQueue, AHostBoundStreamCostsItsDispatchPlusTheLastKernel) {
  // 100 tiny kernels (1 us) behind 10 us of dispatch each: the GPU finishes 1 us after the host's
  // last dispatch, E = 100 x 10 + 1 = 1001 us; the first waits 10 us, the other 99 wait 9 us.
  const std::vector<QueuedOperator> ops = {{microseconds(10), microseconds(1), 100}};
  EXPECT_NEAR(total(exposed_host_time(ops)), 10e-6 + 99 * 9e-6, 1e-15);
  EXPECT_NEAR(step_time(ops), 1001e-6, 1e-15);
}

TEST(LaunchQueue, AFractionalCountRunsThatFractionOfAnInstance) {
  // 2.5 instances of (h 10, g 1): two whole, then one at half size (h 5, g 0.5):
  // E = 10 + 10 + 5 + 0.5 = 25.5 us.
  EXPECT_NEAR(step_time({{microseconds(10), microseconds(1), 2.5}}), 25.5e-6, 1e-15);
}

namespace {

rc::Gen<std::vector<QueuedOperator>> layers() {
  return rc::gen::mapcat(rc::gen::inRange(1, 6), [](int ops_per_layer) {
    return rc::gen::map(
        rc::gen::tuple(rc::gen::container<std::vector<std::pair<int, int>>>(
                           ops_per_layer, rc::gen::pair(rc::gen::inRange(0, 200), rc::gen::inRange(0, 400))),
                       rc::gen::inRange(1, 40)),
        [](const auto& t) {
          const auto& [times, count] = t;
          std::vector<QueuedOperator> ops;
          for (auto [h, g] : times) ops.push_back({microseconds(h), microseconds(g), static_cast<double>(count)});
          return ops;
        });
  });
}

}  // namespace

RC_GTEST_PROP(LaunchQueue, StepLiesBetweenTheOverlappedAndTheSerialBounds, ()) {
  // The step can beat neither the host's nor the GPU's total alone, nor take longer than running
  // them one after the other; and it never exceeds the per-operator max(h, g) sum by more than one
  // instance's min(h, g) (the tandem-pipeline bound E = max_k(H_k + sum_{i>=k} g_i)).
  const auto ops = *layers();
  double host = 0, gpu = 0, per_op_max = 0, largest_min = 0;
  for (const auto& o : ops) {
    host += o.host.si() * o.count, gpu += o.gpu.si() * o.count;
    per_op_max += std::max(o.host.si(), o.gpu.si()) * o.count;
    largest_min = std::max(largest_min, std::min(o.host.si(), o.gpu.si()));
  }
  const double e = step_time(ops);
  const double eps = 1e-12 * (host + gpu) + 1e-18;
  RC_ASSERT(e >= std::max(host, gpu) - eps);
  RC_ASSERT(e <= host + gpu + eps);
  RC_ASSERT(e <= per_op_max + largest_min + eps);
}

RC_GTEST_PROP(LaunchQueue, RepeatedBlocksMatchTheUnrolledStream, ()) {
  // The block shortcuts (steady state, GPU-bound) are exact: a layer block run `count` times gives
  // the same exposed time per operator as the stream written out instance by instance.
  const auto ops = *layers();
  std::vector<QueuedOperator> unrolled;
  const int count = static_cast<int>(ops.front().count);
  for (int i = 0; i < count; ++i)
    for (const auto& o : ops) unrolled.push_back({o.host, o.gpu, 1});
  const auto blocked = exposed_host_time(ops), flat = exposed_host_time(unrolled);
  for (size_t k = 0; k < ops.size(); ++k) {
    double sum = 0;
    for (int i = 0; i < count; ++i) sum += flat[i * ops.size() + k].si();
    RC_ASSERT(std::fabs(blocked[k].si() - sum) <= 1e-9 * std::fabs(sum) + 1e-15);  // rounding only
  }
}
