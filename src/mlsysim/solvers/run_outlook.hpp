// A training run end to end: how often it fails, how often it should checkpoint, how long it
// really takes, and what it costs and emits (physics/operations.hpp), from a TrainingResult.
#pragma once

#include <string>
#include <vector>

#include "mlsysim/physics/operations.hpp"
#include "mlsysim/solvers/serving.hpp"
#include "mlsysim/solvers/training.hpp"

namespace mlsysim {

// A synchronous job of `work` failure-free seconds on `gpus` GPUs, checkpointed at `checkpoint_cost`
// each: its failure and checkpoint walls (physics/operations.hpp).
struct JobReliability {
  Seconds cluster_mtbf{};
  double failure_probability = 0;  // of at least one failure over the work
  Seconds checkpoint_interval{};   // work between checkpoints: the given one, or Daly's optimum
  Seconds young_interval{};        // the first-order optimum, for comparison
  Seconds wall_time{};             // expected, with checkpoints, failures and restarts
  double goodput = 1;              // work / wall time
  double expected_failures = 0;    // over the wall time
  // False when failures outpace progress (goodput under 1%, or a wall time beyond any number):
  // the wall time is then a formula's extrapolation, not a plan.
  bool finishes = true;
};
// `interval` 0: Daly's optimum. Throws BadInput for a GPU count under 1 or a non-positive MTBF,
// work or checkpoint cost.
JobReliability job_reliability(double gpus, Seconds gpu_mtbf, Seconds work, Seconds checkpoint_cost,
                               Seconds restart, Seconds interval = Seconds(0));

struct RunOptions {
  Seconds gpu_mtbf = kLlama3GpuMtbf;                          // per GPU, job-interrupting failures
  BytesPerSecond checkpoint_bandwidth = kLlama3CheckpointBandwidth;  // aggregate write bandwidth
  // Time from a failure to computing again (detect, reschedule, reload the checkpoint): an
  // assumption, not a measurement; set it for your cluster.
  Seconds restart = units::seconds(600);
  Seconds checkpoint_interval{};  // work between checkpoints; 0: Daly's optimum
  OperatingCosts costs;
};

struct RunOutlook {
  Seconds failure_free_time{};  // steps x step time (TrainingResult::time_to_train)
  Seconds cluster_mtbf{};
  double expected_failures = 0;      // over the wall-clock run
  double failure_probability = 0;    // of at least one failure over the failure-free time
  Bytes checkpoint_bytes{};
  Seconds checkpoint_cost{};         // one checkpoint write
  Seconds checkpoint_interval{};     // work between checkpoints
  bool interval_is_optimal = true;   // Daly's optimum (not given by the user)
  Seconds young_interval{};          // the first-order optimum, for comparison
  Seconds wall_time{};               // expected, with checkpoints, failures and restarts
  double goodput = 1;                // failure-free time / wall time
  bool finishes = true;  // JobReliability::finishes; `why_not` says what binds and what to change
  std::string why_not;
  double gpu_hours = 0;              // at the wall time
  std::string unit = "GPU";          // the device's noun for text (TrainingResult::unit)
  Watts gpu_power{};                 // average per GPU while the job runs
  Joules it_energy{}, facility_energy{};
  KgCO2e emissions{};
  Usd cost{};
  UsdPerSecond gpu_rate{};  // the price per GPU it was costed at (RunOptions::costs)
  std::vector<std::string> trace;
};

// Throws BadInput for options outside their physical range (with the range).
RunOutlook run_outlook(const TrainingResult& training, const RunOptions& options);

// A serving replica's output: energy, money and emissions per generated token.
struct ServingOutlook {
  Joules energy_per_token{};           // the GPUs (ServingResult::energy_per_token)
  Joules facility_energy_per_token{};  // with the facility's PUE
  Usd cost_per_million_tokens{};       // the replica's GPU-hours at request throughput
  UsdPerSecond gpu_rate{};             // the mean price of one of its GPUs (each pool at its own)
  KgCO2e emissions_per_million_tokens{};
  std::vector<std::string> trace;
};
// `decode_costs`: a disaggregated replica's decode GPUs at their own price (--decode-hardware);
// absent, every GPU of the replica is priced at `costs`.
ServingOutlook serving_outlook(const ServingResult& serving, const OperatingCosts& costs,
                               const OperatingCosts* decode_costs = nullptr);

}  // namespace mlsysim
