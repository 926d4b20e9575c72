// `mlsysim kernel`: FLOP conventions of the kernel papers and the roofline bounds.
#include <gtest/gtest.h>

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
