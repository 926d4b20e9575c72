// CompressionModel: quantization and pruning priced through the engine, not fixed ratios. The
// speedup is the ratio of two engine solves (baseline vs compressed) of the same decode (and
// prefill) step; storage follows from bytes per weight; the accuracy change is a literature range
// (catalog/compression_literature.hpp); the fleet impact comes from the serving solver.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "mlsysim/catalog/hardware.hpp"
#include "mlsysim/catalog/model.hpp"
#include "mlsysim/physics/compression.hpp"
#include "mlsysim/physics/efficiency.hpp"
#include "mlsysim/physics/memory.hpp"
#include "mlsysim/physics/operations.hpp"
#include "mlsysim/units/quantity.hpp"

namespace mlsysim {

enum class CompressionMethod { Quantization, Pruning };
enum class QuantScheme { Auto, WeightOnly, WeightsActivations };
const char* to_string(CompressionMethod m);
const char* to_string(QuantScheme s);

inline constexpr double kHoursPerYear = 8760.0;

// The most requests per second a fleet is sized for: 1e9/s is a request every eight seconds from
// every person on Earth, four orders of magnitude past the largest web services (~1e5 searches/s).
// Above it the replica count means nothing; with it, replicas (int64) cannot overflow.
inline constexpr double kMaxFleetQps = 1e9;

// Defaults of the steps compress times, each clamped to the model's window (max_seq) when the model
// handles fewer tokens; an explicit value that does not fit is an error naming its flag.
inline constexpr int kDefaultCompressContext = 1024;
inline constexpr int kDefaultCompressPrefillTokens = 2048;
inline constexpr int kDefaultFleetSeqLen = 4096;

struct CompressionRequest {
  CompressionMethod method = CompressionMethod::Quantization;
  std::optional<Precision> target;       // quantization target (fp8, int8, int4, ...)
  QuantScheme scheme = QuantScheme::Auto; // auto: weight-only below 8 bits, weights+activations at 8
  double sparsity = 0.5;
  SparsityType sparsity_type = SparsityType::Unstructured;
  Precision baseline = Precision::FP16;
  // The step whose speedup is reported (decode: the tutorial's batch-1 ITL) and a prefill step of
  // `batch` prompts. Unset: the defaults above, clamped to the model's window.
  int batch = 1;
  std::optional<int> context, prefill_tokens;
  // Fleet table.
  bool fleet = true;
  double qps = 0;                 // > 0: replicas needed for this request rate (<= kMaxFleetQps)
  // 8 concurrent 4K-context requests per replica: Llama-3 70B int4 (38.4 GB with its 16-bit
  // embedding table and head) then fits one H100 with room to spare; at 20, its KV and one
  // full-batch prefill's activations pass 90% of the 85.0 GB usable and the replica needs tp 2.
  // Unset fleet_seq_len: kDefaultFleetSeqLen, shortened so prompt + output - 1 fits the window.
  int fleet_batch = 8, fleet_output_len = 256;
  std::optional<int> fleet_seq_len;
  bool quantize_head = false;     // SolveRequest::quantize_head, for the quantized variants
  OperatingCosts costs;           // fleet: $/GPU-hour, PUE and grid for annual cost, energy, CO2
  double efficiency = 0;
  Runtime runtime = Runtime::Graph;
};

// The shapes compress actually timed: the request's, with unset ones defaulted to fit the window.
struct CompressionShapes {
  int batch = 1, context = 0, prefill_tokens = 0;
  int fleet_batch = 0, fleet_seq_len = 0, fleet_output_len = 0;
};

// A replica that fits: its GPUs, latencies, throughput and the fleet built of it.
struct FleetReplica {
  int gpus_per_replica = 0;    // the smallest tensor-parallel degree that fits
  Seconds ttft{}, itl{};
  double replica_qps = 0;      // fleet_batch / end-to-end latency
  std::int64_t replicas = 1;   // ceil(qps / replica_qps), 1 without a qps
  std::int64_t total_gpus = 0;
  Usd annual_cost{};           // total_gpus x $/GPU-hour x 8760 h
  // A year of the fleet's GPUs at their serving power (engine energy per token x request
  // throughput), at the facility (x PUE), and its operational CO2.
  Joules annual_energy{};
  KgCO2e annual_emissions{};
};

struct FleetRow {
  std::string label;
  Bytes model_size{};          // run-time weights
  // Unset when the variant does not fit on kMaxTensorParallel GPUs: nothing to time, count or price.
  std::optional<FleetReplica> replica;
  [[nodiscard]] bool feasible() const { return replica.has_value(); }
};

// Whether one device holds a timed step (the engine's ledger against its usable memory).
struct StepFit {
  bool fits = true;
  MemoryLedger memory;  // what the step holds (weights, KV cache, activations)
  Bytes capacity{};     // the device's usable memory
};

struct CompressionResult {
  std::string label;
  // Names of the tutorial's Python result (CompressionModel.solve).
  Bytes compressed_size{};     // stored size: the bytes of the compressed checkpoint
  double inference_speedup = 1;  // decode step: baseline / compressed (engine)
  double accuracy_delta = 0;     // midpoint of the literature range (fraction; negative = loss)

  Bytes original_size{};
  Bytes runtime_weight_bytes{};  // what sits in device memory while serving (the engine's ledger)
  double compression_ratio = 1, memory_savings = 0;
  double prefill_speedup = 1;
  CompressionShapes shapes;
  Seconds baseline_itl{}, compressed_itl{}, baseline_ttft{}, compressed_ttft{};
  Wall baseline_decode_wall = Wall::Memory, compressed_decode_wall = Wall::Memory,
       baseline_prefill_wall = Wall::Compute, compressed_prefill_wall = Wall::Compute;
  // The timed steps on one device: a step that does not fit is still timed (the speedup is a ratio
  // of per-device work) but reported as not fitting.
  StepFit baseline_decode_fit, compressed_decode_fit, baseline_prefill_fit, compressed_prefill_fit;
  std::string math_precision;    // what the compressed step computes in
  bool hardware_supported = true;  // the device has the low-precision / sparse math path
  bool stored_dense = false;     // pruning: the sparse format would be larger, so it is stored dense
  double accuracy_delta_low = 0, accuracy_delta_high = 0;
  std::string accuracy_source;
  UsdPerSecond gpu_rate = kDefaultGpuRate;  // the price per GPU the fleet was costed at
  std::vector<FleetRow> fleet;
  std::vector<std::string> trace;
};

CompressionResult compress(const ModelSpec& model, const HardwareSpec& hw, const CompressionRequest& r);

}  // namespace mlsysim
