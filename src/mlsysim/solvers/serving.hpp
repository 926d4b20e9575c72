// LLM serving on top of the engine (ServingModel and ContinuousBatchingModel in the tutorial's
// Python API). Every forward pass is timed by solve() (solvers/engine.hpp): TTFT is a prefill
// solve, ITL a decode solve. This layer adds what a single pass does not know: tensor-parallel
// all-reduces, chunked prefill, speculative decoding, disaggregated prefill/decode with a KV
// transfer, the serving memory budget (weights + KV of every request at its final length), and
// KV-cache allocation (static vs paged). docs/SERVING.md documents the formulas and sources.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "mlsysim/catalog/fleet.hpp"
#include "mlsysim/catalog/hardware.hpp"
#include "mlsysim/catalog/model.hpp"
#include "mlsysim/physics/collectives.hpp"
#include "mlsysim/physics/efficiency.hpp"
#include "mlsysim/physics/operators.hpp"
#include "mlsysim/physics/serving.hpp"
#include "mlsysim/physics/topology.hpp"
#include "mlsysim/solvers/engine.hpp"

namespace mlsysim {

// vLLM's default --gpu-memory-utilization: the share of device memory the server may use.
inline constexpr double kDefaultMemoryUtilization = 0.90;
inline constexpr int kMaxTensorParallel = 8;  // GPUs in one NVLink/xGMI node
// vLLM's default --max-num-batched-tokens with chunked prefill (V1 engine, OpenAI server).
inline constexpr int kVllmBatchedTokens = 8192;

// What a serving request may set on its deployment besides precision, runtime and head format
// (make_deployment's last argument); unset fields keep the defaults.
struct DeploymentOverrides {
  std::optional<Precision> compute_precision;  // SolveRequest::compute_precision: int4/int8 weights, 16-bit math
  std::optional<Seconds> step_host;            // --step-host-us: the engine's host work per iteration
  std::optional<ActivationScaling> activation_scaling;  // SolveRequest::activation_scaling (8-bit inference)
};

// One model replica: the per-GPU shard of `model` under tensor parallelism `tp` on `hw`.
struct ServingDeployment {
  const ModelSpec* model = nullptr;  // the full model
  const HardwareSpec* hw = nullptr;
  ModelSpec shard;                   // what one GPU holds (== *model when tp == 1)
  int tp = 1;
  LinkCost link{};                   // per-direction link the TP all-reduces use
  // The device's standard node in the built-in fleet, when it holds the TP group: the all-reduces
  // then run on its fabric's collective model (NCCL's calibrated ring/NVLS, both protocols);
  // otherwise (no such node, or the textbook model) a ring on `link`.
  std::optional<Cluster> node;
  std::string link_name;
  std::optional<Precision> precision, kv_precision;
  std::optional<Precision> compute_precision;  // SolveRequest::compute_precision (weight-only quantization)
  ActivationScaling activation_scaling = ActivationScaling::Static;  // SolveRequest::activation_scaling
  bool quantize_head = false;        // SolveRequest::quantize_head
  double efficiency = 0;             // > 0: textbook single-efficiency model
  Runtime runtime = Runtime::Graph;
  // Host work of one engine iteration that the GPU waits for (physics/serving.hpp
  // serving_step_host_time); 0 under the textbook model.
  Seconds step_host{};
};


// Throws BadInput for a model that cannot be split `tp` ways, a tp > 1 device with no link, or a
// --step-host-us outside [0, 1 s] (or given to the textbook model).
ServingDeployment make_deployment(const ModelSpec& model, const HardwareSpec& hw, int tp,
                                  std::optional<Precision> precision = {},
                                  std::optional<Precision> kv_precision = {}, double efficiency = 0,
                                  Runtime runtime = Runtime::Graph, const FleetCatalog* fleet = nullptr,
                                  bool quantize_head = false, const DeploymentOverrides& overrides = {});

struct StepTime {
  Seconds latency{};    // engine time of the shard + TP communication
  Seconds comm{};       // the TP all-reduces (2 per layer, Megatron-LM, Shoeybi et al. 2019 sec. 3)
  Profile profile;      // the per-GPU engine profile (model pointer valid while the deployment lives)
};
// One forward step of `batch` sequences of `tokens` new tokens after `context` cached ones.
StepTime time_step(const ServingDeployment& d, Phase phase, int batch, int tokens, int context);
// vLLM's profiling run before it sizes the KV pool (physics/serving.hpp ServingReserve): a forward
// pass over `batched_tokens` tokens (sequences of at most the model's max_seq) and a sampler pass
// over min(`max_num_seqs`, `batched_tokens`) rows of the full vocabulary, plus the runtime's
// non-PyTorch buffers. `forward` is that pass's per-GPU profile (weights, KV format).
struct ProfilingRun {
  Profile forward;
  ServingReserve reserve;
};
ProfilingRun profiling_run(const ServingDeployment& d, int max_num_seqs, int batched_tokens);
// The memory a runtime may use: utilization x the device's usable memory.
Bytes usable_budget(const HardwareSpec& hw, double memory_utilization);
// "; or lower --max-batch ..." / "--max-batched-tokens ..." when the start-up reserve is what
// leaves no room: the remedy for the larger of its two peaks (empty when the reserve is small).
std::string reserve_remedy(const ServingReserve& reserve, Bytes pool_shortfall);
// KV pool per GPU: usable_budget - weights - the runtime reserve.
Bytes kv_pool_bytes(const HardwareSpec& hw, double memory_utilization, Bytes weights,
                    const ServingReserve& reserve);
// Weight streaming time at the achieved bandwidth (one read of the shard's weights).
Seconds weight_read_time(const ServingDeployment& d, const Profile& p);

// ---- ServingModel ---------------------------------------------------------------------------------
struct ServingRequest {
  int seq_len = 0;        // prompt tokens (required, >= 1)
  int batch = 1;          // concurrent requests served together
  int output_len = 128;   // generated tokens per request
  std::optional<Precision> precision, kv_precision;
  DeploymentOverrides overrides;
  bool quantize_head = false;  // SolveRequest::quantize_head (gpt-fast); default: a 16-bit LM head
  int tp = 0;             // 0: the smallest power of two <= kMaxTensorParallel that fits
  int prefill_chunk = 0;  // > 0: chunked prefill (Sarathi, Agrawal et al. 2023) of this many tokens
  double memory_utilization = kDefaultMemoryUtilization;
  double efficiency = 0;
  Runtime runtime = Runtime::Graph;
  // Speculative decoding (Leviathan et al. 2023): enabled when draft_model is set.
  const ModelSpec* draft_model = nullptr;
  int draft_tokens = 4;           // K
  double acceptance_rate = 0.7;   // alpha
  // Disaggregated serving (DistServe, Zhong et al. 2024; Splitwise, Patel et al. 2024).
  const HardwareSpec* decode_hardware = nullptr;
  int decode_tp = 0;                             // 0: auto, as tp
  std::optional<BytesPerSecond> kv_link_bandwidth;  // default 50 GB/s (400 Gb/s NIC per GPU)
  Seconds kv_link_latency = microseconds(10);
  // Where the devices' standard nodes and fabrics come from (TP all-reduces); null: the built-in
  // fleet. The CLI passes the fleet with any `--catalog` overrides (a calibrated fabric, say).
  const FleetCatalog* fleet = nullptr;
};

struct ServingResult {
  // Names of the tutorial's Python result (ServingModel.solve).
  Seconds ttft{};                     // time to first token: (chunked) prefill + TP all-reduces
  Seconds itl{};                      // inter-token latency (effective, with speculation)
  Bytes kv_cache_per_request{};       // whole request at seq_len + output_len tokens, all GPUs
  double speculative_speedup = 1.0;   // plain ITL / speculative ITL (< 1: a slowdown)

  bool feasible = true;
  int tp = 1, decode_tp = 1, gpus = 1;
  // What the (prefill) device and the decode device are called in text (HardwareSpec::unit_noun).
  std::string unit = "GPU", decode_unit = "GPU";
  bool disaggregated = false;
  Seconds itl_plain{};                // decode step without speculation
  Seconds step_host{};                // the runtime's host work in each iteration (ServingDeployment)
  Seconds e2e_latency{};              // ttft + kv transfer + (output_len - 1) x itl
  Seconds kv_transfer{};              // disaggregated: KV of the prompt over the link
  Seconds prefill_comm{}, decode_comm{};  // TP all-reduce time inside ttft / itl_plain
  int prefill_chunks = 1;
  Seconds prefill_chunk_time{};       // longest chunk: the decode stall it causes (Sarathi)
  Wall prefill_bottleneck = Wall::Compute, decode_bottleneck = Wall::Memory;
  double prefill_mfu = 0, decode_mfu = 0;
  FlopsPerByte prefill_intensity{}, decode_intensity{}, ridge_point{};
  int decode_compute_bound_batch = 0; // smallest batch whose decode step is compute-bound; 0: none <= 65536
  double tokens_per_s = 0;            // generated tokens/s of the replica (batch / itl)
  double tokens_per_s_per_gpu = 0;
  double request_tokens_per_s = 0;    // batch x output_len / e2e (prefill included)
  double request_tokens_per_s_per_gpu = 0;  // the same over every GPU of the replica (per-GPU tables)
  // Energy of the replica per generated token: its GPUs at the engine's prefill power for the TTFT
  // and its decode power for the generation, over batch x output_len tokens.
  Joules energy_per_token{};
  // Mean board power of a busy GPU of the replica: that energy over the GPU-seconds of prefill and
  // decode (what NVML-averaged serving benchmarks such as ML.ENERGY's report per GPU).
  Watts average_power_per_gpu{};
  // Per-GPU memory (the most loaded GPU; prefill node or decode node, whichever is fuller).
  Bytes weights_per_gpu{}, kv_cache_per_gpu{}, activations_per_gpu{}, draft_per_gpu{};
  Bytes memory_footprint{}, memory_available{};
  Bytes memory_capacity{};  // the device's usable memory (HardwareSpec::memory_usable)
  // Whose ledger that is: the prefill GPUs (--hardware, tp) or, disaggregated, the decode GPUs
  // (--decode-hardware, decode_tp) when they are fuller.
  std::string memory_hardware;
  // The weight and KV-cache precisions the decode step resolved (the remedies name narrower ones).
  Precision weight_precision = Precision::BF16, kv_precision = Precision::BF16;
  int memory_tp = 1;
  bool memory_on_decode = false;
  double memory_utilization = 0;      // footprint / capacity
  // Speculative decoding details.
  bool speculative = false;
  double expected_tokens_per_step = 1;
  Seconds draft_step_time{}, verify_time{};
  Seconds draft_prefill{};  // the draft's own prefill of the prompt (its KV cache), inside ttft
  int draft_tokens = 0;
  double acceptance_rate = 0;
  std::string link_name;
  std::vector<std::string> trace;
};

ServingResult serve(const ModelSpec& model, const HardwareSpec& hw, const ServingRequest& r);
// "needs X per GPU, has Y" on the fuller side's GPUs, with concrete remedies; empty when feasible.
std::string serving_does_not_fit_message(const ServingResult& r, const ModelSpec& model);

// ---- ContinuousBatchingModel --------------------------------------------------------------------
struct BatchingRequest {
  int seq_len = 0;                 // maximum tokens per request (prompt + output): static reserves it
  std::optional<int> mean_tokens;  // mean tokens a request actually uses (default: seq_len)
  int max_batch = 256;             // scheduler cap (vLLM --max-num-seqs default 256)
  int page_size = 16;              // tokens per KV block (vLLM default 16)
  std::optional<Seconds> itl_slo;  // largest acceptable decode step
  std::optional<Precision> precision, kv_precision;
  DeploymentOverrides overrides;
  bool quantize_head = false;      // SolveRequest::quantize_head
  int tp = 1;
  double memory_utilization = kDefaultMemoryUtilization;
  double efficiency = 0;
  Runtime runtime = Runtime::Graph;
  const FleetCatalog* fleet = nullptr;  // as ServingRequest::fleet
};

struct AllocatorCapacity {
  int memory_limit = 0;            // requests whose KV allocation fits
  int slo_limit = 0;               // requests whose decode step meets the ITL SLO (= memory_limit w/o SLO)
  int max_concurrent_requests = 0;
  std::string binding;             // "memory", "ITL SLO", "max batch"
  double allocated_tokens = 0;     // per request
  Bytes kv_allocated_per_request{};
  double kv_utilization = 0;       // used / allocated
  Seconds itl{};                   // decode step at that concurrency
  double tokens_per_s = 0;         // concurrency / itl
};

struct BatchingResult {
  AllocatorCapacity static_alloc, paged;
  bool feasible = true;
  Bytes kv_budget{}, weights_per_gpu{}, kv_bytes_per_token_per_gpu{};
  Bytes reserved_activations{};  // the profile peak (reserve.profile_peak())
  ServingReserve reserve;
  double mean_tokens = 0;
  double speedup_vs_static = 0;    // paged / static throughput
  int tp = 1;
  Seconds ttft{};                  // prefill of one mean-length request
  std::vector<std::string> trace;
  // Tutorial name: the paged allocator's concurrency.
  [[nodiscard]] int max_concurrent_requests() const { return paged.max_concurrent_requests; }
};

BatchingResult continuous_batching(const ModelSpec& model, const HardwareSpec& hw,
                                   const BatchingRequest& r);
// Why continuous batching admits no request (no KV pool after the runtime's reserve, a pool smaller
// than one request, or an ITL SLO no batch meets), with remedies; empty when it admits one.
std::string batching_does_not_fit_message(const BatchingResult& out, const BatchingRequest& r,
                                          const ModelSpec& model, const HardwareSpec& hw);

}  // namespace mlsysim
