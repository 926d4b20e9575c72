#include "mlsysim/physics/power.hpp"

#include <algorithm>

#include "mlsysim/catalog/hardware.hpp"

namespace mlsysim {
namespace {

// Idle with a live context: H100 SXM boards holding a CUDA context draw 119-126 W (NREL Kestrel
// user docs, nvidia-smi) and 140-145 W with 73 GB allocated (wilicc/gpu-burn issue #114) of their
// 700 W; an H200 with DeepSeek-V3 loaded under SGLang 115 W (sgl-project/sglang issue #3196).
// 0.18 x 700 W = 126 W. (With no process at all an H100 idles at 64-75 W, 0.10: not a state a
// running job is in.)
constexpr double kIdle = 0.18;

// Compute-bound kernels run at the power limit: Hopper GEMMs throttle the SM clock from 1980 to
// 1575 MHz to hold it (deepseek-ai/DeepGEMM issue #120), a B200 attention kernel pins its 1000 W
// limit (flashinfer-ai/flashinfer PR #2899), and Llama-3.1-8B serving on an H100 levels off at
// 0.98 of 700 W once its steps turn compute-heavy (ML.ENERGY v3, below). So floor + compute = 1.
constexpr double kCompute = 1.0 - kIdle;

// A memory-bound body at the achieved HBM bandwidth: 0.70 of TDP. Chosen from ML.ENERGY Benchmark
// v3's Llama-3.1-8B H100 power-vs-batch curve (ml-energy/blog, "LLM Inference Energy: A
// Longitudinal Analysis", 2026), whose memory-bound end (batch 16) draws 513 W = 0.73 TDP with its
// launch gaps and prefills; a roofline fit of that curve gives 0.70 + 0.69 x t_compute / t_memory.
// That curve is therefore calibration, not validation (validation/points/power.toml).
constexpr double kMemory = 0.70 - kIdle;

double measured_or(double measured, double fallback) { return measured > 0 ? measured : fallback; }

}  // namespace

PowerCoefficients default_power_coefficients() { return {kIdle, kMemory, kCompute}; }

PowerCoefficients power_coefficients(const HardwareSpec& hw) {
  const EfficiencyProfile& e = hw.efficiency;
  return {measured_or(e.power_idle, kIdle), measured_or(e.power_memory, kMemory),
          measured_or(e.power_compute, kCompute)};
}

BoardPowerLevels board_power_levels(const HardwareSpec& hw) {
  const PowerCoefficients c = power_coefficients(hw);
  const EfficiencyProfile& e = hw.efficiency;
  return {hw.tdp * c.idle, hw.tdp * body_power_fraction(c, 1, 0), hw.tdp * body_power_fraction(c, 0, 1),
          e.power_idle > 0 || e.power_memory > 0 || e.power_compute > 0};
}

double body_power_fraction(const PowerCoefficients& c, double memory_share, double compute_share) {
  return std::min(1.0, c.idle + c.memory * memory_share + c.compute * compute_share);
}

}  // namespace mlsysim
