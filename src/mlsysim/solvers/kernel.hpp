// One kernel on one device (`mlsysim kernel`): a GEMM or a fused attention forward/backward, timed
// with the same per-operator model the engine uses, reported as achieved FLOP/s the way kernel
// papers do (FlashAttention: 4·B·H·S²·D forward FLOPs, halved when causal; backward 2.5x forward).
#pragma once

#include <string>
#include <vector>

#include "mlsysim/catalog/hardware.hpp"
#include "mlsysim/physics/efficiency.hpp"

namespace mlsysim {

enum class KernelOp { Gemm, AttentionForward, AttentionBackward };

struct KernelRequest {
  KernelOp op = KernelOp::Gemm;
  Precision precision = Precision::BF16;
  // GEMM: C[m,n] = A[m,k] B[k,n]
  long m = 0, n = 0, k = 0;
  // Attention
  int batch = 1, heads = 0, head_dim = 0, seq_len = 0;
  bool causal = false;
  // flash: the device's calibrated fused kernel; fa2: FlashAttention-2 (materialized: not a kernel)
  AttentionKernel attention = AttentionKernel::Flash;
  Runtime runtime = Runtime::Graph;
};

struct KernelResult {
  Seconds time{};
  Flops flops{};               // paper convention (see above)
  Bytes bytes{};
  FlopsPerSecond achieved{};   // flops / time
  double fraction_of_peak = 0;
  Wall bottleneck = Wall::Compute;
  std::vector<std::string> trace;
};

KernelResult time_kernel(const HardwareSpec& hw, const KernelRequest& r);

}  // namespace mlsysim
