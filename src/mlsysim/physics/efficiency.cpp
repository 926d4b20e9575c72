#include "mlsysim/physics/efficiency.hpp"

#include <algorithm>
#include <cmath>

namespace mlsysim {

const char* to_string(Runtime r) { return r == Runtime::Graph ? "graph" : "eager"; }
const char* to_string(Wall w) {
  switch (w) {
    case Wall::Compute: return "Compute";
    case Wall::Memory: return "Memory";
    case Wall::Overhead: return "Overhead";
  }
  return "?";
}

double wave_utilization(const HardwareSpec& hw, double m, double n, double k) {
  const double units = hw.compute_units;
  if (units <= 0 || m <= 0 || n <= 0) return 1.0;
  const auto& e = hw.efficiency;
  const double tiles = std::ceil(m / e.tile_m) * std::ceil(n / e.tile_n);
  // Split-K (cuBLAS/CUTLASS heuristics): when the tile grid cannot fill the device, the K
  // dimension is split across thread blocks, up to one split per 512 of depth.
  const double max_splits = std::max(1.0, std::floor(k / 512.0));
  const double splits = tiles < units ? std::min(std::ceil(units / tiles), max_splits) : 1.0;
  const double blocks = tiles * splits;
  const double waves = std::ceil(blocks / units);
  return blocks / (waves * units);
}

namespace {

// Vector units: the fp32 (non-tensor) peak where the device lists one, else its lowest peak.
FlopsPerSecond vector_peak(const HardwareSpec& hw) {
  if (hw.supports(Precision::FP32)) return hw.peak(Precision::FP32);
  FlopsPerSecond lowest{};
  for (Precision p : kAllPrecisions)
    if (hw.supports(p) && (lowest.si() == 0 || hw.peak(p) < lowest)) lowest = hw.peak(p);
  return lowest;
}

}  // namespace

FlopsPerSecond achieved_flops(const RateModel& r, const Operator& op) {
  const HardwareSpec& hw = *r.hw;
  const FlopsPerSecond peak = hw.peak(op.precision);
  if (r.teaching_efficiency > 0) return peak * r.teaching_efficiency;
  const EfficiencyProfile& e = hw.efficiency;
  switch (op.cls) {
    case OpClass::Gemm:
      return peak * e.gemm[index_of(op.precision)] * wave_utilization(hw, op.m, op.n, op.k);
    case OpClass::Conv:
      return peak * e.conv * wave_utilization(hw, op.m, op.n, op.k);
    case OpClass::Attention:
      return peak * e.attention;
    case OpClass::Opaque:
      return peak * e.conv;
    case OpClass::Vector: case OpClass::Gather: case OpClass::Optimizer:
      return vector_peak(hw) * e.vector;
  }
  return peak;
}

BytesPerSecond achieved_bandwidth(const RateModel& r) {
  if (r.teaching_efficiency > 0) return r.hw->memory_bandwidth;  // textbook: datasheet bandwidth
  return r.hw->memory_bandwidth * r.hw->efficiency.memory;
}

OpTiming time_operator(const RateModel& r, const Operator& op) {
  OpTiming t;
  const FlopsPerSecond rate = achieved_flops(r, op);
  // Tensor cores compute whole MMA tiles: an m below 16 rows still costs 16 (mma.m16n8k16).
  double hw_flops = op.hw_flops;
  if (op.cls == OpClass::Gemm && r.teaching_efficiency <= 0 && op.m > 0 && op.m < 16)
    hw_flops *= 16.0 / op.m;
  t.compute = (rate.si() > 0 ? Flops(hw_flops) / rate : Seconds(0)) * op.count;
  t.memory = Bytes(op.bytes) / achieved_bandwidth(r) * op.count;
  if (r.teaching_efficiency > 0) return t;  // the textbook model has no launch term
  const EfficiencyProfile& e = r.hw->efficiency;
  const double launches = op.kernels * op.count;
  if (r.runtime == Runtime::Graph) {
    t.overhead = e.kernel_overhead * launches;
  } else {
    // Eager frameworks issue each kernel from the host; the GPU runs ahead when kernels are long,
    // so a kernel costs max(its body + launch gap, host dispatch time).
    const Seconds body_per_launch = t.body() / std::max(launches, 1.0);
    const Seconds per_launch = max(body_per_launch + e.kernel_overhead, e.host_dispatch);
    t.overhead = (per_launch - body_per_launch) * launches;
  }
  return t;
}

}  // namespace mlsysim
