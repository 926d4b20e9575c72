// `mlsysim kernel`: FLOP conventions of the kernel papers and the roofline bounds.
#include <gtest/gtest.h>

#include <cmath>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/solvers/kernel.hpp"

using namespace mlsysim;

TEST(Kernel, AttentionFlopsFollowFlashAttentionsConvention) {
  const auto& h100 = Catalog::builtin().hardware("h100");
  KernelRequest r;
  r.op = KernelOp::AttentionForward;
  r.heads = 16, r.head_dim = 128, r.seq_len = 16384;
  const KernelResult full = time_kernel(h100, r);
  EXPECT_DOUBLE_EQ(full.flops.si(), 4.0 * 16 * 16384.0 * 16384 * 128);
  r.causal = true;
  const KernelResult causal = time_kernel(h100, r);
  EXPECT_DOUBLE_EQ(causal.flops.si(), full.flops.si() / 2);
  r.op = KernelOp::AttentionBackward;
  EXPECT_DOUBLE_EQ(time_kernel(h100, r).flops.si(), 2.5 * causal.flops.si());
  // Never faster than the dense peak.
  EXPECT_LT(full.fraction_of_peak, 1.0);
  EXPECT_GE(full.time.si(), full.flops.si() / h100.peak(Precision::BF16).si());
}

TEST(Kernel, SkinnyGemmIsMemoryBoundAndBadShapesAreRejected) {
  const auto& h100 = Catalog::builtin().hardware("h100");
  KernelRequest r;
  r.m = 1, r.n = 28672, r.k = 4096;  // a decode GEMV: 2 FLOPs per weight byte pair
  const KernelResult gemv = time_kernel(h100, r);
  EXPECT_EQ(gemv.bottleneck, Wall::Memory);
  EXPECT_GE(gemv.time.si(), 28672.0 * 4096 * 2 / h100.memory_bandwidth.si());
  r.m = 0;
  EXPECT_THROW(time_kernel(h100, r), BadInput);
}

// Operands that exceed the device's memory have no time: a GEMM whose A + B + C is one byte over the
// usable capacity is refused with both sizes, one that fits is timed.
TEST(Kernel, OperandsBeyondDeviceMemoryDoNotFit) {
  const auto& h100 = Catalog::builtin().hardware("h100");
  KernelRequest r;
  // Square bf16 GEMM: 3 n^2 x 2 B. The largest n that fits the usable memory, and the next one.
  const double usable = h100.memory_usable.si();
  const long n_fit = static_cast<long>(std::floor(std::sqrt(usable / 6.0)));
  r.m = r.n = r.k = n_fit;
  EXPECT_GT(time_kernel(h100, r).time.si(), 0);
  r.m = r.n = r.k = n_fit + 1;
  try {
    time_kernel(h100, r);
    ADD_FAILURE() << "expected DoesNotFit";
  } catch (const DoesNotFit& e) {
    EXPECT_DOUBLE_EQ(e.required_bytes, 6.0 * (n_fit + 1.0) * (n_fit + 1.0));
    EXPECT_DOUBLE_EQ(e.available_bytes, usable);
  }
  // Attention: Q, K, V, O of batch x heads x seq x head dim x 2 B each.
  KernelRequest a;
  a.op = KernelOp::AttentionForward;
  a.heads = 32, a.head_dim = 128, a.seq_len = 1 << 20;
  a.batch = static_cast<int>(usable / (4.0 * 2 * a.heads * a.head_dim * a.seq_len)) + 1;
  EXPECT_THROW(time_kernel(h100, a), DoesNotFit);
}

// FlashAttention-2 (--attention fa2): matmuls at the calibrated FlashAttention-2 rate, plus one softmax
// exponential per score on the special-function units (3.9 T/s on H100), which FA2 does not overlap.
TEST(Kernel, FlashAttention2AddsItsSoftmaxExponentialsToTheMatmuls) {
  const auto& h100 = Catalog::builtin().hardware("h100");
  ASSERT_DOUBLE_EQ(h100.special_function_rate.si(), 3.9e12);  // FlashAttention-3 paper, sec. 3.2
  ASSERT_GT(h100.efficiency.flash_attention2, 0.0);
  KernelRequest r;
  r.op = KernelOp::AttentionForward;
  r.heads = 16, r.head_dim = 128, r.seq_len = 16384, r.attention = AttentionKernel::FlashAttention2;
  const KernelResult fa2 = time_kernel(h100, r);
  // By hand: the model's parts at this shape (non-causal: every query visits all S keys).
  const double S = 16384, scores = 16 * S * S, flops = 4 * scores * 128;
  const double shape = S / (S + h100.efficiency.attention_half_keys);
  const double matmul = flops / (h100.efficiency.flash_attention2 * shape * h100.peak(Precision::BF16).si());
  const double tail = h100.efficiency.attention_tail * 2 * 128 * S * (128 + 128) /
                      (h100.peak(Precision::BF16).si() / h100.compute_units);
  const double launch = h100.efficiency.kernel_overhead.si();
  EXPECT_NEAR(fa2.time.si(), matmul + scores / 3.9e12 + tail + launch, 1e-9);
  // Backward: 2.5x the matmul FLOPs at the backward kernel's own rate, each exponential recomputed once.
  r.op = KernelOp::AttentionBackward;
  const KernelResult back = time_kernel(h100, r);
  const double back_matmul =
      2.5 * flops / (h100.efficiency.flash_attention2_backward * shape * h100.peak(Precision::BF16).si());
  EXPECT_NEAR(back.time.si(), back_matmul + scores / 3.9e12 + 2.5 * tail + launch, 1e-9);
  r.op = KernelOp::AttentionForward;
  // The exponentials weigh more per FLOP at small head dims (4 x head_dim matmul FLOPs per exp):
  // at a fixed 16k-token, 2048-wide shape FlashAttention-2's FLOP rate rises with the head dim.
  double previous = 0;
  for (int d : {64, 128, 256}) {
    r.head_dim = d, r.heads = 2048 / d;
    const double rate = time_kernel(h100, r).achieved.si();
    EXPECT_GT(rate, previous) << "head dim " << d;
    previous = rate;
  }
}

// The default fused kernel at head dim 64: the hand formula of the default path (matmul FLOPs at the
// calibrated rate x shape, plus the causal tail) with both terms at the head-dim table's rate
// (0.68x of head dim 128's on H100, from the FlashAttention-3 paper's cuDNN bars).
TEST(Kernel, DefaultAttentionRunsAtItsHeadDimsRelativeRate) {
  const auto& h100 = Catalog::builtin().hardware("h100");
  const EfficiencyProfile& e = h100.efficiency;
  ASSERT_EQ(e.attention_head_dim_rates.size(), 3u);
  const double f64 = e.attention_head_dim_rates.front().relative_rate;
  ASSERT_LT(f64, 0.8);  // shorter heads: less matmul depth per score of softmax work
  KernelRequest r;
  r.op = KernelOp::AttentionForward;
  r.heads = 32, r.head_dim = 64, r.seq_len = 16384;
  const double S = 16384, flops = 4 * 32 * S * S * 64, peak = h100.peak(Precision::BF16).si();
  const double matmul = flops / (e.attention * f64 * S / (S + e.attention_half_keys) * peak);
  const double tail = e.attention_tail * 2 * 128 * S * (64 + 64) / (f64 * peak / h100.compute_units);
  EXPECT_NEAR(time_kernel(h100, r).time.si(), matmul + tail + e.kernel_overhead.si(), 1e-9);
  // Backward: 2.5x the FLOPs at the backward's rate relative to the forward (at head dim 128) times
  // the backward head-dim table's factor (0.86 x 0.82 on H100, from the paper's cuDNN backward bars).
  ASSERT_GT(e.attention_backward, 0.0);
  ASSERT_EQ(e.attention_backward_head_dim_rates.size(), 2u);
  const double b64 = e.attention_backward * e.attention_backward_head_dim_rates.front().relative_rate;
  r.op = KernelOp::AttentionBackward;
  EXPECT_NEAR(time_kernel(h100, r).time.si(), (2.5 * matmul + 2.5 * tail) * f64 / b64 + e.kernel_overhead.si(), 1e-9);
  r.op = KernelOp::AttentionForward;
  // FlashAttention-2 models its head-dim dependence itself (its exponentials): the table leaves it alone.
  HardwareSpec flat = h100;
  flat.efficiency.attention_head_dim_rates.clear();
  r.attention = AttentionKernel::FlashAttention2;
  EXPECT_DOUBLE_EQ(time_kernel(h100, r).time.si(), time_kernel(flat, r).time.si());
  r.attention = AttentionKernel::Flash;
  EXPECT_GT(time_kernel(h100, r).time.si(), time_kernel(flat, r).time.si());
}

TEST(Kernel, FlashAttention2NeedsItsCalibrationAndTheSpecialFunctionRate) {
  KernelRequest r;
  r.op = KernelOp::AttentionForward;
  r.heads = 16, r.head_dim = 128, r.seq_len = 4096, r.attention = AttentionKernel::FlashAttention2;
  try {  // no FlashAttention-2 timings for the A100 in the catalog
    time_kernel(Catalog::builtin().hardware("a100-80gb"), r);
    FAIL() << "expected BadInput";
  } catch (const BadInput& e) {
    EXPECT_NE(std::string(e.what()).find("no FlashAttention-2 calibration"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("mlsysim calibrate"), std::string::npos) << e.what();
  }
  HardwareSpec no_sfu = Catalog::builtin().hardware("h100");
  no_sfu.special_function_rate = FlopsPerSecond(0);
  EXPECT_THROW(time_kernel(no_sfu, r), BadInput);
  r.attention = AttentionKernel::Materialized;  // a model layout, not one kernel
  EXPECT_THROW(time_kernel(Catalog::builtin().hardware("h100"), r), BadInput);
}

// --runtime isolated: one call timed alone (CUDA events around a single call, as the calibration
// microbenchmark's GEMM rows are). The GPU waits for the host, so the fixed cost adds to the kernel
// instead of hiding behind it: t = body + isolated_call, never less than the graph-replayed time.
TEST(Kernel, IsolatedCallAddsItsFixedCostToTheKernel) {
  const auto& h100 = Catalog::builtin().hardware("h100");
  ASSERT_GT(h100.efficiency.isolated_call.si(), 0.0);  // fitted on the microbenchmark's GEMVs
  KernelRequest r;
  r.m = 8, r.n = 6144, r.k = 4096;  // a memory-bound decode GEMV
  r.runtime = Runtime::Isolated;
  const KernelResult isolated = time_kernel(h100, r);
  const double body = (8.0 * 4096 + 4096.0 * 6144 + 8.0 * 6144) * 2 /
                      (h100.efficiency.memory * h100.memory_bandwidth.si());
  EXPECT_NEAR(isolated.time.si(), body + h100.efficiency.isolated_call.si(), 1e-12);
  r.runtime = Runtime::Graph;
  EXPECT_GT(isolated.time.si(), time_kernel(h100, r).time.si());
}
