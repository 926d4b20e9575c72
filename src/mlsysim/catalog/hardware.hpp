// Hardware catalog entries: datasheet numbers with their sources, plus the device's efficiency
// profile (how close real kernels get to those numbers), either calibrated or a documented default.
#pragma once

#include <array>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "mlsysim/physics/precision.hpp"
#include "mlsysim/units/quantity.hpp"

namespace mlsysim {

using namespace units;  // NOLINT: quantity names are the vocabulary of the whole library

struct Link {
  std::string name;
  BytesPerSecond per_direction{};  // one direction; datasheets often quote the bidirectional sum
  Seconds latency{};
  // How many devices it joins: 2 for an NVLink bridge; 0 for a link that joins every device of a
  // server (NVLink/xGMI meshes, ICI, integrated RoCE, a host link through the PCIe switch).
  int reach = 0;
  // Whether the driver lets devices on it read and write each other's memory (PCIe peer-to-peer).
  // GeForce cards' drivers refuse it, so their collectives are staged through host memory.
  bool peer_to_peer = true;
};

// How close real kernels come to datasheet peaks on a device (physics/efficiency.hpp uses it).
// One convolution shape timed by the calibration microbenchmark (implicit-GEMM view: n = output
// channels, k = input channels x kernel taps, out_pixels per image), with its achieved FLOP/s.
struct MeasuredConv {
  double n = 0, k = 0, out_pixels = 0, batch = 0, flops_per_s = 0;
};

// The default fused attention kernel's rate at one head dim, relative to its rate at head dim 128.
struct HeadDimRate {
  double head_dim = 0;
  double relative_rate = 1;
};

struct EfficiencyProfile {
  double memory = 0.85;  // achieved / datasheet streaming bandwidth
  std::array<double, kPrecisionCount> gemm{};  // large-GEMM achieved / dense peak, per precision
  // The BF16 matmul rate a board holds once a long run pins it at its power limit, as a fraction of
  // the dense peak: the Maximum Sustainable Matmul FLOPS (MSMF), below the short-burst rate `gemm`
  // is timed at because the clock settles below boost to stay within the limit. Training steps keep
  // the tensor cores saturated for seconds on end, so their matrix kernels run at the clock this
  // implies (physics/efficiency.hpp, sustained_clock_factor). 0: not measured (no slowdown modelled).
  double sustained_gemm = 0;
  std::string sustained_gemm_source;  // where that rate comes from
  double attention = 0.5;   // fused attention kernels, fraction of dense peak (long sequences)
  // Attention rate falls for short key ranges: each query tile pays a fixed prologue/epilogue
  // (load Q, rescale, write O) against work proportional to the keys it visits, so
  // rate = attention x keys / (keys + attention_half_keys). 0: no such term (uncalibrated).
  double attention_half_keys = 0;
  // The causal tail: a FlashAttention-style kernel gives each SM one query block (128 rows) at a
  // time, and the block with the most keys (the last one of a causal sequence) finishes alone at
  // the end, the rest of the GPU idle. Time added per call = attention_tail x that block's FLOPs /
  // (peak / compute_units). Fitted by `mlsysim calibrate` together with the two terms above
  // (~1.2 on H100 and H200); 0: no such term (uncalibrated, or compute_units unknown).
  double attention_tail = 0;
  // FlashAttention-2's matmul rate, fraction of the dense peak, for AttentionKernel::FlashAttention2
  // (its softmax exponentials are timed apart, on HardwareSpec::special_function_rate). Fitted by
  // `mlsysim calibrate` from FlashAttention-2 kernel timings; 0: not calibrated (fa2 unavailable).
  double flash_attention2 = 0;
  // Its backward kernel's matmul rate (5 matmuls, dQ accumulated across key blocks), fitted apart
  // from backward timings; 0: the forward's rate.
  double flash_attention2_backward = 0;
  std::string flash_attention2_source;  // where flash_attention2 (and its backward) come from
  // The default fused kernel's rate at other head dims, relative to head dim 128 (the head dim the
  // `attention` terms above are timed at): shorter heads give each tile's two matmuls less depth
  // (QK^T's k, PV's n) against the same per-score softmax work. Piecewise linear in log2(head dim)
  // between the listed points, flat beyond the ends; empty: no head-dim dependence. Fitted by
  // `mlsysim calibrate` from kernel timings at several head dims (attention_head_dim_factor).
  std::vector<HeadDimRate> attention_head_dim_rates;
  // Its backward kernel (5 matmuls, dQ accumulated across key blocks): rate at head dim 128 relative
  // to the forward's at the same shape (0: the forward's rate), and its own head-dim table (empty:
  // the forward's table).
  double attention_backward = 0;
  std::vector<HeadDimRate> attention_backward_head_dim_rates;
  std::string attention_head_dim_source;  // where the head-dim tables and the backward rate come from
  double conv = 0.6;        // dense convolutions (im2col/implicit GEMM), fraction of dense peak
  double vector = 0.5;      // element-wise math on vector units, fraction of the fp32 peak
  // Element-wise and normalization kernels stream at a lower fraction of the datasheet bandwidth
  // than a plain copy (index math, reductions, partial vectorization). 0: use `memory`.
  double vector_memory = 0;
  // Element-wise kernels over strided or sliced operands (a transposed view, a chunk of a fused
  // projection, RoPE's x[..., ::2]) cannot use vectorized loads: PyTorch runs them on its generic
  // index-computing kernel, which on Hopper streams at ~40-55% of the datasheet bandwidth
  // (bench/gpu/microbench.py `vector` rows). 0: same as vector_memory.
  double strided_memory = 0;
  // Convolution shapes measured on this device (16-bit); the engine uses their rate for a matching
  // operator instead of the tile model, because libraries run some shapes far from it (e.g. the
  // 3-channel 7x7 stem at ~3% of peak on H100).
  std::vector<MeasuredConv> conv_measured;
  Seconds kernel_overhead{};  // per kernel, graph-launched runtime (launch gap + ramp/tail)
  Seconds host_dispatch{};    // per op, eager framework (host dispatch; microbenchmark-fitted)
  // One convolution call's host time in eager module code (cuDNN's per-call plan lookup and
  // descriptor work on top of the framework's dispatch); 0: host_dispatch like any other call.
  Seconds conv_host_dispatch{};
  // Fixed cost of one isolated, individually timed call (Runtime::Isolated): the host launch latency
  // the GPU waits out, plus the launch and ramp. Fitted as the median of t - bytes / bandwidth over
  // the microbenchmark's memory-bound GEMVs, which are such calls. 0: host_dispatch + kernel_overhead.
  Seconds isolated_call{};
  int tile_m = 128, tile_n = 128;  // output tile of one thread block, for wave quantization
  // Board power, fractions of the TDP (physics/power.hpp): the idle floor, the memory-bound and the
  // compute terms of a kernel body. 0: physics/power.cpp's published defaults. Fitted by
  // `mlsysim calibrate` from a microbenchmark's `board_power` readings.
  double power_idle = 0, power_memory = 0, power_compute = 0;
  std::string source;              // where these numbers come from
};

// The most one device-hour can cost, for a catalog rental and for --gpu-hour-usd alike: public clouds
// rent one accelerator for $0.1-$15 an hour, so a larger figure is a node's or a rack's price.
inline constexpr double kMostDeviceHourUsd = 1000;

struct HardwareSpec {
  std::string id, name, vendor, tier, kind;
  std::vector<std::string> aliases;
  int year = 0;
  int compute_units = 0;  // SMs / CUs / cores; 0 = unknown (no wave quantization)
  std::array<FlopsPerSecond, kPrecisionCount> dense_peak{};   // 0 = precision not supported
  std::array<FlopsPerSecond, kPrecisionCount> sparse_peak{};  // 2:4 sparsity; never a default
  Bytes memory_capacity{};  // the datasheet's figure (the textbook's "80 GB"), in SI bytes
  // What a process can allocate: the CUDA/HIP-visible total (cudaMemGetInfo's total, PyTorch's
  // "total capacity"), measured where the catalog cites it, else the datasheet figure. HBM is
  // sold in binary units, so an "80 GB" H100 shows 79.19 GiB = 85.0e9 bytes: 6% more than 80e9.
  Bytes memory_usable{};
  BytesPerSecond memory_bandwidth{};
  std::string memory_type;
  Bytes onchip_memory{};
  std::string onchip_kind;
  // The on-chip memory when it is a last-level cache in front of DRAM (L2, AMD's Infinity Cache),
  // which keeps a producer's output for its consumer; 0 for SRAM-as-memory and core-private caches.
  Bytes last_level_cache{};
  Watts tdp{};
  // Special-function unit throughput (exp2, log2, reciprocal, sin, cos; one operation each), the
  // softmax exponentials' ceiling. 0 = not listed.
  FlopsPerSecond special_function_rate{};
  std::optional<Link> interconnect, host_link;
  std::optional<Usd> price;  // purchase price of one device
  std::string price_note;
  // One device-hour's on-demand cloud rental (the instance price over its devices), where a cloud
  // rents it: the default $/GPU-hour of cost figures (physics/operations.hpp, priced_for). At most
  // kMostDeviceHourUsd.
  std::optional<UsdPerSecond> rental_rate;
  std::string rental_note;
  std::map<std::string, std::string> sources;  // group -> citation
  EfficiencyProfile efficiency;

  [[nodiscard]] bool supports(Precision p) const { return dense_peak[index_of(p)].si() > 0; }
  // What its vendor calls one of it, for text: "GPU", "chip" (TPUs, NPUs, LPUs), "wafer",
  // "accelerator" (Gaudi, Trainium), else "device". Flags and JSON keep "gpu" whatever the device.
  [[nodiscard]] const char* unit_noun() const {
    if (kind == "gpu") return "GPU";
    if (kind == "tpu" || kind == "npu" || kind == "lpu") return "chip";
    if (kind == "wafer") return "wafer";
    if (kind == "accelerator") return "accelerator";
    return "device";
  }
  [[nodiscard]] FlopsPerSecond peak(Precision p) const { return dense_peak[index_of(p)]; }
  // Roofline ridge point: the arithmetic intensity where compute and memory time are equal.
  [[nodiscard]] FlopsPerByte ridge_point(Precision p) const { return peak(p) / memory_bandwidth; }
};

}  // namespace mlsysim
