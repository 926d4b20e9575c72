// `mlsysim kernel`: one GEMM or fused-attention kernel on one device (achieved FLOP/s).
#include <fmt/format.h>

#include <iostream>
#include <memory>

#include "command.hpp"
#include "held_out_accuracy.hpp"
#include "mlsysim/solvers/kernel.hpp"
#include "mlsysim/units/format.hpp"

namespace mlsysim::cli {
namespace {

struct KernelOptions {
  std::string op = "gemm", hardware, precision = "bf16", runtime = "graph", attention = "flash";
  long m = 0, n = 0, k = 0;
  int batch = 1, heads = 0, head_dim = 0, seq_len = 0;
  bool causal = false;
};

int run_kernel(const GlobalOptions& g, const KernelOptions& o) {
  const auto owner = load_catalog(g);
  const HardwareSpec& hw = owner->hardware(o.hardware);
  KernelRequest r;
  r.op = parse_enum<KernelOp>("--op", o.op, {{"gemm", KernelOp::Gemm},
                                            {"attention-fwd", KernelOp::AttentionForward},
                                            {"attention-bwd", KernelOp::AttentionBackward}});
  r.precision = parse_precision_flag("--precision", o.precision);
  r.m = o.m, r.n = o.n, r.k = o.k;
  r.batch = o.batch, r.heads = o.heads, r.head_dim = o.head_dim, r.seq_len = o.seq_len;
  r.causal = o.causal;
  r.runtime = parse_kernel_runtime(o.runtime, "--runtime");
  r.attention = parse_attention_flag(o.attention);
  const KernelResult k = time_kernel(hw, r);
  nlohmann::ordered_json j{{"op", o.op}, {"hardware", hw.id}, {"precision", o.precision},
                           {"time_s", k.time.si()}, {"flops", k.flops.si()}, {"bytes", k.bytes.si()},
                           {"flops_per_s", k.achieved.si()}, {"fraction_of_peak", k.fraction_of_peak},
                           {"bottleneck", to_string(k.bottleneck)}, {"trace", k.trace}};
  std::string text = fmt::format("{} on {} ({}): {}  {} = {:.1f}% of peak, {}-bound\n", o.op, hw.id,
                                 o.precision, format_time(k.time), format_rate(k.achieved),
                                 100 * k.fraction_of_peak, to_string(k.bottleneck));
  for (const auto& line : k.trace) text += "  - " + line + "\n";
  // The kernel validation points are FlashAttention kernels: their error bar fits attention only.
  if (r.op != KernelOp::Gemm && parse_format(g.format) == Format::Table)
    text += accuracy_line_for("kernel", kGraphGroup);
  print(g, j, text);
  return kExitOk;
}

const CommandRegistrar registrar(16, "kernel", [](CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<KernelOptions>();
  auto* cmd = app.add_subcommand("kernel", "One GEMM or fused-attention kernel: achieved FLOP/s");
  cmd->add_option("--op", o->op, "gemm | attention-fwd | attention-bwd");
  cmd->add_option("--hardware,-H", o->hardware, "Hardware id")->required();
  cmd->add_option("--precision", o->precision, "Math precision (default bf16)");
  cmd->add_option("--m", o->m, "GEMM rows of A and C");
  cmd->add_option("--n", o->n, "GEMM columns of B and C");
  cmd->add_option("--k", o->k, "GEMM inner dimension");
  cmd->add_option("--batch-size,-b", o->batch, "Attention batch");
  cmd->add_option("--heads", o->heads, "Attention heads");
  cmd->add_option("--head-dim", o->head_dim, "Attention head dimension");
  cmd->add_option("--seq-len,-s", o->seq_len, "Attention sequence length");
  cmd->add_flag("--causal", o->causal, "Causal mask (half the FLOPs)");
  cmd->add_option("--attention", o->attention,
                  "flash (the device's calibrated fused kernel, default) | fa2 (FlashAttention-2: softmax "
                  "exponentials not overlapped with the matmuls; needs its calibration, built in for h100)");
  cmd->add_option("--runtime", o->runtime,
                  "graph (launch gap only, default) | eager (host dispatch, hidden behind long kernels) | isolated "
                  "(one call timed alone, as single-call microbenchmarks measure: the host latency adds)");
  return Command{cmd, [o, &g] { return run_kernel(g, *o); }};
});

}  // namespace
}  // namespace mlsysim::cli
