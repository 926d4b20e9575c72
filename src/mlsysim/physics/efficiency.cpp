#include "mlsysim/physics/efficiency.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>

#include "mlsysim/errors.hpp"

namespace mlsysim {
namespace {

bool same_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

// The enum value whose to_string() is `value` (any case, as model and device names are); else
// BadInput naming `what` and every spelling.
template <class E, size_t N>
E parse_named(std::string_view value, std::string_view what, const E (&all)[N]) {
  std::string valid;
  for (E v : all) {
    if (same_ignoring_case(value, to_string(v))) return v;
    if (!valid.empty()) valid += '|';
    valid += to_string(v);
  }
  throw BadInput(std::string(what) + " must be " + valid + "; got '" + std::string(value) + "'");
}

}  // namespace

const char* to_string(Runtime r) {
  switch (r) {
    case Runtime::Graph: return "graph";
    case Runtime::Eager: return "eager";
    case Runtime::Isolated: return "isolated";
  }
  return "?";
}
const char* to_string(Fusion f) {
  switch (f) {
    case Fusion::Auto: return "auto";
    case Fusion::Fused: return "fused";
    case Fusion::Unfused: return "unfused";
    case Fusion::Hf: return "hf";
  }
  return "?";
}
const char* to_string(AttentionKernel a) {
  switch (a) {
    case AttentionKernel::Flash: return "flash";
    case AttentionKernel::Materialized: return "materialized";
    case AttentionKernel::FlashAttention2: return "fa2";
  }
  return "?";
}
AttentionKernel parse_attention_kernel(std::string_view value, std::string_view what) {
  constexpr AttentionKernel kAll[] = {AttentionKernel::Flash, AttentionKernel::Materialized,
                                      AttentionKernel::FlashAttention2};
  return parse_named(value, what, kAll);
}
const char* to_string(ActivationScaling s) {
  switch (s) {
    case ActivationScaling::Static: return "static";
    case ActivationScaling::Dynamic: return "dynamic";
  }
  return "?";
}
ActivationScaling parse_activation_scaling(std::string_view value, std::string_view what) {
  constexpr ActivationScaling kAll[] = {ActivationScaling::Static, ActivationScaling::Dynamic};
  return parse_named(value, what, kAll);
}
Runtime parse_runtime(std::string_view value, std::string_view what) {
  if (same_ignoring_case(value, to_string(Runtime::Isolated)))
    throw BadInput(std::string(what) + " isolated times one kernel alone: use it with `mlsysim kernel`; "
                   "a whole step runs graph or eager");
  constexpr Runtime kAll[] = {Runtime::Graph, Runtime::Eager};
  return parse_named(value, what, kAll);
}
Runtime parse_kernel_runtime(std::string_view value, std::string_view what) {
  constexpr Runtime kAll[] = {Runtime::Graph, Runtime::Eager, Runtime::Isolated};
  return parse_named(value, what, kAll);
}
Fusion parse_fusion(std::string_view value, std::string_view what) {
  constexpr Fusion kAll[] = {Fusion::Auto, Fusion::Fused, Fusion::Unfused, Fusion::Hf};
  return parse_named(value, what, kAll);
}
Fusion resolve_fusion(Fusion f, Runtime r) {
  if (f != Fusion::Auto) return f;
  return r == Runtime::Graph ? Fusion::Fused : Fusion::Unfused;
}
const char* to_string(Wall w) {
  switch (w) {
    case Wall::Compute: return "Compute";
    case Wall::Memory: return "Memory";
    case Wall::Overhead: return "Overhead";
  }
  return "?";
}

namespace {
// Tile edge along one dimension: the kernel's tile, shrunk for small problems (cuBLAS picks
// narrow tiles for skinny GEMMs) but never below the 16-row tensor-core MMA (mma.m16n8k16).
double tile_edge(double extent, int tile) {
  // An extent of a whole tile or more gets the tile (the doubling below would stop at it): most
  // GEMMs and convolutions, answered without the loop's hard-to-predict exit.
  if (extent >= tile) return tile;
  double edge = 16;
  while (edge < extent && edge < tile) edge *= 2;
  return std::min<double>(edge, tile);
}
}  // namespace

double gemm_padded_flops(const HardwareSpec& hw, double m, double n, double k) {
  const double units = hw.compute_units;
  if (m <= 0 || n <= 0 || k <= 0) return 0;
  const double tm = tile_edge(m, hw.efficiency.tile_m), tn = tile_edge(n, hw.efficiency.tile_n);
  const double tiles = std::ceil(m / tm) * std::ceil(n / tn);
  if (units <= 0) return 2.0 * tiles * tm * tn * k;  // unknown unit count: padding only
  if (tiles >= units) {  // large grids run one full-depth pass per tile, in waves
    return std::ceil(tiles / units) * units * 2.0 * tm * tn * k;
  }
  // Split-K only when the tile grid cannot fill the device: choose the split s (<= k/512, <= 16)
  // minimizing waves(s)/s, the time in units of one full-depth tile. Integer arithmetic: this runs
  // for every GEMM of every solve.
  const long t = static_cast<long>(tiles), u = static_cast<long>(units);
  const long max_splits = std::clamp(static_cast<long>(k / 512.0), 1L, 16L);
  long best_waves = 1, best_splits = 1;  // s = 1: one wave (tiles < units)
  // waves(s) = ceil(t s / u), kept without a division per split: t < u, so going from s - 1 to s
  // adds fewer than u blocks and at most one wave (a small-batch solve meets this on most GEMMs).
  long blocks = t, waves = 1;
  for (long s = 2; s <= max_splits; ++s) {
    blocks += t;
    if (blocks > waves * u) ++waves;
    if (waves * best_splits < best_waves * s) best_waves = waves, best_splits = s;
  }
  return static_cast<double>(best_waves) / best_splits * units * 2.0 * tm * tn * k;
}

double wave_utilization(const HardwareSpec& hw, double m, double n, double k) {
  const double padded = gemm_padded_flops(hw, m, n, k);
  return padded > 0 ? 2.0 * m * n * k / padded : 1.0;
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

// The peak an operator runs at: its own precision, or (when the device lacks that path, e.g.
// 16-bit attention on an fp16-only part) the nearest 16/32-bit path the device has.
FlopsPerSecond operator_peak(const HardwareSpec& hw, Precision p) {
  if (hw.supports(p)) return hw.peak(p);
  for (Precision q : {Precision::BF16, Precision::FP16, Precision::FP32, Precision::INT8})
    if (hw.supports(q)) return hw.peak(q);
  return vector_peak(hw);
}

}  // namespace

// The longest query block of a FlashAttention-style call runs last, alone on one SM
// (EfficiencyProfile::attention_tail): its FLOPs at one SM's share of the peak, scaled by the
// calibrated coefficient. Zero for the textbook model and for uncalibrated devices.
Seconds attention_tail(const RateModel& r, const Operator& op) {
  const HardwareSpec& hw = *r.hw;
  const double coefficient = hw.efficiency.attention_tail;
  if (op.cls != OpClass::Attention || r.teaching_efficiency > 0 || coefficient <= 0 ||
      hw.compute_units <= 0 || op.tail_flops <= 0)
    return Seconds(0);
  // The default kernel's last block runs at its pass's and head dim's rate like the rest of the call.
  const FlopsPerSecond per_sm = operator_peak(hw, op.precision) * default_attention_factor(hw.efficiency, op) /
                                static_cast<double>(hw.compute_units);
  return Flops(coefficient * op.tail_flops) / per_sm;
}

// Softmax exponentials of a FlashAttention-2 kernel: one exp per score on the special-function units.
// FlashAttention-3's paper (Shah et al. 2024, sec. 3.2) puts the H100's 3.9 T special-function ops/s
// against 989 TFLOP/s of matmul: at head dim 128 (512 matmul FLOPs per score) the exponentials take
// half as long as the matmuls at peak, at head dim 64 as long, at 256 a quarter. FlashAttention-2 runs
// its softmax between the two matmuls of a tile in the same warps, so the exponentials add to the
// matmul time (overlapping them is what FlashAttention-3 adds, ibid. sec. 3.1-3.2). The fused kernel
// of the default path (AttentionKernel::Flash: cuDNN, FlashAttention-3) overlaps part of them; how
// much cannot be told apart from its matmul rate with calibration timings at one head dim, so its
// calibrated efficiency keeps them inside (docs/PHYSICS.md, "Attention kernels").
Seconds softmax_exponential_time(const RateModel& r, const Operator& op) {
  if (op.cls != OpClass::Attention || op.attention_kernel != AttentionKernel::FlashAttention2 ||
      r.teaching_efficiency > 0 || r.hw->special_function_rate.si() <= 0)
    return Seconds(0);
  return Flops(op.special_function_ops) / r.hw->special_function_rate;
}

void require_attention_kernel(const HardwareSpec& hw, AttentionKernel k) {
  if (k != AttentionKernel::FlashAttention2) return;
  if (hw.efficiency.flash_attention2 <= 0)
    throw BadInput(hw.id + " has no FlashAttention-2 calibration (--attention fa2): time FA2 on it with "
                   "bench/gpu/microbench.py (its prefill_backend rows) and fit them with `mlsysim calibrate "
                   "--from FILE`, or use --attention flash, the device's calibrated fused kernel");
  if (hw.special_function_rate.si() <= 0)
    throw BadInput(hw.id + " lists no special_function_tops, which --attention fa2 needs for its softmax "
                   "exponentials; add it to the device entry, or use --attention flash");
}

double attention_head_dim_factor(const EfficiencyProfile& e, double head_dim) {
  return head_dim_factor(e.attention_head_dim_rates, head_dim);
}

double default_attention_factor(const EfficiencyProfile& e, const Operator& op) {
  if (op.cls != OpClass::Attention || op.attention_kernel != AttentionKernel::Flash) return 1.0;
  if (op.pass != Pass::Backward) return attention_head_dim_factor(e, op.k);  // op.k: the head dim
  const double relative = e.attention_backward > 0 ? e.attention_backward : 1.0;
  const auto& table = e.attention_backward_head_dim_rates.empty() ? e.attention_head_dim_rates
                                                                  : e.attention_backward_head_dim_rates;
  return relative * head_dim_factor(table, op.k);
}

double head_dim_factor(const std::vector<HeadDimRate>& table, double head_dim) {
  // table: sorted by head dim (catalog and calibrate)
  if (table.empty() || head_dim <= 0) return 1.0;
  if (head_dim <= table.front().head_dim) return table.front().relative_rate;
  if (head_dim >= table.back().head_dim) return table.back().relative_rate;
  for (size_t i = 1; i < table.size(); ++i) {
    const HeadDimRate &lo = table[i - 1], &hi = table[i];
    if (head_dim > hi.head_dim) continue;
    const double x = std::log2(head_dim / lo.head_dim) / std::log2(hi.head_dim / lo.head_dim);
    return lo.relative_rate + x * (hi.relative_rate - lo.relative_rate);
  }
  return table.back().relative_rate;
}

namespace {
// FlashAttention-2's matmul rate for this pass: the backward's where fitted, else the forward's.
double flash_attention2_efficiency(const EfficiencyProfile& e, Pass p) {
  return p == Pass::Backward && e.flash_attention2_backward > 0 ? e.flash_attention2_backward : e.flash_attention2;
}
}  // namespace

double sustained_clock_factor(const RateModel& r) {
  const EfficiencyProfile& e = r.hw->efficiency;
  const double burst = e.gemm[index_of(Precision::BF16)];
  if (!r.sustained || r.teaching_efficiency > 0 || e.sustained_gemm <= 0 || burst <= 0) return 1.0;
  return std::min(1.0, e.sustained_gemm / burst);
}

FlopsPerSecond achieved_flops(const RateModel& r, const Operator& op) {
  const HardwareSpec& hw = *r.hw;
  const FlopsPerSecond matrix_peak = operator_peak(hw, op.precision);
  if (r.teaching_efficiency > 0) return matrix_peak * r.teaching_efficiency;
  // The matrix engines' clock in this run (vector units and memory keep theirs: a memory-bound
  // kernel draws less than the limit).
  const FlopsPerSecond peak = matrix_peak * sustained_clock_factor(r);
  const EfficiencyProfile& e = hw.efficiency;
  switch (op.cls) {
    case OpClass::Gemm:
      return peak * e.gemm[index_of(op.precision)];
    case OpClass::Conv:
      return peak * e.conv;
    case OpClass::Attention: {
      // op.n carries the mean keys visited per query row (lowering.cpp).
      const double keys = op.n;
      const double shape = e.attention_half_keys > 0 && keys > 0
                               ? keys / (keys + e.attention_half_keys) : 1.0;
      // FlashAttention-2: its own matmul rate per pass, its head-dim dependence being its exponentials
      // (softmax_exponential_time). The default kernel: the calibrated rate times its pass's and head
      // dim's factor.
      const double eta = op.attention_kernel == AttentionKernel::FlashAttention2
                             ? flash_attention2_efficiency(e, op.pass)
                             : e.attention * default_attention_factor(e, op);
      return peak * (eta * shape);
    }
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

BytesPerSecond achieved_bandwidth(const RateModel& r, OpClass cls) {
  const EfficiencyProfile& e = r.hw->efficiency;
  const bool vector_kernel = cls == OpClass::Vector || cls == OpClass::Optimizer;
  if (r.teaching_efficiency > 0 || !vector_kernel || e.vector_memory <= 0) return achieved_bandwidth(r);
  return r.hw->memory_bandwidth * e.vector_memory;
}

// Strided element-wise kernels stream at their own (lower) calibrated rate; the rest of the bytes
// at the class's rate.
BytesPerSecond strided_bandwidth(const RateModel& r) {
  const double eta = r.hw->efficiency.strided_memory;
  if (r.teaching_efficiency > 0 || eta <= 0) return achieved_bandwidth(r, OpClass::Vector);
  return r.hw->memory_bandwidth * eta;
}

Seconds memory_time(const RateModel& r, const Operator& op) {
  const double strided = std::clamp(op.strided_bytes, 0.0, op.bytes);
  const BytesPerSecond strided_rate = strided_bandwidth(r);
  // Most operators have no strided bytes: at a positive rate their time is that same (signed)
  // zero, so the division is skipped and the sum below is unchanged to the bit.
  const Seconds strided_time =
      strided == 0 && strided_rate.si() > 0 ? Seconds(strided) : Bytes(strided) / strided_rate;
  return Bytes(op.bytes - strided) / achieved_bandwidth(r, op.cls) + strided_time;
}

// A calibration-measured convolution of the same implicit-GEMM shape (output channels, input
// channels x taps, pixels per image) in a 16-bit format, at the batch nearest to the operator's.
const MeasuredConv* measured_conv(const EfficiencyProfile& e, const Operator& op) {
  if (op.cls != OpClass::Conv || bytes_per_element(op.precision) != 2.0) return nullptr;
  const MeasuredConv* best = nullptr;
  double best_batch = 0, best_distance = -1;  // -1: not taken yet (one match needs no distance)
  for (const MeasuredConv& c : e.conv_measured) {
    if (c.n != op.n || c.k != op.k || c.out_pixels <= 0 || c.flops_per_s <= 0) continue;
    const double batch = op.m / c.out_pixels;
    if (batch < 1 || std::fabs(batch - std::round(batch)) > 1e-9 * batch) continue;
    if (!best) {
      best = &c, best_batch = batch;
      continue;
    }
    // The logarithms only where two timed batches compete (most shapes are timed at one batch).
    if (best_distance < 0) best_distance = std::fabs(std::log(best_batch / best->batch));
    const double distance = std::fabs(std::log(batch / c.batch));
    if (distance < best_distance) best = &c, best_batch = batch, best_distance = distance;
  }
  return best;
}

namespace {
// FLOP time of all repeats on the tensor (or vector) units, before any dequantization side work.
Seconds unit_compute_time(const RateModel& r, const Operator& op) {
  // A shape the calibration timed: its measured rate replaces the tile model. Looked up first
  // because it makes the rate and tile arithmetic moot (a calibrated device times most of a
  // CNN's convolutions this way); the attention terms below are zero for a convolution.
  if (r.teaching_efficiency <= 0 && !r.hw->efficiency.conv_measured.empty())
    if (const MeasuredConv* c = measured_conv(r.hw->efficiency, op))
      return Flops(op.flops) / FlopsPerSecond(c->flops_per_s) * op.count;
  const FlopsPerSecond rate = achieved_flops(r, op);
  // Tiled operators pay for padded tiles and partly idle waves (not in the textbook model).
  double hw_flops = op.hw_flops;
  const bool tiled = op.cls == OpClass::Gemm || op.cls == OpClass::Conv;
  if (tiled && r.teaching_efficiency <= 0 && op.m > 0 && op.flops > 0)
    hw_flops *= gemm_padded_flops(*r.hw, op.m, op.n, op.k) / (2.0 * op.m * op.n * op.k);
  Seconds compute = (rate.si() > 0 ? Flops(hw_flops) / rate : Seconds(0)) * op.count;
  // Both attention terms are zero for every other class: called only for attention, so the
  // running sum stays in a register (the zeros still add, leaving the sum bit for bit the same).
  const bool attention = op.cls == OpClass::Attention;
  compute += (attention ? attention_tail(r, op) : Seconds(0)) * op.count;
  compute += (attention ? softmax_exponential_time(r, op) : Seconds(0)) * op.count;
  return compute;
}
}  // namespace

OpTiming time_operator(const RateModel& r, const Operator& op) {
  OpTiming t;
  t.compute = unit_compute_time(r, op);
  // Vector-unit side work (dequantization) runs beside the tensor cores: the slower one binds.
  if (op.vector_flops > 0 && r.teaching_efficiency <= 0) {
    const FlopsPerSecond vector_rate = vector_peak(*r.hw) * r.hw->efficiency.vector;
    if (vector_rate.si() > 0) t.compute = max(t.compute, Flops(op.vector_flops) / vector_rate * op.count);
  }
  t.memory = memory_time(r, op) * op.count;
  if (r.teaching_efficiency > 0) return t;  // the textbook model has no launch term
  const EfficiencyProfile& e = r.hw->efficiency;
  const double launches = op.kernels * op.count;
  const double host_calls = (op.host_ops > 0 ? op.host_ops : op.kernels) * op.count;
  if (r.runtime == Runtime::Graph) {
    t.overhead = e.kernel_overhead * launches;
  } else if (r.runtime == Runtime::Isolated) {
    // Each call pays the measured fixed cost of an isolated call (EfficiencyProfile::isolated_call),
    // or, uncalibrated, the host dispatch plus the launch.
    const Seconds per_call =
        e.isolated_call.si() > 0 ? e.isolated_call : e.host_dispatch + e.kernel_overhead;
    t.overhead = per_call * host_calls;
  } else {
    // Eager frameworks issue each call from the host; the GPU runs ahead when kernels are long, so
    // the operator alone costs max(its bodies + launch gaps, its host dispatch time). Within a step
    // the host also runs ahead across operators: see physics/launch_queue.hpp.
    t.launch_gaps = e.kernel_overhead * launches;
    // Convolution calls carry cuDNN's per-call host work on top (EfficiencyProfile::conv_host_dispatch).
    const bool conv_call = op.cls == OpClass::Conv && e.conv_host_dispatch.si() > 0;
    t.host = (conv_call ? e.conv_host_dispatch : e.host_dispatch) * host_calls;
    t.overhead = max(t.body() + t.launch_gaps, t.host) - t.body();
  }
  return t;
}

}  // namespace mlsysim
