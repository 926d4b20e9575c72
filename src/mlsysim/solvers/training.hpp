// Distributed training at fleet scale (`DistributedModel.solve` in the tutorial): one training step
// of a transformer over a cluster under a TP x PP x DP x CP x EP layout.
//
//   step = m x t_microbatch (engine solve of the per-GPU shard)              compute
//        + TP collectives (4 per layer per micro-batch; 6 with full recompute) + CP ring exchange
//          not hidden by attention + EP all-to-alls + PP point-to-point
//        + bubble = (p-1)/(v m) x per-GPU work                              (Narayanan et al. 2021)
//        + DP gradient sync (ZeRO 0-3) not hidden behind the backward pass
//        + optimizer update + straggler delay (expected slowest of N GPUs)
//        + contention: hidden communication x the SMs its NCCL channels hold (16 / SMs)
//
// The per-GPU memory ledger (weights, fp32 gradients, fp32 master + Adam moments, activations of
// the micro-batches in flight, buffers) decides feasibility; remedies are named when it does not fit.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "mlsysim/catalog/fleet.hpp"
#include "mlsysim/catalog/hardware.hpp"
#include "mlsysim/catalog/model.hpp"
#include "mlsysim/physics/operators.hpp"
#include "mlsysim/physics/topology.hpp"
#include "mlsysim/solvers/engine.hpp"

namespace mlsysim {

struct ParallelLayout {
  int tp = 1, pp = 1, dp = 0, cp = 1, ep = 1;  // dp 0: derived as gpus / (tp pp cp ep)
  int vpp = 1;                                  // interleaved model chunks per GPU (v)
};

enum class StragglerModel { None, Factor, Normal, LogNormal };
struct StragglerSpec {
  StragglerModel model = StragglerModel::None;
  double value = 0;  // Factor: slowdown >= 1; Normal: coefficient of variation; LogNormal: sigma
};

struct TrainingRequest {
  int gpus = 0;  // 0: the whole cluster
  ParallelLayout layout;
  int global_batch = 0;  // sequences per optimizer step; 0: dp x ep x micro x (pp > 1 ? 4 pp : 1)
  int micro_batch = 1;   // sequences per micro-batch per replica
  std::optional<int> seq_len;
  std::optional<Precision> precision;
  Recompute recompute = Recompute::Selective;
  // With Recompute::Full: how many of each pipeline stage's layers recompute (Megatron's
  // --recompute-method block --recompute-num-layers); the others keep their activations. Unset: all.
  std::optional<int> recompute_layers;
  int zero_stage = 1;             // Megatron's distributed optimizer is ZeRO-1
  // Hybrid sharding: ZeRO shards the dense state over groups of this many data-parallel ranks and
  // replicates it across the groups, whose gradients are then all-reduced once per step (PyTorch
  // FSDP HYBRID_SHARD; MaxText's FSDP inside a TPU slice with data parallelism across slices).
  // 0: one group of every dense data-parallel rank.
  int shard_group = 0;
  bool sequence_parallel = true;  // with tp > 1 (Korthikanti et al. 2022)
  bool overlap = true;            // DP gradient sync overlapped with the backward pass
  // TP collectives chunked under their GEMMs (TransformerEngine userbuffers; Megatron-core
  // --tp-comm-overlap) and pipeline sends overlapped with compute (--overlap-p2p-communication).
  // Off by default: plain Megatron-LM exposes both.
  bool tp_comm_overlap = false;
  bool pp_comm_overlap = false;
  double overlap_efficiency = 0.85;  // fraction of the overlap window that hides communication
  bool fp32_gradients = true;     // Megatron accumulates and reduces main gradients in fp32
  AttentionKernel attention = AttentionKernel::Flash;  // materialized: scores in memory (pre-2022)
  StragglerSpec straggler;
  std::optional<double> tokens;   // training budget; default Chinchilla 20 x parameters
  // LoRA fine-tuning (rank 0: every weight trains): the frozen base computes input gradients only,
  // and gradients, optimizer states, DP gradient sync and the update cover the adapters alone.
  LoraSpec lora;
};

struct TrainingMemory {
  Bytes weights{}, gradients{}, optimizer_states{}, activations{}, buffers{};
  [[nodiscard]] Bytes total() const {
    return weights + gradients + optimizer_states + activations + buffers;
  }
};

struct TrainingResult {
  std::string model, hardware;
  std::string unit = "GPU";  // what the device is called in text (HardwareSpec::unit_noun): GPU, chip, ...
  Cluster cluster;
  int gpus = 0;
  ParallelLayout layout;
  int global_batch = 0, micro_batch = 1, micro_batches = 1, seq_len = 0, zero_stage = 0;
  int shard_group = 0;  // ranks ZeRO shards the dense state over (TrainingRequest::shard_group, resolved)
  Recompute recompute = Recompute::None;
  int recompute_layers = 0;           // layers per stage recomputed (all of them under full recompute)
  bool sequence_parallel = false;
  Precision precision = Precision::BF16;
  double parameters = 0, parameters_per_gpu = 0;
  LoraSpec lora;
  double trainable_parameters = 0;    // the whole model's that training updates (LoRA: the adapters)

  Seconds step_time{}, compute_time{}, tp_comm_time{}, cp_comm_time{}, ep_comm_time{},
      pp_comm_time{}, dp_comm_time{}, dp_exposed_time{}, optimizer_time{}, bubble_time{},
      straggler_time{};
  Seconds microbatch_time{};  // engine time of one micro-batch (forward + backward) per GPU
  // All TP, CP and PP communication; tp_comm_time / cp_comm_time / pp_comm_time above are the
  // parts left exposed (equal unless tp_comm_overlap / attention hides CP / pp_comm_overlap).
  Seconds tp_comm_total{}, cp_comm_total{}, pp_comm_total{};
  // Communication hidden under compute (TP, CP, PP and DP, total minus exposed) and what it costs
  // the compute beside it: the SMs the collectives hold (collective_compute_share) for that long.
  Seconds hidden_comm_time{}, contention_time{};
  bool tp_comm_overlap = false, pp_comm_overlap = false;
  std::string tp_algorithm, dp_algorithm;
  double bubble_fraction = 0;         // bubble time / step
  double communication_fraction = 0; // exposed communication / step
  double scaling_efficiency = 0;      // cluster throughput / (N x one GPU's throughput)
  double single_gpu_mfu = 0;          // the unsharded model on one GPU, same recompute (memory ignored)
  double mfu = 0;                     // = single_gpu_mfu x scaling_efficiency
  double hfu = 0;                     // hardware FLOPs (recomputation included) / (N x peak x step)
  int stage_layers = 0;               // layers on the busiest pipeline stage
  int first_stage_layers = 0, last_stage_layers = 0;  // uneven split (pp > 1)
  double straggler_factor = 1;
  double tokens_per_s = 0;
  Flops model_flops_per_step{};
  // The tutorial's Python names.
  [[nodiscard]] double communication_overhead() const { return communication_fraction; }
  [[nodiscard]] double effective_mfu() const { return mfu; }

  TrainingMemory memory;
  Bytes memory_capacity{};  // per GPU, HardwareSpec::memory_usable
  bool feasible = true;
  std::vector<std::string> remedies;

  // Average power per GPU over a step: the engine's power while its kernels run, static power
  // while it waits (exposed communication, bubble, stragglers).
  Watts gpu_power{};

  double tokens = 0, steps = 0;
  Seconds time_to_train{};
  double gpu_hours = 0;
  std::vector<std::string> trace;
};

// Caches the engine solves that do not depend on DP/ZeRO/CP, so a search evaluates thousands of
// layouts per second. Not thread-safe: one evaluator per thread.
class TrainingEvaluator {
 public:
  TrainingEvaluator(const ModelSpec& model, const HardwareSpec& hw, Cluster cluster);
  // Throws BadInput for an impossible layout (with the reason and a suggestion). A layout that
  // does not fit in memory returns feasible = false with remedies.
  TrainingResult evaluate(const TrainingRequest& request);
  // Memory only (no timing): cheap feasibility screen for searches.
  TrainingMemory memory(const TrainingRequest& request);
  [[nodiscard]] const Cluster& cluster() const { return cluster_; }

  // One engine solve of a TP x PP shard (cached): what each term of the step reads.
  struct ShardSolve {
    Seconds time{};            // forward + backward (+ recompute) of one micro-batch, no update
    Seconds attention_time{};  // attention kernels of that
    Seconds layer_gemm_time{};  // the layer stack's GEMMs of that (what TP collectives can hide under)
    Seconds embedding_time{};  // of that: the input embedding (first pipeline stage only)
    Seconds output_time{};     // of that: final norm, LM head, loss (last pipeline stage only)
    Bytes activations{};       // saved activations of one micro-batch (full sequence)
    double params = 0;         // parameters of the ep=1 shard
    double trainable_params = 0;  // of the shard, those training updates (all, or LoRA's adapters)
    double hw_flops = 0;       // hardware FLOPs of that micro-batch (recomputation included)
    double model_flops = 0;    // model FLOPs of that micro-batch (no recomputation)
    Watts busy_power{};        // the engine's average device power over that micro-batch
    Precision compute_precision = Precision::BF16, precision = Precision::BF16;
    Precision head_precision = Precision::BF16;  // the 16-bit format LoRA adapters are kept in, too
  };

 private:
  // What a shard's engine solve depends on besides its TP x PP split.
  struct ShardStep {
    int micro_batch = 1, seq = 0;
    Recompute recompute = Recompute::None;
    std::optional<Precision> precision;
    AttentionKernel attention = AttentionKernel::Flash;
    LoraSpec lora;
  };
  const ShardSolve& shard(int tp, int pp, const ShardStep& step);
  const ShardSolve& reference(const ShardStep& step) { return shard(1, 1, step); }
  // The shard with a fraction f of its layers recomputed in full (block recomputation): every
  // recomputation term is per layer, so the no-recompute and full-recompute solves blend linearly.
  ShardSolve partly_recomputed(int tp, int pp, ShardStep step, double f);

  const ModelSpec& model_;
  const HardwareSpec& hw_;
  Cluster cluster_;
  std::unordered_map<std::string, ShardSolve> cache_;
  std::unordered_map<std::string, ModelSpec> shard_models_;
};

// The run's lengths, when given: --seq-len >= 1 token, --tokens > 0 (their defaults always are).
// The evaluator and the layout search check them the same way, the search before it starts.
void check_run_lengths(std::optional<int> seq_len, std::optional<double> tokens);

// Megatron-LM's interleaved schedule gives each GPU v model chunks of equal depth: the layers must
// split evenly over pp stages, and each stage's over its v chunks (layers % pp == 0 and
// (layers / pp) % v == 0; Narayanan et al. 2021 sec. 2.2, Megatron-LM's argument checks). Or the
// embedding and the loss count as one layer each, on the first and the last chunk, so that
// layers + 2 split evenly into pp x v chunks (Megatron-core's account_for_embedding_in_pipeline_split
// and account_for_loss_in_pipeline_split, NeMo's ASYM_PP_EMBED / ASYM_PP_LOSS: Llama 3.1 405B's
// 126 layers on 8 stages of 8 chunks in MLPerf Training v5.0).
bool interleaving_splits_evenly(int layers, int pp, int vpp);

// One call: evaluate a layout (the train command and the Python binding use this).
TrainingResult train(const ModelSpec& model, const HardwareSpec& hw, const Cluster& cluster,
                     const TrainingRequest& request);

// "needs X GB per GPU, has Y GB: ..." with remedies; empty when it fits.
std::string does_not_fit_message(const TrainingResult& r);

const char* to_string(StragglerModel m);

// The recomputation a result ran: none, selective, full, or "full N/L" when block recomputation
// covered N of the stage's L layers.
std::string describe_recompute(const TrainingResult& r);

}  // namespace mlsysim
