// CompressionModel: quantization and pruning priced through the engine, not fixed ratios. The
// speedup is the ratio of two engine solves (baseline vs compressed) of the same decode (and
// prefill) step; storage follows from bytes per weight; the accuracy change is a literature range
// (catalog/compression_literature.hpp); the fleet impact comes from the serving solver.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "mlsysim/catalog/hardware.hpp"
#include "mlsysim/catalog/model.hpp"
#include "mlsysim/physics/compression.hpp"
#include "mlsysim/physics/efficiency.hpp"
#include "mlsysim/physics/operations.hpp"
#include "mlsysim/units/quantity.hpp"

namespace mlsysim {

enum class CompressionMethod { Quantization, Pruning };
enum class QuantScheme { Auto, WeightOnly, WeightsActivations };
const char* to_string(CompressionMethod m);
const char* to_string(QuantScheme s);

inline constexpr double kHoursPerYear = 8760.0;

struct CompressionRequest {
  CompressionMethod method = CompressionMethod::Quantization;
  std::optional<Precision> target;       // quantization target (fp8, int8, int4, ...)
  QuantScheme scheme = QuantScheme::Auto; // auto: weight-only below 8 bits, weights+activations at 8
  double sparsity = 0.5;
  SparsityType sparsity_type = SparsityType::Unstructured;
  Precision baseline = Precision::FP16;
  // The step whose speedup is reported (decode: the tutorial's batch-1 ITL) and a prefill step.
  int batch = 1, context = 1024, prefill_tokens = 2048;
  // Fleet table.
  bool fleet = true;
  double qps = 0;                 // > 0: replicas needed for this request rate
  // 8 concurrent 4K-context requests per replica: Llama-3 70B int4 (38.4 GB with its 16-bit
  // embedding table and head) then fits one H100 with room to spare; at 20, its KV and one
  // full-batch prefill's activations pass 90% of the 85.0 GB usable and the replica needs tp 2.
  int fleet_batch = 8, fleet_seq_len = 4096, fleet_output_len = 256;
  bool quantize_head = false;     // SolveRequest::quantize_head, for the quantized variants
  OperatingCosts costs;           // fleet: $/GPU-hour, PUE and grid for annual cost, energy, CO2
  double efficiency = 0;
  Runtime runtime = Runtime::Graph;
};

struct FleetRow {
  std::string label;
  Bytes model_size{};          // run-time weights
  int gpus_per_replica = 0;    // tensor-parallel degree that fits (0: does not fit on 8)
  bool feasible = false;
  Seconds ttft{}, itl{};
  double replica_qps = 0;      // fleet_batch / end-to-end latency
  int replicas = 1;
  int total_gpus = 0;
  Usd annual_cost{};           // total_gpus x $/GPU-hour x 8760 h
  // A year of the fleet's GPUs at their serving power (engine energy per token x request
  // throughput), at the facility (x PUE), and its operational CO2.
  Joules annual_energy{};
  KgCO2e annual_emissions{};
};

struct CompressionResult {
  std::string label;
  // Names of the tutorial's Python result (CompressionModel.solve).
  Bytes compressed_size{};     // stored size
  double inference_speedup = 1;  // decode step: baseline / compressed (engine)
  double accuracy_delta = 0;     // midpoint of the literature range (fraction; negative = loss)

  Bytes original_size{};
  Bytes runtime_weight_bytes{};  // what sits in device memory while serving (the engine's ledger)
  double compression_ratio = 1, memory_savings = 0;
  double prefill_speedup = 1;
  Seconds baseline_itl{}, compressed_itl{}, baseline_ttft{}, compressed_ttft{};
  Wall baseline_decode_wall = Wall::Memory, compressed_decode_wall = Wall::Memory,
       baseline_prefill_wall = Wall::Compute, compressed_prefill_wall = Wall::Compute;
  std::string math_precision;    // what the compressed step computes in
  bool hardware_supported = true;  // the device has the low-precision / sparse math path
  double accuracy_delta_low = 0, accuracy_delta_high = 0;
  std::string accuracy_source;
  double gpu_hour_usd = kDefaultGpuHourUsd;
  std::vector<FleetRow> fleet;
  std::vector<std::string> trace;
};

CompressionResult compress(const ModelSpec& model, const HardwareSpec& hw, const CompressionRequest& r);

}  // namespace mlsysim
