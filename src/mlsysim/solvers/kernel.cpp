#include "mlsysim/solvers/kernel.hpp"

#include <fmt/format.h>

#include "mlsysim/errors.hpp"
#include "mlsysim/solvers/engine.hpp"
#include "mlsysim/units/format.hpp"

namespace mlsysim {

namespace {

// A kernel reads and writes its operands in device memory (the GEMM's A, B and C; attention's Q, K,
// V and O, plus the gradients in the backward pass): a call whose operands exceed the device's
// memory cannot run there, so it has no time.
void require_operands_fit(const HardwareSpec& hw, const KernelRequest& r, Bytes operands) {
  if (operands <= hw.memory_usable) return;
  const std::string shape =
      r.op == KernelOp::Gemm
          ? fmt::format("A {}x{} + B {}x{} + C {}x{}", r.m, r.k, r.k, r.n, r.m, r.n)
          : fmt::format("Q, K, V and O of {} x {} heads x {} tokens x head dim {}", r.batch, r.heads, r.seq_len,
                        r.head_dim);
  throw DoesNotFit(fmt::format("the operands ({}) take {} at {}; {} has {} usable: shrink the shape{}",
                               shape, format_bytes(operands), to_string(r.precision), hw.id,
                               format_bytes(hw.memory_usable),
                               r.op == KernelOp::Gemm ? " (m, n or k)" : " (batch, heads or sequence)"),
                   operands.si(), hw.memory_usable.si());
}

}  // namespace

KernelResult time_kernel(const HardwareSpec& hw, const KernelRequest& r) {
  if (!hw.supports(r.precision)) refuse_precision(hw, r.precision, "--precision");
  Operator op;
  op.precision = r.precision;
  op.count = 1;
  if (r.op == KernelOp::Gemm) {
    if (r.m < 1 || r.n < 1 || r.k < 1)
      throw BadInput("--m, --n and --k must be >= 1 (C[m,n] = A[m,k] B[k,n])");
    op.cls = OpClass::Gemm;
    op.flops = op.hw_flops = 2.0 * r.m * r.n * r.k;
    op.bytes = (1.0 * r.m * r.k + 1.0 * r.k * r.n + 1.0 * r.m * r.n) * bytes_per_element(r.precision);
    op.m = r.m, op.n = r.n, op.k = r.k;
  } else {
    if (r.batch < 1 || r.heads < 1 || r.head_dim < 1 || r.seq_len < 1)
      throw BadInput("attention needs --batch-size, --heads, --head-dim and --seq-len >= 1");
    if (r.attention == AttentionKernel::Materialized)
      throw BadInput("--attention materialized is a model layout, not one kernel: use flash or fa2 here");
    require_attention_kernel(hw, r.attention);
    op = attention_call_operator({static_cast<double>(r.batch), static_cast<double>(r.heads),
                                  static_cast<double>(r.head_dim), static_cast<double>(r.seq_len), r.causal,
                                  r.op == KernelOp::AttentionBackward, r.precision, r.attention});
  }
  require_operands_fit(hw, r, Bytes(op.bytes));
  const RateModel rates{&hw, r.runtime, 0};
  const OpTiming t = time_operator(rates, op);
  KernelResult out;
  out.time = t.total();
  out.flops = Flops(op.flops);
  out.bytes = Bytes(op.bytes);
  out.achieved = out.flops / out.time;
  out.fraction_of_peak = out.achieved / hw.peak(r.precision);
  out.bottleneck = t.wall();
  // What the fixed part is: a graph's launch gap, an eager call's host dispatch beyond the kernel,
  // or an isolated call's host latency that the GPU waits out.
  const char* fixed = r.runtime == Runtime::Graph   ? "launch"
                      : r.runtime == Runtime::Eager ? "launch and host dispatch"
                                                    : "isolated-call cost";
  // The compute side as time_operator() prices it: a GEMM pays for its padded tiles and partly idle
  // waves, fused attention for its per-kernel tail; FlashAttention-2's exponentials add.
  const double useful = 2.0 * op.m * op.n * op.k;
  const double padded = op.cls == OpClass::Gemm && useful > 0
                            ? op.hw_flops * gemm_padded_flops(hw, op.m, op.n, op.k) / useful : op.hw_flops;
  std::string compute =
      fmt::format("{} / achieved {}", format_flops(Flops(padded)), format_rate(achieved_flops(rates, op)));
  if (padded > op.flops * (1 + 1e-9))
    compute += fmt::format(" ({} of it useful: {:.1f}% of the tiles' work, tile padding and partly idle waves)",
                           format_flops(out.flops), 100 * op.flops / padded);
  const Seconds tail = attention_tail(rates, op);
  if (tail.si() > 0) compute += fmt::format(" + tail {}", format_time(tail));
  const bool exponentials = softmax_exponential_time(rates, op).si() > 0;
  if (exponentials)
    compute += fmt::format(" + {} softmax exponentials / {} special-function ops/s",
                           format_count(op.special_function_ops), format_count(hw.special_function_rate.si()));
  out.trace.push_back(fmt::format("t = max({}, {} / achieved {}) + {} {} = {}{}", compute, format_bytes(out.bytes),
                                  format_bandwidth(achieved_bandwidth(rates)), fixed, format_time(t.overhead),
                                  format_time(out.time),
                                  exponentials ? " (FlashAttention-2 runs its softmax between the matmuls, so the "
                                                 "exponentials add)"
                                               : ""));
  const bool fa2 = op.cls == OpClass::Attention && r.attention == AttentionKernel::FlashAttention2;
  out.trace.push_back(fmt::format("achieved {} = {:.1f}% of the dense {} peak ({})",
                                  format_rate(out.achieved), 100 * out.fraction_of_peak,
                                  to_string(r.precision),
                                  fa2 ? "FlashAttention-2 matmul rate " + hw.efficiency.flash_attention2_source +
                                            "; shape and tail terms " + hw.efficiency.source
                                      : hw.efficiency.source));
  const double relative = default_attention_factor(hw.efficiency, op);
  const bool default_attention = op.cls == OpClass::Attention && r.attention == AttentionKernel::Flash;
  if (default_attention && relative == 1.0 && r.head_dim != 128 && hw.efficiency.attention_head_dim_rates.empty())
    out.trace.push_back(fmt::format("head dim {}: {} has no head-dim table for its fused attention, so the rate "
                                    "does not depend on head dim here (on H100 the fused kernel runs head dim 64 "
                                    "at about 0.7x; `mlsysim calibrate` fits a device's own table)",
                                    r.head_dim, hw.id));
  if (relative != 1.0)
    out.trace.push_back(fmt::format("{} at head dim {}: the fused kernel runs at {:.2f}x its calibrated forward rate "
                                    "at head dim 128 ({})",
                                    op.pass == Pass::Backward ? "backward" : "forward", r.head_dim, relative,
                                    hw.efficiency.attention_head_dim_source));
  return out;
}

}  // namespace mlsysim
