// Options shared by `mlsysim train` and `mlsysim amdahl --model ...` (a profile from a train run),
// and the JSON/table rendering of a training result. Presentation only: the solver computes.
#pragma once

#include <fmt/format.h>

#include <memory>
#include <optional>
#include <string>

#include "command.hpp"
#include "mlsysim/catalog/fleet.hpp"
#include "mlsysim/physics/topology.hpp"
#include "mlsysim/solvers/training.hpp"
#include "mlsysim/units/format.hpp"

namespace mlsysim::cli {

struct TrainOptions {
  std::string model, hardware, cluster, precision, recompute = "selective", straggler = "none",
      attention = "flash";
  int gpus = 0, tp = 1, pp = 1, dp = 0, cp = 1, ep = 1, vpp = 1, zero = 1, shard_group = 0;
  int micro_batch = 1;
  std::optional<int> global_batch;  // unset: the solver's default (DP x EP x micro-batch x (4 PP if PP > 1))
  std::optional<int> seq_len, recompute_layers;
  std::optional<double> tokens;
  double straggler_value = 0, overlap_efficiency = 0.85;
  bool no_sequence_parallel = false, no_overlap = false, bf16_grads = false;
  bool tp_comm_overlap = false, overlap_p2p_comm = false;
  LoraOptions lora;
};

inline void add_train_options(CLI::App* cmd, TrainOptions& o, bool model_required) {
  auto* m = cmd->add_option("--model,-m", o.model, "Model id or a Hugging Face config.json path");
  if (model_required) m->required();
  cmd->add_option("--hardware,-H", o.hardware, "Accelerator id (default: the --cluster's node accelerator)");
  cmd->add_option("--cluster", o.cluster, "Named cluster (default: the hardware's standard node, e.g. DGX H100)");
  cmd->add_option("--gpus,-n", o.gpus, "GPUs used (default: the whole --cluster)");
  cmd->add_option("--tp", o.tp, "Tensor-parallel degree (within a node)");
  cmd->add_option("--pp", o.pp, "Pipeline stages");
  cmd->add_option("--dp", o.dp, "Data-parallel degree (default: gpus / (tp pp cp ep))");
  cmd->add_option("--cp", o.cp, "Context-parallel degree (sequence split across ranks)");
  cmd->add_option("--ep", o.ep, "Expert-parallel degree (MoE)");
  cmd->add_option("--vpp", o.vpp, "Interleaved pipeline: model chunks per GPU (v)");
  cmd->add_option("--zero", o.zero, "ZeRO stage 0-3 (3 = FSDP); default 1 (distributed optimizer)");
  cmd->add_option("--shard-group", o.shard_group,
                  "Hybrid sharding: ZeRO within groups of this many data-parallel ranks (e.g. one node or one TPU "
                  "slice), replicated across groups, whose gradients are all-reduced once per step (PyTorch FSDP "
                  "HYBRID_SHARD); default: all of them");
  cmd->add_option("--global-batch-size,-B", o.global_batch,
                  "Sequences per optimizer step (default: one micro-batch per replica; 4 x PP of them when pipelined)");
  cmd->add_option("--micro-batch-size,-b", o.micro_batch, "Sequences per micro-batch per replica");
  cmd->add_option("--seq-len,-s", o.seq_len, "Tokens per sequence");
  cmd->add_option("--tokens", o.tokens, "Training tokens for time-to-train (default 20 x parameters)");
  cmd->add_option("--precision", o.precision, "Weights/math precision (default: the device's best 16-bit)");
  cmd->add_option("--recompute", o.recompute, "Activation recomputation: none | selective | full");
  cmd->add_option("--recompute-layers", o.recompute_layers,
                  "With --recompute full: recompute only N of each pipeline stage's layers (over all its "
                  "interleaved chunks), the others keep their activations (Megatron's --recompute-method block "
                  "--recompute-num-layers); default all");
  cmd->add_option("--straggler", o.straggler, "none | factor | normal | lognormal");
  cmd->add_option("--straggler-value", o.straggler_value,
                  "factor (>= 1), normal coefficient of variation, or lognormal sigma");
  cmd->add_option("--overlap-efficiency", o.overlap_efficiency, "Share of the backward window hiding DP sync");
  cmd->add_flag("--no-sequence-parallel", o.no_sequence_parallel, "Replicate LayerNorm/dropout activations across TP");
  cmd->add_flag("--no-overlap", o.no_overlap, "Do not overlap the DP gradient sync with the backward pass");
  cmd->add_flag("--bf16-grads", o.bf16_grads, "Reduce gradients in 16 bits instead of fp32");
  cmd->add_flag("--tp-comm-overlap", o.tp_comm_overlap,
                "Chunk the TP collectives under their GEMMs (TransformerEngine userbuffers, Megatron-core "
                "--tp-comm-overlap): at least 1/tp of them stays exposed");
  cmd->add_flag("--overlap-p2p-comm", o.overlap_p2p_comm,
                "Overlap pipeline sends with compute (Megatron-core --overlap-p2p-communication): one "
                "micro-batch's sends stay exposed");
  cmd->add_option("--attention", o.attention, kAttentionHelp);
  add_lora_options(cmd, o.lora);
}

// `--op` of `collective` and `calibrate --nccl-tests`.
inline CollectiveOp parse_collective_op(const std::string& value) {
  return parse_enum<CollectiveOp>(
      "--op", value, {{"allreduce", CollectiveOp::AllReduce}, {"all-reduce", CollectiveOp::AllReduce},
                      {"allgather", CollectiveOp::AllGather}, {"all-gather", CollectiveOp::AllGather},
                      {"reducescatter", CollectiveOp::ReduceScatter}, {"reduce-scatter", CollectiveOp::ReduceScatter},
                      {"alltoall", CollectiveOp::AllToAll}, {"all-to-all", CollectiveOp::AllToAll},
                      {"p2p", CollectiveOp::PointToPoint}, {"point-to-point", CollectiveOp::PointToPoint}});
}

// `--algorithm` of `collective` and `calibrate --nccl-tests`.
inline Algorithm parse_collective_algorithm(const std::string& value) {
  return parse_enum<Algorithm>(
      "--algorithm", value, {{"auto", Algorithm::Auto}, {"ring", Algorithm::Ring}, {"tree", Algorithm::Tree},
                             {"in-network", Algorithm::InNetwork}, {"nvls", Algorithm::InNetwork},
                             {"sharp", Algorithm::InNetwork}, {"hierarchical", Algorithm::Hierarchical},
                             {"pairwise", Algorithm::Pairwise}, {"direct", Algorithm::Direct}});
}

// Cluster, hardware and request from the options.
struct TrainSetup {
  std::shared_ptr<const Catalog> catalog_owner;
  const Catalog* catalog = nullptr;
  ModelSpec custom;
  const ModelSpec* model = nullptr;
  const HardwareSpec* hw = nullptr;
  Cluster cluster;
  TrainingRequest request;
};

inline std::unique_ptr<TrainSetup> make_train_setup(const GlobalOptions& g, const TrainOptions& o) {
  auto s = std::make_unique<TrainSetup>();
  s->catalog_owner = load_catalog(g);
  s->catalog = s->catalog_owner.get();
  s->model = &resolve_model(*s->catalog, o.model, s->custom);
  const auto fleet_owner = load_fleet(g);
  const FleetCatalog& fleet = *fleet_owner;
  if (o.cluster.empty() && o.hardware.empty())
    throw BadInput("pass --hardware H (its standard node and fabric) or --cluster NAME");
  if (!o.cluster.empty()) {
    s->cluster = fleet.cluster(o.cluster);
    s->hw = &s->catalog->hardware(o.hardware.empty() ? s->cluster.node.accelerator : o.hardware);
    if (normalize_name(s->hw->id) != normalize_name(s->cluster.node.accelerator))
      throw BadInput(fmt::format("--hardware {} does not match cluster {} ({} nodes of {}); omit --hardware",
                                 s->hw->id, s->cluster.id, s->cluster.nodes, s->cluster.node.accelerator));
  } else {
    s->hw = &s->catalog->hardware(o.hardware);
    if (o.gpus == 0) throw BadInput("--gpus N is required with --hardware (or use --cluster NAME)");
    if (o.gpus < 0) throw BadInput(fmt::format("--gpus must be >= 1, got {}", o.gpus));
    s->cluster = default_cluster(fleet, *s->hw, o.gpus);
  }
  TrainingRequest& r = s->request;
  r.gpus = o.gpus;
  r.layout = {o.tp, o.pp, o.dp, o.cp, o.ep, o.vpp};
  if (o.global_batch) {
    if (*o.global_batch < 1)
      throw BadInput(fmt::format("--global-batch-size must be >= 1 sequence, got {} (leave it out for the "
                                 "default: one micro-batch per data-parallel replica)", *o.global_batch));
    r.global_batch = *o.global_batch;
  }
  r.micro_batch = o.micro_batch;
  r.seq_len = o.seq_len;
  if (!o.precision.empty()) r.precision = parse_precision_flag("--precision", o.precision);
  r.recompute = parse_enum<Recompute>("--recompute", o.recompute,
                                      {{"none", Recompute::None}, {"selective", Recompute::Selective},
                                       {"full", Recompute::Full}});
  r.recompute_layers = o.recompute_layers;
  r.zero_stage = o.zero;
  r.shard_group = o.shard_group;
  r.sequence_parallel = !o.no_sequence_parallel;
  r.overlap = !o.no_overlap;
  r.overlap_efficiency = o.overlap_efficiency;
  r.fp32_gradients = !o.bf16_grads;
  r.tp_comm_overlap = o.tp_comm_overlap;
  r.pp_comm_overlap = o.overlap_p2p_comm;
  r.attention = parse_attention_flag(o.attention);
  r.lora = parse_lora_options(o.lora);
  r.straggler.model = parse_enum<StragglerModel>("--straggler", o.straggler,
                                                 {{"none", StragglerModel::None}, {"factor", StragglerModel::Factor},
                                                  {"normal", StragglerModel::Normal},
                                                  {"lognormal", StragglerModel::LogNormal}});
  r.straggler.value = o.straggler_value;
  const TrainOptions defaults;
  if (r.straggler.model == StragglerModel::None && o.straggler_value != defaults.straggler_value)
    throw BadInput("--straggler-value needs --straggler factor|normal|lognormal (which model it parameterizes)");
  if (o.no_overlap && o.overlap_efficiency != defaults.overlap_efficiency)
    throw BadInput("--overlap-efficiency sets how much of the DP sync hides under the backward pass; --no-overlap "
                   "hides none: give one of them");
  r.tokens = o.tokens;
  return s;
}

inline nlohmann::ordered_json training_json(const TrainingResult& r) {
  nlohmann::ordered_json j;
  j["model"] = r.model;
  j["hardware"] = r.hardware;
  j["cluster"] = r.cluster.id;
  j["gpus"] = r.gpus;
  j["tp"] = r.layout.tp;
  j["pp"] = r.layout.pp;
  j["dp"] = r.layout.dp;
  j["cp"] = r.layout.cp;
  j["ep"] = r.layout.ep;
  j["vpp"] = r.layout.vpp;
  j["stage_layers"] = {{"first", r.first_stage_layers}, {"max", r.stage_layers}, {"last", r.last_stage_layers}};
  j["zero_stage"] = r.zero_stage;
  j["shard_group"] = r.shard_group;
  j["recompute"] = to_string(r.recompute);
  j["recompute_layers"] = r.recompute_layers;
  j["sequence_parallel"] = r.sequence_parallel;
  j["tp_comm_overlap"] = r.tp_comm_overlap;
  j["pp_comm_overlap"] = r.pp_comm_overlap;
  j["precision"] = std::string(to_string(r.precision));
  j["global_batch_size"] = r.global_batch;
  j["micro_batch_size"] = r.micro_batch;
  j["micro_batches"] = r.micro_batches;
  j["seq_len"] = r.seq_len;
  j["parameters"] = r.parameters;
  j["parameters_per_gpu"] = r.parameters_per_gpu;
  j["trainable_parameters"] = r.trainable_parameters;
  j["lora_rank"] = r.lora.rank;
  j["lora_targets"] = r.lora.enabled() ? nlohmann::ordered_json(to_string(r.lora.targets)) : nlohmann::ordered_json();
  j["step_time_s"] = r.step_time.si();
  j["mfu"] = r.mfu;
  j["hfu"] = r.hfu;
  j["single_gpu_mfu"] = r.single_gpu_mfu;
  j["scaling_efficiency"] = r.scaling_efficiency;
  j["communication_fraction"] = r.communication_fraction;
  j["bubble_fraction"] = r.bubble_fraction;
  j["tokens_per_s"] = r.tokens_per_s;
  j["tp_comm_total_s"] = r.tp_comm_total.si();
  j["pp_comm_total_s"] = r.pp_comm_total.si();
  j["breakdown_s"] = {{"compute", r.compute_time.si()},       {"tp_comm", r.tp_comm_time.si()},
                      {"cp_comm", r.cp_comm_time.si()},       {"ep_comm", r.ep_comm_time.si()},
                      {"pp_comm", r.pp_comm_time.si()},       {"bubble", r.bubble_time.si()},
                      {"dp_comm_total", r.dp_comm_time.si()}, {"dp_comm_exposed", r.dp_exposed_time.si()},
                      {"optimizer", r.optimizer_time.si()},   {"straggler", r.straggler_time.si()},
                      {"comm_contention", r.contention_time.si()}};
  j["straggler_factor"] = r.straggler_factor;
  j["memory_per_gpu_bytes"] = r.memory.total().si();
  j["memory_capacity_bytes"] = r.memory_capacity.si();
  j["memory"] = {{"weights_bytes", r.memory.weights.si()},
                 {"gradients_bytes", r.memory.gradients.si()},
                 {"optimizer_states_bytes", r.memory.optimizer_states.si()},
                 {"activations_bytes", r.memory.activations.si()},
                 {"buffers_bytes", r.memory.buffers.si()}};
  j["feasible"] = r.feasible;
  j["remedies"] = r.remedies;
  j["tokens"] = r.tokens;
  j["steps"] = r.steps;
  j["time_to_train_s"] = r.time_to_train.si();
  j["time_to_train_days"] = r.time_to_train.si() / 86400.0;
  j["gpu_hours"] = r.gpu_hours;
  j["trace"] = r.trace;
  return j;
}

inline std::string training_table(const TrainingResult& r) {
  std::string s;
  auto row = [&](const std::string& k, const std::string& v) { s += fmt::format("{:<26}{}\n", k, v); };
  row("model", fmt::format("{} ({:.1f}B params)", r.model, r.parameters / 1e9));
  if (r.lora.enabled())
    row("LoRA", fmt::format("{}: {:.3g}M trainable parameters ({:.3f}%), base frozen", r.lora.describe(),
                            r.trainable_parameters / 1e6, 100 * r.trainable_parameters / r.parameters));
  row("cluster", fmt::format("{} ({} of {})", r.cluster.id, units::format_counted(r.gpus, r.unit), r.hardware));
  row("layout", fmt::format("TP {} x PP {} x DP {} x CP {} x EP {}{}", r.layout.tp, r.layout.pp, r.layout.dp,
                            r.layout.cp, r.layout.ep, r.layout.vpp > 1 ? fmt::format(" (v={})", r.layout.vpp) : ""));
  row("batch", fmt::format("{} x {} tokens; micro-batch {} x {} micro-batches", r.global_batch, r.seq_len,
                           r.micro_batch, r.micro_batches));
  row("step time", fmt::format("{:.3f} s", r.step_time.si()));
  row("MFU", fmt::format("{:.1f}%  (single {} {:.1f}% x scaling {:.1f}%)", 100 * r.mfu, r.unit, 100 * r.single_gpu_mfu,
                         100 * r.scaling_efficiency));
  row("communication / bubble", fmt::format("{:.1f}% / {:.1f}% of the step", 100 * r.communication_fraction,
                                            100 * r.bubble_fraction));
  row("throughput", fmt::format("{:.3g} tokens/s", r.tokens_per_s));
  row("memory per " + r.unit, fmt::format("{:.1f} / {:.1f} GB usable{}", in_gb(r.memory.total()), in_gb(r.memory_capacity),
                                    r.feasible ? "" : "  DOES NOT FIT"));
  row("time to train", fmt::format("{:.2f} days, {:.3g} {}-hours ({:.3g} tokens), failure-free",
                                   r.time_to_train.si() / 86400, r.gpu_hours, r.unit, r.tokens));
  s += "\nbreakdown (s):\n";
  for (auto [k, v] : {std::pair{"compute", r.compute_time}, {"TP collectives", r.tp_comm_time},
                      {"CP exchange", r.cp_comm_time}, {"EP all-to-all", r.ep_comm_time},
                      {"PP send/recv", r.pp_comm_time}, {"pipeline bubble", r.bubble_time},
                      {"DP sync (exposed)", r.dp_exposed_time}, {"optimizer", r.optimizer_time},
                      {"comm contention", r.contention_time}, {"stragglers", r.straggler_time}})
    if (v.si() > 0) s += fmt::format("  {:<22}{:>10.4f}  {:5.1f}%\n", k, v.si(), 100 * v / r.step_time);
  s += "\nwhy:\n";
  for (const auto& t : r.trace) s += "  " + t + "\n";
  return s;
}

}  // namespace mlsysim::cli
