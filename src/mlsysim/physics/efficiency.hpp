// Achieved rates: how long one operator takes on one device.
//
//   t_op = max(FLOPs / achieved FLOP/s, bytes / achieved B/s) + launch overhead      (roofline,
//   Williams et al. 2009, per operator)
//
// achieved FLOP/s = dense peak x efficiency(op class, precision) x wave utilization(shape), where
// wave utilization models how a GEMM's output tiles fill the device's compute units (the tail wave
// of a grid runs partly empty; small grids use split-K). Efficiencies and overheads come from the
// device's EfficiencyProfile: fitted from microbenchmarks (physics/calibration.hpp) or documented
// defaults. `teaching_efficiency` > 0 switches to the textbook single-efficiency model.
#pragma once

#include <string_view>

#include "mlsysim/catalog/hardware.hpp"
#include "mlsysim/physics/operators.hpp"

namespace mlsysim {

// How kernels are issued. Graph: replayed from a CUDA graph or a serving engine (launch gaps only).
// Eager: dispatched one by one from the host, which the GPU runs ahead of when kernels are long.
// Isolated: every call waits for the previous one and is timed alone, the way a single-call
// microbenchmark (CUDA events around one call) or CUDA_LAUNCH_BLOCKING=1 runs it: the GPU idles while
// the host dispatches, so the host latency adds to the kernel instead of hiding behind it.
enum class Runtime { Graph, Eager, Isolated };
const char* to_string(Runtime r);

// How element-wise work is packaged into kernels. Fused: compiled/serving runtimes (torch.compile,
// vLLM, TensorRT-LLM) fuse norms, RoPE, activations and residual adds into few kernels. Unfused:
// eager frameworks launch one kernel per PyTorch op, each re-reading and re-writing its tensor.
// Hf: Hugging Face transformers modules in eager mode: unfused, plus the module code's own
// decomposition (RMSNorm as an fp32 chain of 8 ops, separate q/k/v and gate/up projections,
// a KV cache grown by torch.cat, rotary tables rebuilt every forward); in training, torch.autocast
// over fp32 parameters with the model's dropout (physics/lowering.cpp, Emitter::amp).
// Auto: fused under the graph runtime, unfused under eager.
enum class Fusion { Auto, Fused, Unfused, Hf };
const char* to_string(Fusion f);
Fusion resolve_fusion(Fusion f, Runtime r);
// Parse the spellings to_string() gives ("graph", "eager"; "auto", "fused", "unfused", "hf");
// anything else is BadInput naming `what` (the flag or argument) and the valid spellings.
Runtime parse_runtime(std::string_view value, std::string_view what);  // a step: graph | eager
Runtime parse_kernel_runtime(std::string_view value, std::string_view what);  // one kernel: + isolated
// How attention runs. Flash: one fused kernel that keeps the scores on chip (FlashAttention, cuDNN,
// TensorRT; the default). Materialized: QK^T and PV as batched GEMMs with the scores written to
// memory between them and softmaxed (and dropped out in training) in passes of their own, as
// Megatron-LM before FlashAttention and PyTorch's "math" SDPA backend do.
const char* to_string(AttentionKernel a);
AttentionKernel parse_attention_kernel(std::string_view value, std::string_view what);
const char* to_string(ActivationScaling s);  // "static" | "dynamic"
ActivationScaling parse_activation_scaling(std::string_view value, std::string_view what);
Fusion parse_fusion(std::string_view value, std::string_view what);

enum class Wall { Compute, Memory, Overhead };
const char* to_string(Wall w);

struct OpTiming {
  Seconds compute{};   // FLOP time for all repeats
  Seconds memory{};    // byte time for all repeats
  Seconds overhead{};  // launch / dispatch time for all repeats
  // Eager runtime only: the host's dispatch time and the GPU's launch gaps, all repeats. `overhead`
  // above is the operator run alone (max of GPU and host); in a step the launch queue decides how
  // much host time shows (physics/launch_queue.hpp).
  Seconds host{};
  Seconds launch_gaps{};
  [[nodiscard]] Seconds body() const { return max(compute, memory); }
  [[nodiscard]] Seconds total() const { return body() + overhead; }
  [[nodiscard]] Wall wall() const {
    if (overhead > body()) return Wall::Overhead;
    return compute >= memory ? Wall::Compute : Wall::Memory;
  }
};

struct RateModel {
  const HardwareSpec* hw = nullptr;
  Runtime runtime = Runtime::Graph;
  double teaching_efficiency = 0;  // > 0: textbook model (one efficiency, datasheet bandwidth)
  // A long saturated run (a training step): matrix kernels at the power-limited clock
  // (sustained_clock_factor).
  bool sustained = false;
};

// FLOPs the device spends on an m x n x k GEMM once its output is cut into thread-block tiles
// and scheduled in waves over the compute units: padded tiles and the idle part of the last wave
// count. Small grids split K across blocks (split-K), choosing the split that finishes soonest.
// Monotone in m and n, and equal to 2mnk when tiles divide the shape and fill whole waves.
double gemm_padded_flops(const HardwareSpec& hw, double m, double n, double k);
// Useful fraction of that work: 2mnk / gemm_padded_flops.
double wave_utilization(const HardwareSpec& hw, double m, double n, double k);
// Softmax exponentials of a FlashAttention-2 instance at the special-function rate
// (special_function_ops / HardwareSpec::special_function_rate); zero for other classes, the textbook
// model, other kernels (their calibrated rate holds them) and devices without a special-function rate.
Seconds softmax_exponential_time(const RateModel& r, const Operator& op);
// Throws BadInput when the device cannot time that attention kernel (FlashAttention-2 needs its
// calibrated rate and the special-function throughput), saying how to get them.
void require_attention_kernel(const HardwareSpec& hw, AttentionKernel k);
// The default fused attention kernel's rate at this head dim relative to head dim 128
// (EfficiencyProfile::attention_head_dim_rates): piecewise linear in log2(head dim), flat beyond
// the listed head dims; 1 without a table.
double attention_head_dim_factor(const EfficiencyProfile& e, double head_dim);
// The same lookup in any head-dim table (sorted by head dim).
double head_dim_factor(const std::vector<HeadDimRate>& table, double head_dim);
// The default fused kernel's rate for this attention operator relative to the calibrated forward
// rate at head dim 128: its pass's head-dim factor, times the backward's relative rate for backward
// operators. 1 for other kernels and classes.
double default_attention_factor(const EfficiencyProfile& e, const Operator& op);
// How much slower the matrix engines run in a sustained run than in the short bursts the calibration
// timed: the clock falls until the board's power fits its limit, so every tensor-core kernel slows
// by the ratio of the sustained BF16 matmul rate to the burst one, min(1, sustained_gemm / gemm[BF16]).
// 1 outside a sustained run, under the textbook model, and where the device has no sustained rate.
double sustained_clock_factor(const RateModel& r);
// Achieved FLOP/s for the operator's class and precision.
FlopsPerSecond achieved_flops(const RateModel& r, const Operator& op);
// Attention's causal tail per instance: the longest query block running alone
// (EfficiencyProfile::attention_tail); zero for other classes and uncalibrated devices.
Seconds attention_tail(const RateModel& r, const Operator& op);
// Achieved streaming bandwidth.
BytesPerSecond achieved_bandwidth(const RateModel& r);
// For one operator class: element-wise and optimizer kernels use the vector-kernel bandwidth.
BytesPerSecond achieved_bandwidth(const RateModel& r, OpClass cls);
// Strided (non-vectorized) element-wise kernels: EfficiencyProfile::strided_memory.
BytesPerSecond strided_bandwidth(const RateModel& r);
// Time to move an operator instance's bytes: its strided part at strided_bandwidth, the rest at
// the class's bandwidth.
Seconds memory_time(const RateModel& r, const Operator& op);
OpTiming time_operator(const RateModel& r, const Operator& op);

}  // namespace mlsysim
