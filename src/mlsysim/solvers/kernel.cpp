#include "mlsysim/solvers/kernel.hpp"

#include <fmt/format.h>

#include "mlsysim/errors.hpp"
#include "mlsysim/units/format.hpp"

namespace mlsysim {

KernelResult time_kernel(const HardwareSpec& hw, const KernelRequest& r) {
  if (!hw.supports(r.precision))
    throw BadInput(hw.id + " has no " + std::string(to_string(r.precision)) + " compute path");
  const double pa = bytes_per_element(r.precision);
  Operator op;
  op.precision = r.precision;
  op.count = 1;
  if (r.op == KernelOp::Gemm) {
    if (r.m < 1 || r.n < 1 || r.k < 1)
      throw BadInput("--m, --n and --k must be >= 1 (C[m,n] = A[m,k] B[k,n])");
    op.cls = OpClass::Gemm;
    op.flops = op.hw_flops = 2.0 * r.m * r.n * r.k;
    op.bytes = (1.0 * r.m * r.k + 1.0 * r.k * r.n + 1.0 * r.m * r.n) * pa;
    op.m = r.m, op.n = r.n, op.k = r.k;
  } else {
    if (r.batch < 1 || r.heads < 1 || r.head_dim < 1 || r.seq_len < 1)
      throw BadInput("attention needs --batch-size, --heads, --head-dim and --seq-len >= 1");
    // FlashAttention papers' FLOP count: 4·B·H·S²·D forward (QK^T and PV), halved for causal.
    const double s = r.seq_len;
    double fwd = 4.0 * r.batch * r.heads * s * s * r.head_dim;
    if (r.causal) fwd /= 2;
    const double io = 4.0 * r.batch * r.heads * s * r.head_dim * pa;  // Q, K, V in; O out
    op.cls = OpClass::Attention;
    const bool backward = r.op == KernelOp::AttentionBackward;
    const double pass_factor = backward ? kAttentionBackwardFlopsFactor : 1.0;
    op.flops = op.hw_flops = pass_factor * fwd;
    op.bytes = backward ? 2.0 * io : io;
    // n: mean keys per query row (causal: (S + 1) / 2), the attention rate's shape term.
    op.m = r.batch * s, op.n = r.causal ? (s + 1) / 2 : s, op.k = r.head_dim;
    // Causal or not, the last query block visits all S keys.
    op.tail_flops = attention_tail_flops(s, s, r.head_dim, r.head_dim) * pass_factor;
  }
  const RateModel rates{&hw, r.runtime, 0};
  const OpTiming t = time_operator(rates, op);
  KernelResult out;
  out.time = t.total();
  out.flops = Flops(op.flops);
  out.bytes = Bytes(op.bytes);
  out.achieved = out.flops / out.time;
  out.fraction_of_peak = out.achieved / hw.peak(r.precision);
  out.bottleneck = t.wall();
  out.trace.push_back(fmt::format(
      "t = max({} / achieved {}, {} / achieved {}) + launch {} = {}", format_flops(out.flops),
      format_rate(achieved_flops(rates, op)), format_bytes(out.bytes),
      format_bandwidth(achieved_bandwidth(rates)), format_time(t.overhead), format_time(out.time)));
  out.trace.push_back(fmt::format("achieved {} = {:.1f}% of the dense {} peak ({})",
                                  format_rate(out.achieved), 100 * out.fraction_of_peak,
                                  to_string(r.precision), hw.efficiency.source));
  return out;
}

}  // namespace mlsysim
