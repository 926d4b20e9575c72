// Parallelism optimizer (`mlsysim optimize parallelism`): exhaustive search over
// TP x PP x DP x CP x EP x micro-batch x recomputation x ZeRO (x interleaving) for a fixed GPU
// count and global batch, keeping layouts that fit in memory, ranked by step time (or by cost per
// step, which at a fixed GPU count ranks the same and is reported in dollars when the device has a
// price). Engine solves are cached per shard shape; the search is split across threads.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "mlsysim/solvers/training.hpp"

namespace mlsysim {

enum class Objective { StepTime, Cost };

struct OptimizerRequest {
  int gpus = 0;           // 0: the whole cluster
  int global_batch = 0;   // required
  std::optional<int> seq_len;
  std::optional<Precision> precision;
  std::optional<int> max_tp, max_pp;  // defaults: GPUs per node, layers
  bool search_cp = true, search_ep = true, search_interleaving = true;
  bool search_block_recompute = true;  // full recomputation of 1/4, 1/2, 3/4 of each stage's layers too
  std::vector<int> zero_stages{0, 1, 2, 3};
  // Selective recomputation is not searched by default: with FlashAttention the engine already
  // stores no attention scores, so selective == none in memory and time (physics/memory.cpp).
  std::vector<Recompute> recompute{Recompute::None, Recompute::Full};
  Objective objective = Objective::StepTime;
  int top = 5;
  int threads = 0;  // 0: hardware concurrency
  std::optional<double> tokens;
  // The runtime's communication overlap, applied to every layout (TrainingRequest fields of the
  // same names): TP collectives chunked under their GEMMs, pipeline sends asynchronous.
  bool tp_comm_overlap = false, pp_comm_overlap = false;
  LoraSpec lora;  // LoRA fine-tuning, for every layout (TrainingRequest::lora)
};

struct OptimizerResult {
  std::vector<TrainingResult> top;  // best first
  long searched = 0;        // layouts enumerated
  long rejected = 0;        // impossible (divisibility, head split, ...)
  long did_not_fit = 0;     // valid layouts over the memory capacity
  long feasible = 0;
  Seconds search_time{};
  std::vector<std::string> explanation;  // why the winner wins
  [[nodiscard]] const TrainingResult& best() const { return top.front(); }
};

// Throws DoesNotFit when no layout fits (with the smallest requirement found and remedies), and
// BadInput when no layout is even valid.
OptimizerResult optimize_parallelism(const ModelSpec& model, const HardwareSpec& hw,
                                     const Cluster& cluster, const OptimizerRequest& request);

}  // namespace mlsysim
