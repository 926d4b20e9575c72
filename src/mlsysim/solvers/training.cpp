#include "mlsysim/solvers/training.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <string_view>

#include "mlsysim/errors.hpp"
#include "mlsysim/physics/parallelism.hpp"
#include "mlsysim/physics/scaling.hpp"
#include "mlsysim/physics/sharding.hpp"
#include "mlsysim/physics/transformer.hpp"
#include "mlsysim/units/format.hpp"

namespace mlsysim {

const char* to_string(StragglerModel m) {
  switch (m) {
    case StragglerModel::None: return "none";
    case StragglerModel::Factor: return "factor";
    case StragglerModel::Normal: return "normal";
    case StragglerModel::LogNormal: return "lognormal";
  }
  return "?";
}

namespace {

// Adam step traffic per parameter (Kingma & Ba 2015 with an fp32 master copy, Micikevicius et al.
// 2018): read fp32 grad 4 + master 4 + m 4 + v 4, write master 4 + m 4 + v 4 + 16-bit weight 2.
constexpr double kAdamBytesPerParam = 30.0;
// DDP/Megatron gradient buckets kept resident (PyTorch DDP default bucket 25 MB, two in flight;
// Li et al. 2020) plus NCCL work buffers (NCCL_BUFFSIZE 4 MiB x channels; ~0.5 GB observed).
// Plus the CUDA context (~0.5 GB on H100). Total 1 GB.
constexpr double kCommBufferBytes = 1.0e9;
// Backward share of forward+backward time, used as the window that hides the DP all-reduce when
// gradients are accumulated (only the last micro-batch's backward overlaps): 2 of 3 passes.
constexpr double kBackwardShare = 2.0 / 3.0;

std::string divisors_of(int n, int limit = 1 << 20) {
  std::string out;
  for (int d = 1; d <= std::min(n, limit); ++d)
    if (n % d == 0) out += (out.empty() ? "" : ", ") + std::to_string(d);
  return out;
}

std::string gb(Bytes b) { return fmt::format("{:.1f} GB", in_gb(b)); }
std::string ms(Seconds t) { return fmt::format("{:.2f} ms", in_ms(t)); }

double expert_params(const TransformerSpec& tf, int layers) {
  if (!tf.is_moe()) return 0;
  const int moe_layers = std::max(0, layers - tf.first_dense_layers);
  return static_cast<double>(moe_layers) * tf.experts * (is_gated(tf.act) ? 3.0 : 2.0) * tf.hidden *
         tf.moe_ffn;
}

}  // namespace

TrainingEvaluator::TrainingEvaluator(const ModelSpec& model, const HardwareSpec& hw, Cluster cluster)
    : model_(model), hw_(hw), cluster_(std::move(cluster)) {
  if (!model.is_transformer())
    throw BadInput("distributed training models transformers; " + model.id + " is " +
                   a_kind_model(model.kind) + " (use `mlsysim solve --phase train` for one device)");
}

const TrainingEvaluator::ShardSolve& TrainingEvaluator::shard(int tp, int pp, const ShardStep& step) {
  const std::string key = fmt::format("{}/{}/{}/{}/{}/{}/{}/{}/{}", tp, pp, step.micro_batch, step.seq,
                                      static_cast<int>(step.recompute),
                                      step.precision ? static_cast<int>(*step.precision) : -1,
                                      static_cast<int>(step.attention), step.lora.rank,
                                      static_cast<int>(step.lora.targets));
  if (auto it = cache_.find(key); it != cache_.end()) return it->second;
  const std::string mkey = fmt::format("{}/{}", tp, pp);
  auto mit = shard_models_.find(mkey);
  if (mit == shard_models_.end())
    mit = shard_models_.emplace(mkey, tp == 1 && pp == 1 ? model_ : shard_transformer(model_, {tp, pp, 1})).first;
  SolveRequest req;
  req.phase = Phase::Train;
  req.batch = step.micro_batch;
  req.seq_len = step.seq;
  req.precision = step.precision;
  req.recompute = step.recompute;
  req.attention = step.attention;
  req.lora = step.lora;
  const Profile p = solve(mit->second, hw_, req);
  ShardSolve s;
  s.time = p.latency;
  for (const auto& op : p.operators) {
    if (op.pass == Pass::Update) {
      s.time -= op.timing.total();
      continue;
    }
    // The fused kernel, or the materialized path's scores, softmax, dropout and context.
    if (op.cls == OpClass::Attention || op.role == OpRole::AttentionCore)
      s.attention_time += op.timing.total();
    // The operators outside the layer stack: only the first stage embeds and only the last stage
    // runs the head and the loss.
    if (op.role == OpRole::Embedding) s.embedding_time += op.timing.total();
    else if (op.role == OpRole::Head) s.output_time += op.timing.total();
    else if (op.cls == OpClass::Gemm) s.layer_gemm_time += op.timing.total();
  }
  s.activations = p.memory.activations;
  s.hw_flops = p.hardware_flops.si();
  s.model_flops = p.model_flops.si();
  s.busy_power = p.average_power();
  s.params = p.parameters;
  s.trainable_params = p.trainable_parameters;
  s.compute_precision = p.compute_precision;
  s.precision = p.precision;
  s.head_precision = p.head_precision;
  return cache_.emplace(key, s).first->second;
}

TrainingEvaluator::ShardSolve TrainingEvaluator::partly_recomputed(int tp, int pp, ShardStep step, double f) {
  step.recompute = Recompute::Full;
  if (f >= 1.0) return shard(tp, pp, step);
  const ShardSolve full = shard(tp, pp, step);
  step.recompute = Recompute::None;
  ShardSolve s = shard(tp, pp, step);
  const auto mix = [f](auto none, auto all) { return none + (all - none) * f; };
  const Joules energy = mix(s.busy_power * s.time, full.busy_power * full.time);
  s.time = mix(s.time, full.time);
  s.attention_time = mix(s.attention_time, full.attention_time);
  s.layer_gemm_time = mix(s.layer_gemm_time, full.layer_gemm_time);
  s.activations = mix(s.activations, full.activations);
  s.hw_flops = mix(s.hw_flops, full.hw_flops);
  s.busy_power = energy / s.time;
  return s;
}

namespace {

struct Resolved {
  int gpus, tp, pp, dp, cp, ep, v, b, m, B, S, replicas;
  // Ranks holding copies of the dense parameters (dp x cp x ep): Megatron-core's
  // data-parallel-with-context-parallel group.
  [[nodiscard]] int dense_dp() const { return dp * cp * ep; }
  // The ranks ZeRO shards the dense state over: the --shard-group, else all of them.
  [[nodiscard]] int shard_group(const TrainingRequest& rq) const {
    return rq.shard_group > 0 ? rq.shard_group : dense_dp();
  }
};

Resolved resolve_layout(const ModelSpec& model, const Cluster& c, const TrainingRequest& rq) {
  Resolved r{};
  const ParallelLayout& l = rq.layout;
  r.gpus = rq.gpus > 0 ? rq.gpus : c.total_gpus();
  if (r.gpus > c.total_gpus())
    throw BadInput(fmt::format("--gpus {} exceeds cluster {} ({} GPUs = {} nodes x {}); use --gpus <= {} "
                               "or a larger --cluster", r.gpus, c.id, c.total_gpus(), c.nodes,
                               c.gpus_per_node(), c.total_gpus()));
  for (auto [name, v] : {std::pair{"tp", l.tp}, {"pp", l.pp}, {"cp", l.cp}, {"ep", l.ep}, {"vpp", l.vpp}})
    if (v < 1) throw BadInput(fmt::format("--{} must be >= 1, got {}", name, v));
  r.tp = l.tp; r.pp = l.pp; r.cp = l.cp; r.ep = l.ep; r.v = l.vpp;
  const int g = c.gpus_per_node();
  if (r.tp > g)
    throw BadInput(fmt::format(
        "tp={} spans more than one node ({} GPUs per {}): every layer's {} collectives would cross "
        "{} ({:.0f} GB/s per GPU) instead of {} ({:.0f} GB/s); use --tp <= {} and add --pp for the rest",
        r.tp, g, c.node.id, tp_collectives_per_layer(false), c.scale_out.id,
        in_gbps(c.nic_bandwidth_per_gpu()), c.scale_up.id, in_gbps(c.scale_up.per_direction), g));
  const int model_parallel = r.tp * r.pp * r.cp * r.ep;
  if (l.dp > 0) {
    r.dp = l.dp;
    if (model_parallel * r.dp != r.gpus)
      throw BadInput(fmt::format(
          "TP x PP x DP x CP x EP = {} x {} x {} x {} x {} = {} != {} GPUs; {}", r.tp, r.pp, r.dp, r.cp,
          r.ep, model_parallel * r.dp, r.gpus,
          r.gpus % model_parallel == 0 ? fmt::format("use --dp {} (or omit --dp)", r.gpus / model_parallel)
                                       : fmt::format("use --gpus {}", model_parallel * r.dp)));
  } else {
    if (model_parallel > r.gpus)
      throw BadInput(fmt::format("TP x PP x CP x EP = {} x {} x {} x {} = {} GPUs for one model replica, more than "
                                 "the {} given: use --gpus {} (or a multiple), or a smaller layout",
                                 r.tp, r.pp, r.cp, r.ep, model_parallel, r.gpus, model_parallel));
    if (r.gpus % model_parallel != 0)
      throw BadInput(fmt::format(
          "TP x PP x CP x EP = {} does not divide {} GPUs, so DP = N/(TP PP CP EP) is not an integer; "
          "use --gpus {} or {}, or change the layout", model_parallel, r.gpus,
          (r.gpus / model_parallel) * model_parallel, (r.gpus / model_parallel + 1) * model_parallel));
    r.dp = r.gpus / model_parallel;
  }
  if (model.tf.experts == 0 && r.ep > 1)
    throw BadInput(model.id + " is dense (no experts): --ep must be 1");
  // Default: the model's own training length, else 2048 tokens within its window (gpt2: 1024).
  const int default_seq = model.tf.default_seq > 0 ? model.tf.default_seq
                          : model.tf.max_seq > 0   ? std::min(2048, model.tf.max_seq)
                                                   : 2048;
  r.S = rq.seq_len.value_or(default_seq);
  if (model.tf.max_seq > 0 && r.S > model.tf.max_seq)
    throw BadInput(fmt::format("--seq-len {} exceeds {}'s maximum context {}", r.S, model.id, model.tf.max_seq));
  if (r.S % r.cp != 0)
    throw BadInput(fmt::format("--cp {} must divide --seq-len {} (each rank holds seq/cp tokens); valid cp: {}",
                               r.cp, r.S, divisors_of(r.S, 64)));
  r.b = rq.micro_batch;
  if (r.b < 1) throw BadInput("--micro-batch-size must be >= 1");
  r.replicas = r.dp * r.ep;  // EP ranks process different tokens: they are data-parallel for dense layers
  if (rq.global_batch < 0)
    throw BadInput(fmt::format("--global-batch-size must be >= 1 sequence, got {}", rq.global_batch));
  r.B = rq.global_batch > 0 ? rq.global_batch : r.replicas * r.b * (r.pp > 1 ? 4 * r.pp : 1);
  if (r.B % (r.replicas * r.b) != 0) {
    const int unit = r.replicas * r.b;
    const int below = r.B / unit * unit;  // the nearest multiples of the unit around B
    throw BadInput(fmt::format(
        "--global-batch-size {} is not a multiple of DP x EP x micro-batch = {} x {} x {} = {}; use {}, "
        "or change --micro-batch-size", r.B, r.dp, r.ep, r.b, unit,
        below > 0 ? fmt::format("{} or {}", below, below + unit) : fmt::format("{} (or a multiple)", unit)));
  }
  r.m = r.B / (r.replicas * r.b);
  if (r.v > 1) {
    if (r.pp == 1) throw BadInput("--vpp (interleaved schedule) needs --pp > 1");
    if (r.m % r.pp != 0)
      throw BadInput(fmt::format("the interleaved schedule needs micro-batches ({}) divisible by pp ({}) "
                                 "(Narayanan et al. 2021 sec. 2.2.2); use a global batch of {} x k",
                                 r.m, r.pp, r.replicas * r.b * r.pp));
    if (!interleaving_splits_evenly(model.tf.layers, r.pp, r.v)) {
      std::string valid;
      for (int v = 2; v <= model.tf.layers / r.pp; ++v)
        if (interleaving_splits_evenly(model.tf.layers, r.pp, v)) valid += (valid.empty() ? "" : ", ") + std::to_string(v);
      throw BadInput(fmt::format(
          "--vpp {} with --pp {}: the interleaved schedule needs {}'s {} layers split evenly into pp x vpp "
          "chunks (layers % pp == 0, (layers / pp) % vpp == 0, or, with the embedding and the loss as a "
          "layer each, (layers + 2) % (pp x vpp) == 0); {}",
          r.v, r.pp, model.id, model.tf.layers,
          valid.empty() ? fmt::format("no vpp > 1 does at pp {}: drop --vpp or use a pp dividing {}", r.pp,
                                      model.tf.layers)
                        : "valid vpp at this pp: " + valid));
    }
  }
  if (r.pp > model.tf.layers)
    throw BadInput(fmt::format("pp={} exceeds {}'s {} layers: use pp <= {} (divisors split them evenly: {})",
                               r.pp, model.id, model.tf.layers, model.tf.layers, divisors_of(model.tf.layers)));
  return r;
}

// Block recomputation's share of a stage's layers: all of them under --recompute full, or
// --recompute-layers N of them (Megatron's --recompute-method block); none otherwise.
double recomputed_fraction(const TrainingRequest& rq, int stage_layers) {
  if (!rq.recompute_layers) return rq.recompute == Recompute::Full ? 1.0 : 0.0;
  if (rq.recompute != Recompute::Full)
    throw BadInput("--recompute-layers N picks how many of each pipeline stage's layers recompute in full: it "
                   "needs --recompute full");
  const int n = *rq.recompute_layers;
  if (n < 0 || n > stage_layers)
    throw BadInput(fmt::format("--recompute-layers must be in [0, {}] (the layers on the busiest pipeline stage), "
                               "got {}", stage_layers, n));
  return static_cast<double>(n) / stage_layers;
}

// TP collectives per layer with a share f of the layers recomputed: the recomputed forward repeats
// its two (tp_collectives_per_layer).
double tp_collectives_per_layer_recomputed(double f) {
  return tp_collectives_per_layer(false) + (tp_collectives_per_layer(true) - tp_collectives_per_layer(false)) * f;
}

// Per-GPU quantities of one evaluated layout that its remedies and its trace report.
struct LayoutQuantities {
  int layers_stage = 0;   // layers on the busiest pipeline stage
  int dense_dp = 1;       // ranks that hold copies of the dense parameters (dp x cp x ep)
  double params_gpu = 0;  // parameters on the busiest GPU
  double trained = 0;     // of those, the ones with gradients and optimizer states (LoRA: the adapters)
  double trained_dense = 0;  // of those, synchronised over the dense data-parallel group
  Bytes hidden_states{};  // one micro-batch's hidden states on one CP rank (TP messages, PP sends)
  double weight_bytes = 2, grad_bytes = 4, optimizer_bytes = 12;  // per parameter
  Seconds microbatch_time{};    // one micro-batch's compute per GPU
  Seconds layer_gemm_window{};  // its layer GEMMs (what chunked TP collectives hide under)
};

// What would make a layout that does not fit fit, most effective first, each with what it saves.
std::vector<std::string> does_not_fit_remedies(const ModelSpec& model, const std::string& unit, int gpus_per_node,
                                               const Resolved& r, const TrainingRequest& rq,
                                               const TrainingMemory& mem, Bytes capacity, const LayoutQuantities& q) {
  std::vector<std::string> out;
  const Bytes need = mem.total(), have = capacity;
  if (rq.zero_stage < 3 && q.dense_dp > 1) {
    const ZeroSharding z3 = zero_sharding(3, q.dense_dp);
    const Bytes states(q.params_gpu * q.weight_bytes / z3.weights +
                       q.trained * (q.grad_bytes / z3.gradients + q.optimizer_bytes / z3.optimizer));
    out.push_back(fmt::format("--zero 3 (FSDP) shards weights, gradients and optimizer states over "
                              "dp x cp x ep = {}: states {} -> {} per {}", q.dense_dp,
                              gb(mem.weights + mem.gradients + mem.optimizer_states), gb(states), unit));
  } else if (rq.zero_stage < 1) {
    out.push_back("--zero 1 shards the optimizer states over the data-parallel ranks");
  }
  if (!rq.lora.enabled() && mem.gradients + mem.optimizer_states > Bytes(0))
    out.push_back(fmt::format("fine-tuning? --lora-rank 16 freezes the weights and trains low-rank adapters: "
                              "gradients and optimizer states ({}) shrink to those of the adapters (well under 1%)",
                              gb(mem.gradients + mem.optimizer_states)));
  if (rq.recompute != Recompute::Full)
    out.push_back(fmt::format("--recompute full keeps only each layer's input (activations currently take {})",
                              gb(mem.activations)));
  else if (rq.recompute_layers && *rq.recompute_layers < q.layers_stage)
    out.push_back(fmt::format("--recompute-layers {} (all of the stage's) keeps only each layer's input "
                              "(activations currently take {})", q.layers_stage, gb(mem.activations)));
  if (r.b > 1) out.push_back(fmt::format("--micro-batch-size 1 divides activations by {}", r.b));
  if (r.tp * 2 <= gpus_per_node && model.tf.heads % (r.tp * 2) == 0)
    out.push_back(fmt::format("--tp {} halves weights, gradients and optimizer states per {}", r.tp * 2, unit));
  if (r.pp * 2 <= model.tf.layers)
    out.push_back(fmt::format("--pp {} halves the layers (and their states) per {}", r.pp * 2, unit));
  out.push_back(fmt::format("more {}s: at least {:.0f}x this count at the same per-{} share", unit,
                            std::ceil(need / have), unit));
  return out;
}

// The trace of one evaluated layout: how each term of the step and the ledger came about.
std::vector<std::string> training_trace(const HardwareSpec& hw, const Cluster& c,
                                        const Resolved& r, const TrainingRequest& rq,
                                        const TrainingResult& res, const LayoutQuantities& q) {
  std::vector<std::string> tr;
  tr.push_back(fmt::format("layout: TP {} x PP {} x DP {} x CP {} x EP {} = {} on {} ({} x {}, {})", r.tp, r.pp,
                           r.dp, r.cp, r.ep, units::format_counted(r.gpus, hw.unit_noun()), c.id, c.nodes, c.node.id,
                           c.scale_out.id == c.scale_up.id ? c.scale_up.id : c.scale_up.id + " + " + c.scale_out.id));
  tr.push_back(fmt::format("batch: {} sequences = DP {} x EP {} x micro-batch {} x {} micro-batches (gradient "
                           "accumulation); {} tokens per sequence", r.B, r.dp, r.ep, r.b, r.m, r.S));
  tr.push_back(fmt::format("compute: engine solve of the TP{}/PP{} shard ({} layers, {:.2f}B params) = {} per "
                           "micro-batch{} x {} = {}", r.tp, r.pp, q.layers_stage, q.params_gpu / 1e9,
                           ms(q.microbatch_time), r.cp > 1 ? fmt::format(" (/cp {})", r.cp) : "", r.m,
                           ms(res.compute_time)));
  if (r.tp > 1)
    tr.push_back(fmt::format("TP: {:g} x {} layers x {} micro-batches {} of {} ({}) = {}, {}",
                             tp_collectives_per_layer_recomputed(res.recompute_layers / static_cast<double>(q.layers_stage)),
                             q.layers_stage, r.m,
                             res.sequence_parallel ? "reduce-scatter/all-gather pairs" : "all-reduces",
                             format_bytes(q.hidden_states), res.tp_algorithm,
                             ms(res.tp_comm_total),
                             res.tp_comm_overlap
                                 ? fmt::format("chunked under the layer GEMMs ({} per micro-batch): {} exposed "
                                               "(at least 1/{})",
                                               ms(q.layer_gemm_window), ms(res.tp_comm_time), r.tp)
                                 : std::string("exposed (not overlapped with the GEMMs; --tp-comm-overlap)")));
  if (r.pp > 1) {
    tr.push_back(fmt::format("PP: 2 x {} sends per micro-batch x {} micro-batches of 1/{} of the {} boundary "
                             "activation per TP rank (scatter/gather{}) = {}, {}",
                             r.v, r.m, r.tp, format_bytes(q.hidden_states),
                             r.tp > 1 && !res.sequence_parallel ? ", all-gathered over the TP group" : "",
                             ms(res.pp_comm_total),
                             res.pp_comm_overlap
                                 ? fmt::format("overlapped with compute: {} exposed (one micro-batch's)",
                                               ms(res.pp_comm_time))
                                 : std::string("exposed (--overlap-p2p-comm overlaps it)")));
    tr.push_back(fmt::format("PP: bubble (p-1)/(v m + p-1) = {}/({}x{}+{}) = {:.1f}% of the pipeline -> {}",
                             r.pp - 1, r.v, r.m, r.pp - 1, 100 * pipeline_bubble_fraction(r.pp, r.m, r.v),
                             ms(res.bubble_time)));
  }
  if (rq.lora.enabled())
    tr.push_back(fmt::format("LoRA: {}, {:.3g}M trainable of {:.3g}B parameters; the "
                             "frozen base's backward computes input gradients only; gradients, optimizer states, DP "
                             "sync and the update cover the adapters ({:.3g}M on this {}){}",
                             rq.lora.describe(), res.trainable_parameters / 1e6, res.parameters / 1e9, q.trained / 1e6,
                             res.unit,
                             rq.tokens ? "" : "; time to train below uses a pre-training budget: give the fine-tuning "
                                              "set's tokens with --tokens"));
  if (r.cp > 1) tr.push_back(fmt::format("CP: ring K/V exchange not hidden by attention = {}", ms(res.cp_comm_time)));
  if (r.ep > 1) tr.push_back(fmt::format("EP: 4 all-to-alls per MoE layer per micro-batch = {}", ms(res.ep_comm_time)));
  if (q.dense_dp > 1)
    tr.push_back(fmt::format("DP: ZeRO-{} gradient sync of {} over {} ranks ({}{}) = {}, {} exposed after overlap",
                             rq.zero_stage, gb(Bytes(q.trained_dense * q.grad_bytes)), q.dense_dp, res.dp_algorithm,
                             res.shard_group < q.dense_dp
                                 ? fmt::format("; hybrid: sharded within groups of {}, the shards all-reduced across "
                                               "the {} groups once per step",
                                               res.shard_group, q.dense_dp / res.shard_group)
                                 : "",
                             ms(res.dp_comm_time), ms(res.dp_exposed_time)));
  if (res.contention_time.si() > 0)
    tr.push_back(fmt::format("contention: {} of communication hidden under compute holds {:.0f} of {}'s {} SMs "
                             "while it runs (one NCCL/RCCL channel = one thread block = one SM; NVIDIA/nccl #689), so "
                             "that compute runs {:.1f}% slower: +{}",
                             ms(res.hidden_comm_time), kCollectiveChannels, hw.id, hw.compute_units,
                             100 * collective_compute_share(hw), ms(res.contention_time)));
  if (res.straggler_factor > 1)
    tr.push_back(fmt::format("stragglers: slowest of {} x{:.3f} -> +{}", units::format_counted(r.gpus, res.unit),
                             res.straggler_factor, ms(res.straggler_time)));
  tr.push_back(fmt::format("step {} -> MFU {:.1f}% = single-{} MFU {:.1f}% x scaling efficiency {:.1f}%; "
                           "communication {:.1f}%, bubble {:.1f}% of the step",
                           ms(res.step_time), 100 * res.mfu, res.unit, 100 * res.single_gpu_mfu,
                           100 * res.scaling_efficiency, 100 * res.communication_fraction,
                           100 * res.bubble_fraction));
  tr.push_back(fmt::format("memory per {} {} of {} usable: weights {}, grads {}, optimizer {}, activations {} "
                           "({:.2f} micro-batches in flight), buffers {}",
                           res.unit, gb(res.memory.total()), gb(hw.memory_usable), gb(res.memory.weights),
                           gb(res.memory.gradients), gb(res.memory.optimizer_states), gb(res.memory.activations),
                           pipeline_in_flight_micro_batches(r.pp, r.m, r.v), gb(res.memory.buffers)));
  tr.push_back(fmt::format("time to train {:.3g} tokens{}: {:.3g} steps x {} = {:.1f} days, {:.3g} {}-hours",
                           res.tokens, rq.tokens ? "" : " (Chinchilla 20/param)", res.steps, ms(res.step_time),
                           res.time_to_train.si() / 86400.0, res.gpu_hours, res.unit));
  return tr;
}

}  // namespace

TrainingMemory TrainingEvaluator::memory(const TrainingRequest& rq) {
  return evaluate(rq).memory;
}

namespace {

using ShardSolve = TrainingEvaluator::ShardSolve;

// What the terms of one evaluated step share: the layout, the shard's solve and the per-rank
// quantities derived from them.
struct StepContext {
  const ModelSpec& model;
  const HardwareSpec& hw;
  const Cluster& c;
  const Resolved& r;
  const TrainingRequest& rq;
  const ShardSolve& sh;
  const TransformerSpec& stf;  // the TP x PP shard's layers
  StageSplit split;
  int g = 8;                   // GPUs per node
  int layers_stage = 0;        // busiest stage: ceil(L / p)
  double act_bytes = 2;
  double tokens_rank = 0;      // one micro-batch's tokens on one CP rank
  bool sequence_parallel = false;
  Bytes hidden_states{};       // one micro-batch's hidden states on this rank
  Seconds layer_gemm_window{};  // the stage's layer GEMMs of one micro-batch on this rank
  double recomputed = 0;        // share of the stage's layers recomputed in full (recomputed_fraction)
  // LoRA: adapter weights per layer on this rank. Megatron-style LoRA shards each adapter with its
  // base linear over the TP ranks (NeMo's ParallelLinearAdapter), so a rank holds 1/tp of them.
  double adapters_per_layer = 0;

  // tp with sequence parallelism (activations split over the TP ranks), else 1.
  [[nodiscard]] double sp_div() const { return sequence_parallel ? r.tp : 1.0; }
  // Ranks holding copies of the dense parameters (dp x cp x ep) and of the experts (dp x cp):
  // Megatron-core's data-parallel-with-context-parallel groups.
  [[nodiscard]] int dense_dp() const { return r.dense_dp(); }
  [[nodiscard]] int dense_shard_group() const { return r.shard_group(rq); }
  [[nodiscard]] int expert_dp() const { return r.dp * r.cp; }
};

// The busiest pipeline stage's forward + backward of one micro-batch. Uneven split
// (physics/parallelism pipeline_stage_split): stages hold floor or ceil(L/p) layers, the first and
// last (which also run the embedding and the LM head + loss) the fewer (Dubey et al. 2024 sec.
// 3.3.2: Llama 3 405B, 126 layers on 16 stages, one fewer layer on the first and on the last).
// The step is paced by the slowest stage.
Seconds busiest_stage_time(const StepContext& x) {
  const ShardSolve& sh = x.sh;
  const Seconds t_head = sh.embedding_time + sh.output_time;
  const Seconds t_layer = (sh.time - t_head) / static_cast<double>(x.layers_stage);
  if (x.r.pp <= 1) return sh.time;
  const Seconds first = t_layer * static_cast<double>(x.split.first) + sh.embedding_time;
  const Seconds last = t_layer * static_cast<double>(x.split.last) + sh.output_time;
  const Seconds middle = t_layer * static_cast<double>(x.split.middle);
  return max(max(first, last), middle);
}

// TP: 4 all-reduce equivalents per layer per micro-batch (6 with full recompute), chunked under
// the layer GEMMs with --tp-comm-overlap.
void time_tensor_parallel(const StepContext& x, TrainingResult& res) {
  const Resolved& r = x.r;
  Seconds tp_mb{};
  if (r.tp > 1) {
    const auto est = collective_time(CollectiveOp::AllReduce, x.hidden_states, place_group(r.tp, 1, x.g), x.c);
    res.tp_algorithm = to_string(est.algorithm);
    tp_mb = est.time * (tp_collectives_per_layer_recomputed(x.recomputed) * x.layers_stage);
  }
  res.tp_comm_overlap = x.rq.tp_comm_overlap && r.tp > 1;
  res.tp_comm_total = tp_mb * r.m;
  // The chunks hide under the busiest stage's layer GEMMs.
  if (res.tp_comm_overlap) tp_mb = overlapped_tp_comm_exposed(tp_mb, x.layer_gemm_window, r.tp);
  res.tp_comm_time = tp_mb * r.m;
}

// CP: ring exchange of K/V blocks, hidden behind attention compute where it can be.
void time_context_parallel(const StepContext& x, TrainingResult& res) {
  const Resolved& r = x.r;
  Seconds cp_mb{};
  if (r.cp > 1) {
    const Bytes per_layer = context_parallel_bytes_per_layer(x.stf, x.tokens_rank, r.cp, x.act_bytes);
    const int steps = 3 * (r.cp - 1);
    const auto est = collective_time(CollectiveOp::PointToPoint, per_layer / steps,
                                     place_group(r.cp, r.tp, x.g), x.c);
    const Seconds total = est.time * (static_cast<double>(steps) * x.layers_stage);
    res.cp_comm_total = total * r.m;
    cp_mb = max(Seconds(0), total - x.sh.attention_time / r.cp);
  }
  res.cp_comm_time = cp_mb * r.m;
}

// EP: dispatch + combine all-to-alls, forward and backward, per MoE layer.
void time_expert_parallel(const StepContext& x, TrainingResult& res) {
  const Resolved& r = x.r;
  Seconds ep_mb{};
  if (r.ep > 1) {
    const TransformerSpec& tf = x.model.tf;
    const int moe_layers = std::max(0, x.layers_stage - tf.first_dense_layers);
    const Bytes msg(x.tokens_rank * tf.experts_per_token * tf.hidden * x.act_bytes / x.sp_div());
    const auto est = collective_time(CollectiveOp::AllToAll, msg, place_group(r.ep, r.tp * r.cp, x.g), x.c);
    ep_mb = est.time * (4.0 * moe_layers);
  }
  res.ep_comm_time = ep_mb * r.m;
}

// PP: activations forward, their gradients backward, per model chunk. Each of the t ranks of a
// stage sends 1/t of the boundary tensor to its peer: Megatron-LM's scatter/gather optimization
// (Narayanan et al. 2021 §4.1), which keeps the t copies of a replicated tensor off the slower
// inter-stage link. With sequence parallelism the tensor is already split; without it the
// receiving stage all-gathers the pieces over its TP group.
void time_pipeline_sends(const StepContext& x, TrainingResult& res) {
  const Resolved& r = x.r;
  Seconds pp_mb{};
  if (r.pp > 1) {
    const auto send = collective_time(CollectiveOp::PointToPoint, x.hidden_states / r.tp,
                                      place_group(r.pp, r.tp * r.cp * r.ep * r.dp, x.g), x.c);
    Seconds gather{};
    if (r.tp > 1 && !x.sequence_parallel)
      gather = collective_time(CollectiveOp::AllGather, x.hidden_states, place_group(r.tp, 1, x.g), x.c).time;
    pp_mb = (send.time + gather) * (2.0 * r.v);
  }
  res.pp_comm_overlap = x.rq.pp_comm_overlap && r.pp > 1;
  res.pp_comm_total = pp_mb * r.m;
  res.pp_comm_time = res.pp_comm_overlap ? overlapped_pipeline_sends_exposed(pp_mb, r.m) : res.pp_comm_total;
}

// Parameters on this GPU: dense (replicated over dp x cp x ep) and experts (over dp x cp).
struct StageParameters {
  double first = 0, middle = 0, last = 0;  // per pipeline stage (ep = 1)
  double per_gpu = 0;                      // the busiest stage's (or the EP shard's)
  double expert = 0, dense = 0;            // of per_gpu
  // LoRA: the adapters per layer (they live in the layer stack only); 0 without LoRA.
  double adapters_per_layer = 0;
  [[nodiscard]] double adapters(double layers) const { return adapters_per_layer * layers; }
};

// Per-stage parameters with the uneven split (dense models): the first stage holds the token (and
// learned position) embedding, the last the LM head (a copy of the tied embedding, as Megatron-LM
// keeps one there), the middle stages layers only. The busiest stage paces DP sync.
StageParameters stage_parameters(const StepContext& x) {
  const Resolved& r = x.r;
  const TransformerSpec& stf = x.stf;
  const ModelSpec ep_shard = r.ep > 1 ? shard_transformer(x.model, {r.tp, r.pp, r.ep}) : ModelSpec{};
  const double vocab_params = static_cast<double>(stf.vocab) * stf.hidden;
  const double pos_params = stf.learned_positions ? static_cast<double>(stf.max_seq) * stf.hidden : 0.0;
  const double layer_params =
      (x.sh.params - vocab_params * (stf.tied_embeddings ? 1.0 : 2.0) - pos_params) / x.layers_stage;
  StageParameters p{x.sh.params, x.sh.params, x.sh.params};
  if (r.pp > 1 && r.ep == 1) {
    p.first = layer_params * x.split.first + vocab_params + pos_params;
    p.middle = layer_params * x.split.middle;
    p.last = layer_params * x.split.last + vocab_params;
  }
  p.per_gpu = r.ep > 1 ? parameter_count(ep_shard) : std::max({p.first, p.middle, p.last});
  p.expert = r.ep > 1 ? expert_params(ep_shard.tf, ep_shard.tf.layers) : expert_params(stf, stf.layers);
  p.dense = p.per_gpu - p.expert;
  p.adapters_per_layer = x.adapters_per_layer;
  return p;
}

// Bytes per parameter of the states one GPU keeps. LoRA adapters are stored in the output head's
// format, as the engine computes and keeps them: 16 bits even when the base is FP8, fp32 in fp32 runs.
struct StateBytes {
  double weights = 2, gradients = 4, optimizer = 12;
  double adapter_weights = 2;
};

// DP: gradient synchronisation (ZeRO 0-3), overlapped with the backward pass. Context-parallel
// ranks hold the same weights and see different tokens, so their gradients are reduced and their
// optimizer states sharded with the data-parallel ranks' (Megatron-core's data-parallel-with-
// context-parallel group): dense parameters over dp x cp x ep, experts over dp x cp.
void time_data_parallel(const StepContext& x, const StageParameters& p, const StateBytes& bytes,
                        TrainingResult& res) {
  const Resolved& r = x.r;
  const TrainingRequest& rq = x.rq;
  // `trained` parameters' gradients are reduced; the weights gathered are the updated ones
  // (ZeRO-1/2), or every sharded weight (ZeRO-3), `gathered`.
  auto sharded_sync = [&](double trained, double gathered, int group, int stride) -> Seconds {
    if (group <= 1 || (trained <= 0 && gathered <= 0)) return Seconds(0);
    const GroupPlacement pl = place_group(group, stride, x.g);
    const Bytes grads(trained * bytes.gradients), weights(gathered * bytes.weights);
    if (rq.zero_stage == 0) {
      auto e = collective_time(CollectiveOp::AllReduce, grads, pl, x.c);
      res.dp_algorithm = to_string(e.algorithm);
      return e.time;
    }
    CollectiveEstimate rs{}, ag{};  // (a frozen expert shard under LoRA reduces no gradient)
    if (trained > 0) rs = collective_time(CollectiveOp::ReduceScatter, grads, pl, x.c);
    if (gathered > 0) ag = collective_time(CollectiveOp::AllGather, weights, pl, x.c);
    res.dp_algorithm = std::string(to_string(trained > 0 ? rs.algorithm : ag.algorithm)) +
                       " reduce-scatter + all-gather";
    if (rq.zero_stage == 1) return rs.time + ag.time;
    // ZeRO-2: a rank no longer holds the full gradient, so with gradient accumulation every
    // micro-batch's gradients are reduce-scattered (DeepSpeed stage-2 semantics), weights gathered once.
    if (rq.zero_stage == 2) return rs.time * static_cast<double>(r.m) + ag.time;
    // ZeRO-3 / FSDP: weights gathered before forward and again before backward, gradients
    // reduce-scattered, every micro-batch (DeepSpeed stage-3 semantics).
    return (ag.time * 2.0 + rs.time) * static_cast<double>(r.m);
  };
  // Hybrid sharding (--shard-group s): ZeRO inside each group of s adjacent ranks, then each rank's
  // reduced gradient shard (1/s of the gradients) all-reduced with the same shard of the other
  // group / s replicas, whose members are s ranks apart, once per step.
  auto dense_sync = [&](double trained, double gathered, int group, int stride) -> Seconds {
    const int shard = x.dense_shard_group();
    if (shard >= group) return sharded_sync(trained, gathered, group, stride);
    Seconds across(0);
    if (trained > 0) {
      const GroupPlacement replicas = place_group(group / shard, stride * shard, x.g);
      across = collective_time(CollectiveOp::AllReduce, Bytes(trained * bytes.gradients / shard), replicas, x.c).time;
    }
    return across + sharded_sync(trained, gathered, shard, stride);
  };
  // Group strides in the rank order tp, cp, ep, dp: a dense group's members are tp apart; an expert
  // group's nearest members are its cp ranks (tp apart) or, without cp, its dp ranks (tp x ep apart).
  // LoRA trains only the adapters (synchronised with the dense parameters); ZeRO-3 still gathers
  // the sharded frozen base.
  const bool lora = rq.lora.enabled(), zero3 = rq.zero_stage == 3;
  const double adapters = p.adapters(x.layers_stage);
  const double dense_trained = lora ? adapters : p.dense, expert_trained = lora ? 0.0 : p.expert;
  const double dense_gathered = lora ? adapters + (zero3 ? p.dense : 0.0) : p.dense;
  const double expert_gathered = lora ? (zero3 ? p.expert : 0.0) : p.expert;
  res.dp_comm_time = dense_sync(dense_trained, dense_gathered, x.dense_dp(), r.tp) +
                     sharded_sync(expert_trained, expert_gathered, x.expert_dp(), r.cp > 1 ? r.tp : r.tp * r.ep);
  // Overlap window: ZeRO-0/1 reduce once, behind the last micro-batch's backward; ZeRO-2 behind
  // every backward; ZeRO-3 behind every forward and backward.
  const Seconds window = rq.zero_stage == 3   ? res.compute_time
                         : rq.zero_stage == 2 ? res.compute_time * kBackwardShare
                                              : res.microbatch_time * kBackwardShare;
  res.dp_exposed_time = rq.overlap ? res.dp_comm_time - min(res.dp_comm_time, window) * rq.overlap_efficiency
                                   : res.dp_comm_time;
}

// Communication hidden under compute still costs it: while a collective runs its channels hold
// their SMs, so the compute beside it runs on the rest (physics/topology.hpp,
// collective_compute_share): the work those SMs would have done, share x hidden time, is added.
// Exposed communication runs alone, with nothing to slow.
void charge_contention(const HardwareSpec& hw, TrainingResult& res) {
  res.hidden_comm_time = (res.tp_comm_total - res.tp_comm_time) + (res.cp_comm_total - res.cp_comm_time) +
                         (res.pp_comm_total - res.pp_comm_time) + (res.dp_comm_time - res.dp_exposed_time);
  res.contention_time = res.hidden_comm_time * collective_compute_share(hw);
}

// The step waits for the slowest GPU's compute: the expected maximum over `gpus` ranks.
double straggler_factor(const StragglerSpec& s, int gpus) {
  // The flag's range for each model, named as the user typed it.
  auto check = [&](const char* model, const char* meaning, double lo, double hi) {
    if (!(s.value >= lo && s.value <= hi))
      throw BadInput(fmt::format("--straggler-value with --straggler {} ({}) must be in [{:g}, {:g}], got {:g}", model,
                                 meaning, lo, hi, s.value));
  };
  switch (s.model) {
    case StragglerModel::None: return 1;
    case StragglerModel::Factor:
      check("factor", "the slowest rank's compute time over the mean; 1 = none", 1, 100);
      return s.value;
    case StragglerModel::Normal:
      check("normal", "the coefficient of variation of a rank's compute time", 0, 1);
      return straggler_factor_normal(gpus, s.value);
    case StragglerModel::LogNormal:
      check("lognormal", "the sigma of a rank's log compute time", 0, 1);
      return straggler_factor_lognormal(gpus, s.value);
  }
  return 1;
}

// Model FLOPs of one sequence of `seq` tokens (forward + backward, no recomputation, no update;
// under LoRA the frozen base's backward is its input gradients only),
// from the engine's operator list; cached per model, device, length and precision.
double model_flops_per_sequence(const ModelSpec& model, const HardwareSpec& hw, int seq,
                                std::optional<Precision> precision, const LoraSpec& lora) {
  SolveRequest q;
  q.phase = Phase::Train;
  q.batch = 1;
  q.seq_len = seq;
  q.precision = precision;
  q.lora = lora;
  static thread_local std::unordered_map<std::string, double> flops_cache;
  const std::string key = model.id + "/" + hw.id + "/" + std::to_string(seq) + "/" +
                          std::to_string(precision ? static_cast<int>(*precision) : -1) + "/" +
                          std::to_string(lora.rank) + "/" + std::to_string(static_cast<int>(lora.targets));
  auto it = flops_cache.find(key);
  if (it == flops_cache.end()) {
    const Profile p = solve(model, hw, q);
    double f = 0;
    for (const auto& op : p.operators)
      if (op.pass != Pass::Update) f += op.flops.si();
    it = flops_cache.emplace(key, f).first;
  }
  return it->second;
}

// The memory ledger of the busiest GPU. Activations: the layer stack's saved tensors scale with
// the stage's layers and with the micro-batches in flight; the fp32 logits and their gradient
// (tokens x vocab/tp x 8 B, the engine's ledger in physics/memory.cpp) exist only on the last
// stage, which runs each micro-batch's forward and backward back to back (1F1B: one in flight;
// Narayanan et al. 2021). Full recomputation: one layer's working set exists once per GPU, not
// once per micro-batch in flight (the engine's ledger counts it in each micro-batch's activations).
TrainingMemory training_memory(const StepContext& x, const StageParameters& p, const StateBytes& bytes,
                               const ZeroSharding& zd, const ZeroSharding& ze) {
  const Resolved& r = x.r;
  const double f = x.recomputed;  // the engine's ledger counts the working set in f of the blend
  const Bytes logits_mb(static_cast<double>(r.b) * r.S * static_cast<double>(x.stf.vocab) * 8.0 / r.cp);
  const Bytes recompute_working =
      f > 0 ? recompute_working_set(x.stf, x.tokens_rank, x.act_bytes) : Bytes(0);
  const SavedActivations saved = saved_activations(x.sh.compute_precision, x.rq.lora);
  const auto sp_savings = [&](bool full_recompute) {
    return sequence_parallel_activation_savings(
        x.tokens_rank, x.layers_stage, x.sequence_parallel ? r.tp : 1,
        sequence_parallel_split_bytes_per_token_layer(x.stf, saved, full_recompute));
  };
  const Bytes layers_mb = (x.sh.activations / r.cp - logits_mb - recompute_working * f) -
                          (sp_savings(false) * (1.0 - f) + sp_savings(true) * f);
  const double in_flight = pipeline_in_flight_micro_batches(r.pp, r.m, r.v);
  Bytes buffers(kCommBufferBytes);
  if (r.pp > 1) buffers += x.hidden_states * 2.0 / x.sp_div();
  if (x.rq.zero_stage == 3 && x.layers_stage > 0)  // two gathered layers in flight (prefetch)
    buffers += Bytes(2.0 * p.per_gpu / x.layers_stage * bytes.weights);
  auto ledger = [&](double dense, double stage_layers, bool last) {
    TrainingMemory m;
    m.weights = Bytes(dense * bytes.weights / zd.weights + p.expert * bytes.weights / ze.weights);
    if (x.rq.lora.enabled()) {  // a frozen base (no gradients, no optimizer states) and its adapters
      const double adapters = p.adapters(stage_layers);
      m.weights += Bytes(adapters * bytes.adapter_weights / zd.weights);
      m.gradients = Bytes(adapters * bytes.gradients / zd.gradients);
      m.optimizer_states = Bytes(adapters * bytes.optimizer / zd.optimizer);
    } else {
      m.gradients = Bytes(dense * bytes.gradients / zd.gradients + p.expert * bytes.gradients / ze.gradients);
      m.optimizer_states = Bytes(dense * bytes.optimizer / zd.optimizer + p.expert * bytes.optimizer / ze.optimizer);
    }
    m.activations = r.pp == 1 ? (layers_mb + logits_mb)
                              : layers_mb * (stage_layers / x.layers_stage * in_flight) + (last ? logits_mb : Bytes(0));
    m.activations += recompute_working;
    m.buffers = buffers;
    return m;
  };
  if (r.pp == 1 || r.ep > 1) {
    TrainingMemory mem = ledger(p.dense, x.layers_stage, true);
    if (r.pp > 1) mem.activations = layers_mb * in_flight + logits_mb + recompute_working;
    return mem;
  }
  const TrainingMemory first = ledger(p.first - p.expert, x.split.first, false);
  const TrainingMemory middle = ledger(p.middle - p.expert, x.split.middle, false);
  const TrainingMemory last = ledger(p.last - p.expert, x.split.last, true);
  TrainingMemory mem = first;
  if (r.pp > 2 && middle.total() > mem.total()) mem = middle;
  if (last.total() > mem.total()) mem = last;
  return mem;
}

// The request as resolved: layout, batch and precision choices the result reports.
void describe_layout(const Resolved& r, const TrainingRequest& rq, TrainingResult& res) {
  res.gpus = r.gpus;
  res.layout = {r.tp, r.pp, r.dp, r.cp, r.ep, r.v};
  res.global_batch = r.B;
  res.micro_batch = r.b;
  res.micro_batches = r.m;
  res.seq_len = r.S;
  res.zero_stage = rq.zero_stage;
  res.shard_group = r.shard_group(rq);
  res.recompute = rq.recompute;
  res.sequence_parallel = rq.sequence_parallel && r.tp > 1;
}

// The step: pipeline work (compute and model-parallel collectives) + bubble + exposed DP sync +
// optimizer + stragglers + contention; its communication and bubble shares and the GPU's average power.
void combine_step(Seconds work, Watts busy_power, Watts idle_power, TrainingResult& res) {
  res.step_time = work + res.bubble_time + res.dp_exposed_time + res.optimizer_time + res.straggler_time +
                  res.contention_time;
  // What communication costs the step: its exposed time and the compute it slows while hidden.
  const Seconds exposed_comm = res.tp_comm_time + res.cp_comm_time + res.ep_comm_time + res.pp_comm_time +
                               res.dp_exposed_time + res.contention_time;
  res.communication_fraction = exposed_comm / res.step_time;
  res.gpu_power = (busy_power * res.compute_time + idle_power * (res.step_time - res.compute_time)) /
                  res.step_time;
  res.bubble_fraction = res.bubble_time / res.step_time;
}

// Time to train the run's tokens (default: Chinchilla's 20 per parameter) at this step time.
void add_time_to_train(const TrainingRequest& rq, double tokens_per_step, TrainingResult& res) {
  res.tokens = rq.tokens.value_or(chinchilla_tokens(res.parameters));
  res.steps = res.tokens / tokens_per_step;
  res.time_to_train = res.step_time * res.steps;
  res.gpu_hours = res.gpus * res.time_to_train.si() / 3600.0;
}

}  // namespace

bool interleaving_splits_evenly(int layers, int pp, int vpp) {
  if (pp < 1 || vpp < 1) return false;
  if (layers % pp == 0 && (layers / pp) % vpp == 0) return true;
  // The embedding and the loss counted as a layer each: pipeline_stage_split's first and last stages
  // then hold one layer fewer than the others, exactly as its uneven split already gives them.
  return pp > 1 && (layers + 2) % (pp * vpp) == 0;
}

void check_run_lengths(std::optional<int> seq_len, std::optional<double> tokens) {
  if (seq_len && *seq_len < 1) throw BadInput(fmt::format("--seq-len must be >= 1, got {}", *seq_len));
  // Published pre-training runs use up to ~1.6e13 tokens (Llama 3, 15.6T); the bound keeps
  // time-to-train, energy and cost finite.
  constexpr double kMostTokens = 1e18;
  if (tokens && !(*tokens > 0 && *tokens <= kMostTokens))
    throw BadInput(fmt::format("--tokens must be in (0, {:g}] (training tokens; default 20 x parameters), got {}",
                               kMostTokens, *tokens));
}

// --shard-group s: ZeRO over groups of s of the dense data-parallel ranks (dp x cp x ep), replicated
// across the others. It has to divide them, and shards only under ZeRO 1-3.
void check_shard_group(const TrainingRequest& rq, const Resolved& r) {
  if (rq.shard_group == 0) return;
  const int dense_dp = r.dense_dp();
  if (rq.shard_group < 1 || dense_dp % rq.shard_group != 0)
    throw BadInput(fmt::format("--shard-group {} must divide the {} data-parallel ranks (dp {} x cp {} x ep {}): "
                               "e.g. the ranks of one node or one TPU slice",
                               rq.shard_group, dense_dp, r.dp, r.cp, r.ep));
  if (rq.zero_stage == 0)
    throw BadInput("--shard-group shards ZeRO's state within each group: use it with --zero 1, 2 or 3");
}

TrainingResult TrainingEvaluator::evaluate(const TrainingRequest& rq) {
  check_run_lengths(rq.seq_len, rq.tokens);
  const Cluster& c = cluster_;
  const Resolved r = resolve_layout(model_, c, rq);
  if (rq.zero_stage < 0 || rq.zero_stage > 3)
    throw BadInput(fmt::format("--zero must be 0, 1, 2 or 3; got {}", rq.zero_stage));
  check_shard_group(rq, r);
  if (!(rq.overlap_efficiency >= 0 && rq.overlap_efficiency <= 1))
    throw BadInput("overlap efficiency must be in [0, 1]");
  if (rq.lora.enabled() && rq.precision &&
      (*rq.precision == Precision::INT8 || *rq.precision == Precision::INT4))
    throw BadInput(fmt::format("--precision {} with --lora-rank: `train` runs the base in floating point; a "
                               "QLoRA base stored {} is modelled on one device by `mlsysim solve --phase train "
                               "--lora-rank R --precision {} --compute-precision bf16`",
                               to_string(*rq.precision), to_string(*rq.precision), to_string(*rq.precision)));

  TrainingResult res;
  res.model = model_.id;
  res.hardware = hw_.id;
  res.unit = hw_.unit_noun();
  res.cluster = c;
  describe_layout(r, rq, res);

  // ---- per-GPU compute: the engine on the TP x PP shard at the full sequence, / cp ------------
  // Solving at seq S and dividing by cp gives each CP rank's share exactly: linear layers see S/cp
  // tokens and attention S/cp queries against all S keys (ring attention).
  const ShardStep step{r.b, r.S, rq.recompute, rq.precision, rq.attention, rq.lora};
  const ShardSolve& solved = shard(r.tp, r.pp, step);
  const TransformerSpec& stf = shard_models_.at(fmt::format("{}/{}", r.tp, r.pp)).tf;
  const double recomputed = recomputed_fraction(rq, stf.layers);
  const bool partly = rq.recompute_layers.has_value() && recomputed < 1;  // (0 layers: no recomputation)
  const ShardSolve sh = partly ? partly_recomputed(r.tp, r.pp, step, recomputed) : solved;
  res.precision = sh.precision;
  res.recompute_layers = static_cast<int>(std::lround(recomputed * stf.layers));
  StepContext x{model_, hw_, c, r, rq, sh, stf, pipeline_stage_split(model_.tf.layers, r.pp)};
  x.recomputed = recomputed;
  x.g = c.gpus_per_node();
  x.layers_stage = stf.layers;
  x.act_bytes = activation_bytes(sh.compute_precision);
  x.tokens_rank = static_cast<double>(r.b) * r.S / r.cp;
  x.sequence_parallel = res.sequence_parallel;
  x.hidden_states = Bytes(x.tokens_rank * model_.tf.hidden * x.act_bytes);
  x.layer_gemm_window = sh.layer_gemm_time / r.cp;
  // LoRA: the whole model's adapters (the unsharded solve's trainable parameters), 1/tp per rank.
  const double adapters = rq.lora.enabled() ? reference(step).trainable_params : 0.0;
  x.adapters_per_layer = adapters / (r.tp * model_.tf.layers);

  res.stage_layers = x.layers_stage;
  res.first_stage_layers = x.split.first;
  res.last_stage_layers = x.split.last;
  const Seconds t_mb = busiest_stage_time(x) / r.cp;
  res.microbatch_time = t_mb;
  res.compute_time = t_mb * r.m;

  // ---- communication of the model-parallel dimensions, then the pipeline bubble ---------------
  time_tensor_parallel(x, res);
  time_context_parallel(x, res);
  time_expert_parallel(x, res);
  time_pipeline_sends(x, res);
  // Bubble: idle (p-1)/(v m) of the per-GPU pipeline work.
  const Seconds work = res.compute_time + res.tp_comm_time + res.cp_comm_time + res.ep_comm_time +
                       res.pp_comm_time;
  res.bubble_time = r.pp > 1 ? work * pipeline_bubble_overhead(r.pp, r.m, r.v) : Seconds(0);

  // ---- parameters, DP gradient sync, optimizer update -----------------------------------------
  const StageParameters params = stage_parameters(x);
  res.parameters = parameter_count(model_);
  res.parameters_per_gpu = params.per_gpu;
  res.lora = rq.lora;
  res.trainable_parameters = rq.lora.enabled() ? adapters : res.parameters;
  StateBytes bytes;
  bytes.weights = bytes_per_element(sh.precision);
  bytes.gradients = rq.fp32_gradients ? 4.0 : bytes.weights;
  bytes.optimizer = bytes.weights < 4.0 ? 12.0 : 8.0;  // fp32 master + 2 Adam moments (mixed) / moments only
  bytes.adapter_weights = bytes_per_element(sh.head_precision);  // as the engine's ledger keeps them
  time_data_parallel(x, params, bytes, res);
  const ZeroSharding zd = zero_sharding(rq.zero_stage, x.dense_shard_group()),
                     ze = zero_sharding(rq.zero_stage, x.expert_dp());
  // Memory-bound Adam over this GPU's (ZeRO-sharded) trained parameters.
  const double updated = rq.lora.enabled() ? params.adapters(x.layers_stage) / zd.optimizer
                                           : params.dense / zd.optimizer + params.expert / ze.optimizer;
  res.optimizer_time = Bytes(updated * kAdamBytesPerParam) / (hw_.memory_bandwidth * hw_.efficiency.memory);

  res.straggler_factor = straggler_factor(rq.straggler, r.gpus);
  res.straggler_time = res.compute_time * (res.straggler_factor - 1.0);
  charge_contention(hw_, res);

  combine_step(work, sh.busy_power, static_power(hw_), res);

  // ---- efficiency: against the unsharded model on one GPU at the same micro-batch --------------
  // and recomputation: scaling efficiency is what parallelism costs (communication, bubbles, smaller
  // sharded kernels, stragglers; the tutorial's slide 4.11), so recomputation, which one GPU would
  // pay too, stays in the single-GPU MFU.
  // (the same share of the unsharded model's layers recomputed)
  const ShardSolve ref = partly ? partly_recomputed(1, 1, step, recomputed) : reference(step);
  const double tokens_step = static_cast<double>(r.B) * r.S;
  res.tokens_per_s = tokens_step / res.step_time.si();
  const double ref_tokens_per_s = static_cast<double>(r.b) * r.S / ref.time.si();
  res.scaling_efficiency = res.tokens_per_s / (r.gpus * ref_tokens_per_s);
  const double flops_per_sequence = model_flops_per_sequence(model_, hw_, r.S, rq.precision, rq.lora);
  res.model_flops_per_step = Flops(flops_per_sequence * r.B);
  const FlopsPerSecond peak = hw_.peak(ref.compute_precision);
  res.mfu = res.model_flops_per_step.si() / (r.gpus * peak.si() * res.step_time.si());
  res.single_gpu_mfu = flops_per_sequence * r.b / (peak.si() * ref.time.si());
  // HFU counts the FLOPs the hardware executes, recomputation included (Korthikanti et al. 2022
  // sec. 6): MFU x (hardware / model FLOPs) of this layout's per-GPU shard.
  res.hfu = sh.model_flops > 0 ? res.mfu * sh.hw_flops / sh.model_flops : res.mfu;

  // ---- memory ledger per GPU, and what would make it fit --------------------------------------
  res.memory = training_memory(x, params, bytes, zd, ze);
  const LayoutQuantities q{.layers_stage = x.layers_stage, .dense_dp = x.dense_dp(), .params_gpu = params.per_gpu,
                           .trained = rq.lora.enabled() ? params.adapters(x.layers_stage) : params.per_gpu,
                           .trained_dense = rq.lora.enabled() ? params.adapters(x.layers_stage) : params.dense,
                           .hidden_states = x.hidden_states,
                           .weight_bytes = bytes.weights, .grad_bytes = bytes.gradients,
                           .optimizer_bytes = bytes.optimizer, .microbatch_time = t_mb,
                           .layer_gemm_window = x.layer_gemm_window};
  res.memory_capacity = hw_.memory_usable;
  res.feasible = res.memory.total() <= hw_.memory_usable;
  if (!res.feasible)
    res.remedies = does_not_fit_remedies(model_, res.unit, x.g, r, rq, res.memory, hw_.memory_usable, q);

  add_time_to_train(rq, tokens_step, res);

  res.trace = training_trace(hw_, c, r, rq, res, q);
  return res;
}

TrainingResult train(const ModelSpec& model, const HardwareSpec& hw, const Cluster& cluster,
                     const TrainingRequest& request) {
  TrainingEvaluator e(model, hw, cluster);
  return e.evaluate(request);
}

std::string describe_recompute(const TrainingResult& r) {
  if (r.recompute == Recompute::Full && r.recompute_layers < r.stage_layers)
    return fmt::format("full {}/{}", r.recompute_layers, r.stage_layers);
  return to_string(r.recompute);
}

std::string does_not_fit_message(const TrainingResult& r) {
  if (r.feasible) return {};
  std::string s = fmt::format("{} training needs {} per {}, {} has {} usable (weights {}, gradients {}, optimizer {}, "
                              "activations {}, buffers {}); remedies:",
                              r.model, gb(r.memory.total()), r.unit, r.hardware, gb(r.memory_capacity),
                              gb(r.memory.weights), gb(r.memory.gradients), gb(r.memory.optimizer_states),
                              gb(r.memory.activations), gb(r.memory.buffers));
  for (const auto& x : r.remedies) s += "\n  - " + x;
  return s;
}

}  // namespace mlsysim
