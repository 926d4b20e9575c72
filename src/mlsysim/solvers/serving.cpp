#include "mlsysim/solvers/serving.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "mlsysim/catalog/fleet.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/physics/memory.hpp"
#include "mlsysim/physics/serving.hpp"
#include "mlsysim/physics/sharding.hpp"
#include "mlsysim/physics/topology.hpp"
#include "mlsysim/units/format.hpp"

namespace mlsysim {
namespace {

// Default KV link between disaggregated prefill and decode GPUs: one 400 Gb/s NIC per GPU
// (ConnectX-7 / NDR InfiniBand, the DGX H100 reference design) = 50 GB/s per direction.
constexpr double kDefaultKvLinkGBs = 50.0;
constexpr int kMaxComputeBoundSearch = 65536;

void require_llm(const ModelSpec& m, const char* flag) {
  if (m.kind != ModelKind::Decoder)
    throw BadInput(std::string(flag) + " " + m.id + " is " + a_kind_model(m.kind) +
                   ": serving (prefill + decode with a KV cache) needs a decoder-only LLM, "
                   "e.g. llama3-8b");
}

int layers_of(const ModelSpec& m) { return m.tf.layers; }

// Activation bytes of the all-reduced tensor: activations stay 16-bit even with 8/4-bit weights.
double activation_bytes(const Profile& p) {
  return std::max(2.0, bytes_per_element(p.compute_precision));
}

// How the TP report names a host link its all-reduces ride, and why they ride it.
std::string host_link_name(const HardwareSpec& hw, double share) {
  const Link& host = *hw.host_link;
  const std::string why = hw.interconnect ? fmt::format("{} joins only {}", hw.interconnect->name,
                                                       hw.interconnect->reach)
                                          : std::string("no GPU-GPU interconnect listed");
  return fmt::format("{} ({}: host link, {:.0f}% of its line rate achieved{})", host.name, why, share * 100,
                     host.peer_to_peer ? "" : ", staged in host memory: no peer-to-peer");
}

}  // namespace

ServingDeployment make_deployment(const ModelSpec& model, const HardwareSpec& hw, int tp,
                                  std::optional<Precision> precision,
                                  std::optional<Precision> kv_precision, double efficiency,
                                  Runtime runtime, const FleetCatalog* fleet_or_null, bool quantize_head,
                                  const DeploymentOverrides& overrides) {
  if (tp < 1 || tp > 64)
    throw BadInput("--tp must be in [1, 64] GPUs, got " + std::to_string(tp) +
                   ": omit it to pick the smallest power of two that fits");
  ServingDeployment d;
  d.model = &model;
  d.hw = &hw;
  d.tp = tp;
  d.shard = tp == 1 ? model : shard_transformer(model, {tp, 1, 1});
  d.precision = precision;
  d.kv_precision = kv_precision;
  d.quantize_head = quantize_head;
  d.efficiency = efficiency;
  d.runtime = runtime;
  d.compute_precision = overrides.compute_precision;
  if (overrides.activation_scaling) d.activation_scaling = *overrides.activation_scaling;
  // The textbook model has no overhead terms; the engine's host work per iteration otherwise.
  d.step_host = efficiency > 0 ? Seconds(0) : serving_step_host_time(hw.efficiency.host_dispatch);
  if (overrides.step_host) {
    if (!(overrides.step_host->si() >= 0 && overrides.step_host->si() <= 1.0))
      throw BadInput(fmt::format("--step-host-us must be in [0, 1e6] microseconds, got {:g}: 0 for an engine "
                                 "that overlaps its scheduling with the GPU",
                                 overrides.step_host->si() * 1e6));
    if (efficiency > 0 && overrides.step_host->si() > 0)
      throw BadInput("--step-host-us has no place in the textbook model (--efficiency), which has no overhead "
                     "terms: drop one of them");
    if (efficiency <= 0) d.step_host = *overrides.step_host;
  }
  const FleetCatalog& fleet = fleet_or_null ? *fleet_or_null : FleetCatalog::builtin();
  if (tp > 1 && !hw.interconnect && !hw.host_link)
    throw BadInput(hw.id + " lists no interconnect or host link: tensor parallelism (--tp " +
                   std::to_string(tp) + ") needs one; use --tp 1 or a datacenter GPU");
  // The link a ring over this device's own links rides (physics/topology server_link): its
  // interconnect where that joins the group, else its host link at the share a ring reaches over it.
  const auto ride_server_link = [&] {
    const Fabric f = server_link(hw, tp);
    d.link = {f.per_direction * f.collective_efficiency, f.latency};
    d.link_name = f.kind != std::string_view("pcie") ? f.name : host_link_name(hw, f.collective_efficiency);
  };
  if (tp > 1 && efficiency <= 0 && fleet.has_standard_node(hw.id)) {
    // A TP group wider than one node spans nodes: its all-reduces cross the scale-out network
    // (the collective model places the group on the cluster), not the GPU's own NVLink.
    Cluster node = fleet.standard_cluster(hw.id, tp);
    d.link = {node.scale_up.per_direction, node.scale_up.latency};
    d.link_name = node.gpus_per_node() >= tp
                      ? node.scale_up.name
                      : fmt::format("{} within each node and {} across {} nodes", node.scale_up.name,
                                    node.scale_out.name, (tp + node.gpus_per_node() - 1) / node.gpus_per_node());
    d.node = std::move(node);
  } else if (tp > 1 && efficiency <= 0) {
    // No standard node: one server whose rings ride the device's own link where it joins the whole
    // group (an NVLink bridge joins 2), else the host link, as training's synthesized server does.
    if (tp > kMaxServerDevices)
      throw BadInput(fmt::format("--tp {}: that many {} devices do not fit one server ({} at most), and the "
                                 "catalog has no standard multi-node system for {}: use --tp <= {}, or a "
                                 "device with one (e.g. h100)",
                                 tp, hw.id, kMaxServerDevices, hw.id, kMaxServerDevices));
    ride_server_link();
  } else if (hw.interconnect) {
    // The textbook model (and a lone device): the device's own link at line rate.
    d.link = {hw.interconnect->per_direction, hw.interconnect->latency};
    d.link_name = hw.interconnect->name;
  } else if (hw.host_link) {
    ride_server_link();  // no interconnect: the host link, as for the engine's groups above
  }
  return d;
}

StepTime time_step(const ServingDeployment& d, Phase phase, int batch, int tokens, int context) {
  SolveRequest s;
  s.phase = phase;
  s.batch = batch;
  if (phase != Phase::Decode) s.seq_len = tokens;
  s.context = context;
  s.precision = d.precision;
  s.kv_precision = d.kv_precision;
  s.compute_precision = d.compute_precision;
  s.activation_scaling = d.activation_scaling;
  s.quantize_head = d.quantize_head;
  s.efficiency = d.efficiency;
  s.runtime = d.runtime;
  StepTime st;
  st.profile = solve(d.shard, *d.hw, s);
  if (d.tp > 1) {
    // Megatron-LM tensor parallelism (Shoeybi et al. 2019, sec. 3, Fig. 3): one all-reduce after
    // the attention block and one after the MLP, each of the layer's [tokens x hidden] output.
    const double n_tokens = static_cast<double>(batch) * (phase == Phase::Decode ? 1 : tokens);
    const Bytes msg(n_tokens * d.shard.tf.hidden * activation_bytes(st.profile));
    const Seconds one = d.node ? collective_time(CollectiveOp::AllReduce, msg,
                                                 place_group(d.tp, 1, d.node->gpus_per_node()), *d.node)
                                     .time
                               : ring_allreduce_time(msg, d.tp, d.link);
    st.comm = one * (2.0 * layers_of(d.shard));
  }
  st.latency = st.profile.latency + st.comm;
  return st;
}

ProfilingRun profiling_run(const ServingDeployment& d, int max_num_seqs, int batched_tokens) {
  const TransformerSpec& tf = d.model->tf;
  const int per_sequence = std::max(1, std::min(batched_tokens, tf.max_seq > 0 ? tf.max_seq : batched_tokens));
  const int sequences = (batched_tokens + per_sequence - 1) / per_sequence;
  ProfilingRun run{time_step(d, Phase::Prefill, sequences, per_sequence, 0).profile, {}};
  ServingReserve& r = run.reserve;
  r.forward_peak = run.forward.memory.activations;
  r.sampler_rows = std::min(max_num_seqs, batched_tokens);
  r.sampler_peak = sampler_peak_bytes(r.sampler_rows, tf.vocab);
  r.runtime_buffers = serving_runtime_buffers(d.tp);
  return run;
}

Bytes usable_budget(const HardwareSpec& hw, double memory_utilization) {
  return hw.memory_usable * memory_utilization;
}

std::string reserve_remedy(const ServingReserve& reserve, Bytes pool_shortfall) {
  // Only worth naming when shrinking the reserve could close the gap.
  if (reserve.profile_peak() < pool_shortfall) return {};
  if (reserve.sampler_peak > reserve.forward_peak)
    return fmt::format("; or lower --max-batch: vLLM's start-up sampler pass over {:.0f} sequences "
                       "reserves {}", reserve.sampler_rows, format_bytes(reserve.sampler_peak));
  return fmt::format("; or lower the batched-token budget (vLLM --max-num-batched-tokens, `simulate "
                     "--max-batched-tokens`): vLLM's start-up forward pass reserves {}",
                     format_bytes(reserve.forward_peak));
}

Bytes kv_pool_bytes(const HardwareSpec& hw, double memory_utilization, Bytes weights,
                    const ServingReserve& reserve) {
  return usable_budget(hw, memory_utilization) - weights - reserve.total();
}

Seconds weight_read_time(const ServingDeployment& d, const Profile& p) {
  const double eff = d.efficiency > 0 ? 1.0 : d.hw->efficiency.memory;
  return p.weight_bytes / (d.hw->memory_bandwidth * eff);
}

namespace {

struct PhaseSide {
  ServingDeployment dep;
  Bytes weights{}, kv{}, activations{}, draft{};
  [[nodiscard]] Bytes total() const { return weights + kv + activations + draft; }
};

void validate(const ModelSpec& model, const ServingRequest& r) {
  require_llm(model, "--model");
  if (r.seq_len < 1)
    throw BadInput("--seq-len (prompt tokens) must be >= 1, got " + std::to_string(r.seq_len));
  if (r.batch < 1 || r.batch > 65536)
    throw BadInput("--batch-size must be in [1, 65536] concurrent requests, got " +
                   std::to_string(r.batch));
  if (r.output_len < 1 || r.output_len > 1 << 20)
    throw BadInput("--output-len (generated tokens) must be in [1, 1048576], got " +
                   std::to_string(r.output_len));
  // The last generated token is never fed back: the model sees positions up to seq + output - 1.
  const long positions = static_cast<long>(r.seq_len) + r.output_len - 1;
  if (model.tf.max_seq > 0 && positions > model.tf.max_seq)
    throw BadInput(fmt::format("{} handles at most {} tokens: --seq-len {} + --output-len {} - 1 "
                               "(the last token is not fed back) = {}; shorten the prompt or the output",
                               model.id, model.tf.max_seq, r.seq_len, r.output_len, positions));
  if (r.prefill_chunk < 0)
    throw BadInput("--prefill-chunk must be >= 1 token (or 0 for no chunking), got " +
                   std::to_string(r.prefill_chunk));
  if (r.prefill_chunk > 0 && (static_cast<long long>(r.seq_len) + r.prefill_chunk - 1) / r.prefill_chunk > 4096)
    throw BadInput(fmt::format("--prefill-chunk {} splits a {}-token prompt into more than 4096 "
                               "chunks: use a chunk of at least {} tokens (vLLM uses 512-8192)",
                               r.prefill_chunk, r.seq_len, (r.seq_len + 4095) / 4096));
  if (!(r.memory_utilization > 0 && r.memory_utilization <= 1))
    throw BadInput(fmt::format("--memory-utilization must be in (0, 1], got {} (vLLM default 0.9)",
                               r.memory_utilization));
  if (r.tp < 0 || r.decode_tp < 0)
    throw BadInput("--tp must be >= 1 (or omitted for automatic)");
  check_textbook_efficiency(r.efficiency);  // before the TP search, which would wrap its error
  if (r.draft_model) {
    require_llm(*r.draft_model, "--draft-model");
    speculative_expected_tokens(r.acceptance_rate, r.draft_tokens);  // validates alpha and K
    // The target verifies the draft's token ids: both must share one tokenizer (vocabulary).
    if (r.draft_model->tf.vocab != model.tf.vocab)
      throw BadInput(fmt::format("--draft-model {} has a {}-token vocabulary, {} a {}-token one: speculative "
                                 "decoding needs a draft with the target's tokenizer (e.g. a smaller model of "
                                 "the same family)",
                                 r.draft_model->id, r.draft_model->tf.vocab, model.id, model.tf.vocab));
    // A draft as large as the target is allowed: the answer is the slowdown it causes (the
    // tutorial's own example), which the trace names.
  } else if (!(r.acceptance_rate >= 0 && r.acceptance_rate <= 1)) {
    throw BadInput(fmt::format("--acceptance-rate must be in [0, 1], got {}", r.acceptance_rate));
  }
  if (r.kv_link_bandwidth && !(r.kv_link_bandwidth->si() > 0 && std::isfinite(r.kv_link_bandwidth->si())))
    throw BadInput(fmt::format("--kv-link-gbs must be a finite rate > 0 GB/s, got {}",
                               r.kv_link_bandwidth->si() / 1e9));
}

std::vector<int> tp_candidates(int requested) {
  if (requested > 0) return {requested};
  std::vector<int> c;
  for (int t = 1; t <= kMaxTensorParallel; t *= 2) c.push_back(t);
  return c;
}

// Seconds for the (possibly chunked) prefill of `seq_len` tokens; fills chunk stats.
Seconds prefill_time(const ServingDeployment& d, const ServingRequest& r, int& chunks,
                     Seconds& longest, Seconds& comm, Profile& first) {
  const int chunk = r.prefill_chunk > 0 ? std::min(r.prefill_chunk, r.seq_len) : r.seq_len;
  chunks = (r.seq_len + chunk - 1) / chunk;
  Seconds total{};
  longest = Seconds(0);
  comm = Seconds(0);
  for (int i = 0; i < chunks; ++i) {
    const int done = i * chunk;
    const int n = std::min(chunk, r.seq_len - done);
    // Chunk i attends causally to the `done` tokens already cached (Agrawal et al. 2023, sec. 4).
    StepTime st = time_step(d, Phase::Prefill, r.batch, n, done);
    if (i == 0) first = st.profile;
    const Seconds iteration = st.latency + d.step_host;  // each chunk is one engine iteration
    total += iteration;
    comm += st.comm;
    longest = max(longest, iteration);
  }
  return total;
}

int compute_bound_batch(const ServingDeployment& d, int context) {
  auto bound = [&](int b) {
    const Profile p = time_step(d, Phase::Decode, b, 1, context).profile;
    return p.compute_time >= p.memory_time;
  };
  int lo = 0, hi = 1;
  while (hi <= kMaxComputeBoundSearch && !bound(hi)) lo = hi, hi *= 2;
  if (hi > kMaxComputeBoundSearch) return 0;
  while (hi - lo > 1) {
    const int mid = lo + (hi - lo) / 2;
    (bound(mid) ? hi : lo) = mid;
  }
  return hi;
}

struct Attempt {
  ServingResult res;
  bool ok = false;
};

// One serving configuration solved: TTFT, ITL, speculation, KV transfer, throughput, energy,
// memory per GPU and the explanation, each a named step over the engine's step times.
class ServingSolve {
 public:
  ServingSolve(const ModelSpec& model, const HardwareSpec& hw, const HardwareSpec& dec_hw, int tp,
               int dtp, const ServingRequest& r)
      : model_(model), hw_(hw), dec_hw_(dec_hw), r_(r), disaggregated_(r.decode_hardware != nullptr),
        pre_{deploy(model, hw, tp, r.fleet)},
        dec_{disaggregated_ ? deploy(model, dec_hw, dtp, r.fleet) : pre_.dep},
        // Decode step k (k = 1 .. output - 1) feeds token k over seq + k - 1 cached tokens: the
        // mean is seq + (output - 2) / 2. With one output token there is no decode step; the ITL
        // reported is then that of a step over the prompt.
        ctx_(r.output_len >= 2 ? r.seq_len + (r.output_len - 2) / 2 : r.seq_len - 1) {
    out_.disaggregated = disaggregated_;
    out_.tp = tp;
    out_.decode_tp = dtp;
    out_.gpus = disaggregated_ ? tp + dtp : tp;
    out_.unit = hw.unit_noun();
    out_.decode_unit = dec_hw.unit_noun();
    out_.link_name = pre_.dep.link_name;
  }

  ServingResult run() {
    time_prefill();
    time_decode();
    if (r_.draft_model) add_speculation();
    add_kv_transfer_and_throughput();
    add_energy();
    add_memory();
    explain();
    return out_;
  }

 private:
  ServingDeployment deploy(const ModelSpec& m, const HardwareSpec& h, int t, const FleetCatalog* fleet) const {
    return make_deployment(m, h, t, r_.precision, r_.kv_precision, r_.efficiency, r_.runtime, fleet,
                           r_.quantize_head, r_.overrides);
  }

  void time_prefill() {
    Seconds comm;
    out_.ttft = prefill_time(pre_.dep, r_, out_.prefill_chunks, out_.prefill_chunk_time, comm, pf_);
    out_.prefill_comm = comm;
    out_.prefill_bottleneck = pf_.bottleneck;
    out_.prefill_mfu = pf_.mfu;
    out_.prefill_intensity = pf_.arithmetic_intensity;
    out_.ridge_point = pf_.ridge_point;
  }

  // Decode (ITL) at the average context over the generation.
  void time_decode() {
    ds_ = time_step(dec_.dep, Phase::Decode, r_.batch, 1, ctx_);
    out_.step_host = dec_.dep.step_host;
    out_.itl_plain = ds_.latency + out_.step_host;
    out_.decode_comm = ds_.comm;
    out_.weight_precision = ds_.profile.precision;
    out_.kv_precision = ds_.profile.kv_precision;
    out_.decode_bottleneck = ds_.profile.bottleneck;
    out_.decode_mfu = ds_.profile.mfu;
    out_.decode_intensity = ds_.profile.arithmetic_intensity;
    out_.decode_compute_bound_batch = compute_bound_batch(dec_.dep, ctx_);
    out_.itl = out_.itl_plain;
  }

  // Speculative decoding (Leviathan et al. 2023, sec. 3.3-3.4).
  void add_speculation() {
    out_.speculative = true;
    out_.draft_tokens = r_.draft_tokens;
    out_.acceptance_rate = r_.acceptance_rate;
    out_.expected_tokens_per_step = speculative_expected_tokens(r_.acceptance_rate, r_.draft_tokens);
    // The draft runs unsharded on one GPU of the decode replica (vLLM's default draft TP = 1).
    draft_dep_ = deploy(*r_.draft_model, dec_hw_, 1, nullptr);
    out_.draft_step_time = time_step(draft_dep_, Phase::Decode, r_.batch, 1, ctx_).latency;
    // Before its first draft the draft model prefills the prompt too (it needs its own KV cache):
    // the first token waits for it.
    out_.draft_prefill = time_step(draft_dep_, Phase::Prefill, r_.batch, r_.seq_len, 0).latency;
    out_.ttft += out_.draft_prefill;
    // The target verifies K drafted tokens (+1 of its own) in one pass over the cached context.
    out_.verify_time = time_step(dec_.dep, Phase::Prefill, r_.batch, r_.draft_tokens + 1, ctx_).latency;
    // One engine iteration: K draft steps and the verify pass, around one round of host work.
    const Seconds step =
        out_.draft_step_time * static_cast<double>(r_.draft_tokens) + out_.verify_time + dec_.dep.step_host;
    out_.itl = step / out_.expected_tokens_per_step;
    out_.speculative_speedup = out_.itl_plain / out_.itl;
  }

  // KV transfer between prefill and decode GPUs (DistServe, Zhong et al. 2024, sec. 4), then the
  // request's end-to-end latency and the throughputs.
  void add_kv_transfer_and_throughput() {
    kv_token_full_ = kv_cache_bytes_per_token(model_, ds_.profile.kv_precision);
    out_.kv_cache_per_request = kv_token_full_ * static_cast<double>(r_.seq_len + r_.output_len);
    if (disaggregated_)
      out_.kv_transfer = kv_token_full_ * static_cast<double>(r_.batch) * static_cast<double>(r_.seq_len) /
                             kv_link_bandwidth() + r_.kv_link_latency;
    out_.e2e_latency = out_.ttft + out_.kv_transfer + out_.itl * static_cast<double>(r_.output_len - 1);
    out_.tokens_per_s = r_.batch / out_.itl.si();
    out_.tokens_per_s_per_gpu = out_.tokens_per_s / out_.gpus;
    out_.request_tokens_per_s = static_cast<double>(r_.batch) * r_.output_len / out_.e2e_latency.si();
    out_.request_tokens_per_s_per_gpu = out_.request_tokens_per_s / out_.gpus;
  }
  BytesPerSecond kv_link_bandwidth() const {
    return r_.kv_link_bandwidth.value_or(gigabytes_per_second(kDefaultKvLinkGBs));
  }

  // Speculation runs draft and verify passes in the decode time: the plain step's power stands in.
  void add_energy() {
    const Seconds prefill_gpu_time = out_.ttft * static_cast<double>(out_.tp);
    const Seconds decode_gpu_time =
        out_.itl * static_cast<double>(r_.output_len - 1) * static_cast<double>(out_.decode_tp);
    const Joules batch_energy =
        pf_.average_power() * prefill_gpu_time + ds_.profile.average_power() * decode_gpu_time;
    out_.energy_per_token = batch_energy / (static_cast<double>(r_.batch) * r_.output_len);
    out_.average_power_per_gpu = batch_energy / (prefill_gpu_time + decode_gpu_time);
  }

  // Memory per GPU: weights + KV of every request at its final length + live activations (+ the
  // draft model); the fuller side (prefill or decode GPUs) is the one reported.
  void add_memory() {
    const double final_tokens = static_cast<double>(r_.seq_len) + r_.output_len;
    auto fill = [&](PhaseSide& side, const Profile& a, const Profile& b, double tokens) {
      side.weights = a.memory.weights;
      side.kv = kv_cache_bytes_per_token(side.dep.shard, a.kv_precision) * (r_.batch * tokens);
      side.activations = max(a.memory.activations, b.memory.activations);
    };
    if (disaggregated_) {
      fill(pre_, pf_, pf_, r_.seq_len);
      fill(dec_, ds_.profile, ds_.profile, final_tokens);
    } else {
      fill(pre_, ds_.profile, pf_, final_tokens);
    }
    PhaseSide& dside = disaggregated_ ? dec_ : pre_;
    if (r_.draft_model) {
      const Profile dp = time_step(draft_dep_, Phase::Decode, r_.batch, 1, ctx_).profile;
      dside.draft = dp.memory.weights +
                    kv_cache_bytes_per_token(*r_.draft_model, dp.kv_precision) * (r_.batch * final_tokens);
    }
    // Runtimes size their pools from the memory the driver exposes (cudaMemGetInfo), not the label.
    const double pre_cap = usable_budget(hw_, r_.memory_utilization).si();
    const double dec_cap = usable_budget(dec_hw_, r_.memory_utilization).si();
    const double pre_share = pre_.total().si() / pre_cap;
    const double dec_share = disaggregated_ ? dec_.total().si() / dec_cap : 0;
    const PhaseSide& worst = dec_share > pre_share ? dec_ : pre_;
    const HardwareSpec& worst_hw = dec_share > pre_share ? dec_hw_ : hw_;
    out_.weights_per_gpu = worst.weights;
    out_.kv_cache_per_gpu = worst.kv;
    out_.activations_per_gpu = worst.activations;
    out_.draft_per_gpu = worst.draft;
    out_.memory_footprint = worst.total();
    out_.memory_capacity = worst_hw.memory_usable;
    out_.memory_hardware = worst_hw.id;
    out_.memory_on_decode = disaggregated_ && dec_share > pre_share;
    out_.memory_tp = out_.memory_on_decode ? out_.decode_tp : out_.tp;
    out_.memory_available = usable_budget(worst_hw, r_.memory_utilization);
    out_.memory_utilization = out_.memory_footprint / out_.memory_capacity;
    out_.feasible = pre_share <= 1.0 && dec_share <= 1.0;
  }

  void explain() {
    auto& t = out_.trace;
    const int tp = out_.tp, dtp = out_.decode_tp;
    t.push_back(fmt::format("Workload: {} serving {} request(s), {} prompt + {} output tokens, on {}{}{}.",
                            model_.id, r_.batch, r_.seq_len, r_.output_len, hw_.name,
                            tp > 1 ? fmt::format(" x{} (tensor parallel over {})", tp, pre_.dep.link_name) : "",
                            disaggregated_ ? fmt::format("; decode on {}{}", dec_hw_.name,
                                                         dtp > 1 ? fmt::format(" x{}", dtp) : "")
                                           : ""));
    t.push_back(fmt::format("Prefill (TTFT) = engine prefill solve{}: {} ({}-bound, MFU {}, intensity "
                            "{:.0f} FLOP/B vs ridge {:.0f}); causal attention FLOPs, not the S^2 upper bound.",
                            out_.prefill_chunks > 1 ? fmt::format(" in {} chunks", out_.prefill_chunks) : "",
                            format_time(out_.ttft - out_.draft_prefill), to_string(out_.prefill_bottleneck),
                            format_percent(out_.prefill_mfu), out_.prefill_intensity.si(),
                            out_.ridge_point.si()));
    if (out_.prefill_chunks > 1)
      t.push_back(fmt::format("Chunked prefill (Sarathi, Agrawal et al. 2023): longest chunk {} is the "
                              "longest a co-scheduled decode step is stalled.",
                              format_time(out_.prefill_chunk_time)));
    t.push_back(fmt::format("Decode (ITL) = engine decode solve at batch {} over {} cached tokens "
                            "(the mean over the decode steps: prompt + (output - 2)/2): {} ({}-bound, MFU {}); it reads the weights and "
                            "every request's KV cache each step.",
                            r_.batch, ctx_, format_time(out_.itl_plain), to_string(out_.decode_bottleneck),
                            format_percent(out_.decode_mfu)));
    t.push_back(out_.decode_compute_bound_batch > 0
                    ? fmt::format("Decode turns compute-bound at batch >= {} (at this context); "
                                  "below that, adding requests is almost free per step.",
                                  out_.decode_compute_bound_batch)
                    : fmt::format("Decode stays memory-bound up to batch {} at this context: the KV "
                                  "reads grow with batch as fast as the FLOPs.",
                                  kMaxComputeBoundSearch));
    if (dec_.dep.step_host.si() > 0)
      t.push_back(fmt::format("Engine iteration: each prefill (chunk) and decode step includes {} of the serving "
                              "runtime's host work that the {} waits for (input copies, graph launch, sampling "
                              "outside the graph, token copy-back and sync; {} framework calls, docs/SERVING.md); "
                              "--step-host-us 0 for a runtime that overlaps it with the {}.",
                              format_time(dec_.dep.step_host), out_.unit, kServingStepHostCalls, out_.unit));
    if (tp > 1 || (disaggregated_ && dtp > 1))
      t.push_back(pre_.dep.node
                      ? fmt::format("Tensor parallel: 2 all-reduces per layer (Megatron-LM) over {} ({} per "
                                    "direction; the node fabric's collective model, docs/DISTRIBUTED.md: ring, "
                                    "tree or in-network, each size on its faster protocol): {} in TTFT, {} per "
                                    "decode step.",
                                    pre_.dep.link_name, format_bandwidth(pre_.dep.link.bandwidth),
                                    format_time(out_.prefill_comm), format_time(out_.decode_comm))
                      : fmt::format("Tensor parallel: 2 ring all-reduces per layer (Megatron-LM) over {} "
                                    "({} per direction): {} in TTFT, {} per decode step.",
                                    pre_.dep.link_name, format_bandwidth(pre_.dep.link.bandwidth),
                                    format_time(out_.prefill_comm), format_time(out_.decode_comm)));
    if (out_.speculative)
      t.push_back(fmt::format(
          "Speculative decoding (Leviathan et al. 2023): draft {} K={} x {} + verify {} = {} per step; "
          "E[tokens] = (1 - a^(K+1))/(1 - a) = {:.2f} at a = {} -> ITL {} ({:.2f}x {}).",
          r_.draft_model->id, r_.draft_tokens, format_time(out_.draft_step_time),
          format_time(out_.verify_time),
          format_time(out_.draft_step_time * static_cast<double>(r_.draft_tokens) + out_.verify_time),
          out_.expected_tokens_per_step, r_.acceptance_rate, format_time(out_.itl),
          out_.speculative_speedup, out_.speculative_speedup >= 1 ? "speedup" : "SLOWDOWN: it does not pay"));
    if (out_.speculative)
      t.push_back(fmt::format("Speculative decoding: the draft prefills the prompt too ({}): TTFT {} + {} = {}.",
                              format_time(out_.draft_prefill), format_time(out_.ttft - out_.draft_prefill),
                              format_time(out_.draft_prefill), format_time(out_.ttft)));
    if (disaggregated_)
      t.push_back(fmt::format("Disaggregated: the prompt's KV cache ({}) crosses a {} link in {} "
                              "before decoding starts{}.",
                              format_bytes(kv_token_full_ * static_cast<double>(r_.batch * r_.seq_len)),
                              format_bandwidth(kv_link_bandwidth()), format_time(out_.kv_transfer),
                              r_.kv_link_bandwidth ? "" : " (default: one 400 Gb/s NIC per GPU)"));
    t.push_back(fmt::format("KV cache per request: {} per token x {} tokens = {} ({} KV heads x {} "
                            "head dim x {} layers x 2 (K,V) x {} B).",
                            format_bytes(kv_token_full_), r_.seq_len + r_.output_len,
                            format_bytes(out_.kv_cache_per_request), model_.tf.kv_heads,
                            model_.tf.head_dim, model_.tf.layers, bytes_per_element(ds_.profile.kv_precision)));
    t.push_back(fmt::format("Memory per {}: weights {} + KV {} + activations {}{} = {} of {} usable "
                            "({} x {} memory utilization) -> {}.",
                            out_.unit, format_bytes(out_.weights_per_gpu), format_bytes(out_.kv_cache_per_gpu),
                            format_bytes(out_.activations_per_gpu),
                            out_.draft_per_gpu.si() > 0 ? " + draft " + format_bytes(out_.draft_per_gpu) : "",
                            format_bytes(out_.memory_footprint), format_bytes(out_.memory_available),
                            format_bytes(out_.memory_capacity), r_.memory_utilization,
                            out_.feasible ? "fits" : "DOES NOT FIT"));
    t.push_back(fmt::format("Throughput: {} requests / ITL = {:.4g} tokens/s ({:.4g} per {}); with "
                            "prefill, {:.4g} tokens/s; end-to-end latency {}.",
                            r_.batch, out_.tokens_per_s, out_.tokens_per_s_per_gpu, out_.unit,
                            out_.request_tokens_per_s, format_time(out_.e2e_latency)));
  }

  const ModelSpec& model_;
  const HardwareSpec& hw_;
  const HardwareSpec& dec_hw_;
  const ServingRequest& r_;
  const bool disaggregated_;
  PhaseSide pre_, dec_;
  const int ctx_;
  ServingResult out_;
  Profile pf_;           // the first prefill chunk's profile
  StepTime ds_;          // the decode step at the mean context
  ServingDeployment draft_dep_;
  Bytes kv_token_full_{};  // KV bytes per token of the whole (unsharded) model
};

ServingResult serve_with(const ModelSpec& model, const HardwareSpec& hw,
                         const HardwareSpec& dec_hw, int tp, int dtp, const ServingRequest& r) {
  return ServingSolve(model, hw, dec_hw, tp, dtp, r).run();
}

}  // namespace

ServingResult serve(const ModelSpec& model, const HardwareSpec& hw, const ServingRequest& r) {
  validate(model, r);
  const HardwareSpec& dec_hw = r.decode_hardware ? *r.decode_hardware : hw;
  const std::vector<int> tps = tp_candidates(r.tp);
  const std::vector<int> dtps = r.decode_hardware ? tp_candidates(r.decode_tp) : std::vector<int>{0};
  ServingResult last;
  bool any = false;
  std::string shard_error;
  bool every_degree_same_error = true;  // then the error is not about the split: say it plainly
  // The smallest TP (then decode TP) that fits; explicit values are used as given.
  for (int tp : tps) {
    for (int dtp : dtps) {
      ServingResult res;
      try {
        res = serve_with(model, hw, dec_hw, tp, dtp == 0 ? tp : dtp, r);
      } catch (const BadInput& e) {
        if (tps.size() == 1 && dtps.size() == 1) throw;
        if (!shard_error.empty() && shard_error != e.what()) every_degree_same_error = false;
        shard_error = e.what();
        continue;
      }
      if (res.feasible) {
        if (r.tp == 0 && tp > 1)
          res.trace.insert(res.trace.begin() + 1,
                           fmt::format("Tensor parallelism chosen automatically: tp = {} is the smallest "
                                       "power of two whose per-GPU memory fits.", tp));
        return res;
      }
      last = std::move(res);
      any = true;
    }
  }
  if (!any)
    throw BadInput(every_degree_same_error ? shard_error : "no tensor-parallel degree works: " + shard_error);
  return last;
}

std::string serving_does_not_fit_message(const ServingResult& r, const ModelSpec& model) {
  if (r.feasible) return {};
  const char* tp_flag = r.memory_on_decode ? "--decode-tp" : "--tp";
  std::string msg = fmt::format(
      "{} serving needs {} per {}GPU at {}={} (weights {}, KV cache {}, activations {}{}), {} has {} "
      "usable ({} x memory utilization)",
      model.id, format_bytes(r.memory_footprint), r.memory_on_decode ? "decode " : "", tp_flag + 2,
      r.memory_tp, format_bytes(r.weights_per_gpu), format_bytes(r.kv_cache_per_gpu),
      format_bytes(r.activations_per_gpu),
      r.draft_per_gpu.si() > 0 ? ", draft " + format_bytes(r.draft_per_gpu) : "", r.memory_hardware,
      format_bytes(r.memory_available), format_bytes(r.memory_capacity));
  std::vector<std::string> remedies;
  if (const int next = doubled_tensor_parallel(model, r.memory_tp, kMaxTensorParallel))
    remedies.push_back(fmt::format("{} {}", tp_flag, next));
  if (r.kv_cache_per_gpu.si() > 0) {
    const double per_req = r.kv_cache_per_gpu.si();  // for the whole batch
    const double spare = (r.memory_available - r.weights_per_gpu - r.activations_per_gpu - r.draft_per_gpu).si();
    if (spare > 0) remedies.push_back(fmt::format("fewer concurrent requests (KV of this batch {}, {} free)",
                                                  format_bytes(Bytes(per_req)), format_bytes(Bytes(spare))));
  }
  // Only precisions narrower than the ones in use are remedies.
  const double weight_bytes = bytes_per_element(r.weight_precision);
  if (weight_bytes > 1) remedies.push_back("--precision int8 or int4 (smaller weights)");
  else if (weight_bytes > 0.5) remedies.push_back("--precision int4 (smaller weights)");
  if (bytes_per_element(r.kv_precision) > 1) remedies.push_back("--kv-precision fp8 (smaller KV cache)");
  remedies.push_back("shorter --seq-len / --output-len");
  msg += ": use ";
  for (size_t i = 0; i < remedies.size(); ++i) msg += (i ? "; or " : "") + remedies[i];
  return msg;
}

// ---- ContinuousBatchingModel --------------------------------------------------------------------

namespace {

// Validates the request; returns the mean tokens a request caches.
int check_batching_request(const ModelSpec& model, const BatchingRequest& r) {
  require_llm(model, "--model");
  if (r.seq_len < 2)
    throw BadInput("--seq-len (maximum tokens per request) must be >= 2, got " + std::to_string(r.seq_len));
  if (model.tf.max_seq > 0 && r.seq_len > model.tf.max_seq)
    throw BadInput(fmt::format("--seq-len {} exceeds {}'s max_seq {}", r.seq_len, model.id, model.tf.max_seq));
  const int mean = r.mean_tokens.value_or(r.seq_len);
  if (mean < 1 || mean > r.seq_len)
    throw BadInput(fmt::format("--mean-tokens must be in [1, {}] (the most tokens a request caches), got {}",
                               r.seq_len, mean));
  if (r.max_batch < 1 || r.max_batch > 65536)
    throw BadInput("--max-batch must be in [1, 65536], got " + std::to_string(r.max_batch));
  if (r.page_size < 1 || r.page_size > 4096)
    throw BadInput("--page-size must be in [1, 4096] tokens, got " + std::to_string(r.page_size) +
                   " (vLLM default 16)");
  if (r.itl_slo && !(r.itl_slo->si() > 0 && std::isfinite(r.itl_slo->si())))
    throw BadInput(fmt::format("--itl-slo-ms must be a finite time > 0 ms, got {}", r.itl_slo->si() * 1e3));
  if (!(r.memory_utilization > 0 && r.memory_utilization <= 1))
    throw BadInput(fmt::format("--memory-utilization must be in (0, 1], got {}", r.memory_utilization));
  return mean;
}

// How many requests one KV allocation scheme admits: the pool / bytes allocated per request, capped
// by --max-batch, and (with an ITL SLO) the largest batch whose decode step meets it.
class AllocatorSizing {
 public:
  AllocatorSizing(const ServingDeployment& d, const BatchingRequest& r, const BatchingResult& pool, int mean)
      : d_(d), r_(r), pool_(pool), context_(std::max(0, mean - 1)) {}

  AllocatorCapacity operator()(const KvAllocation& a) const {
    AllocatorCapacity c;
    c.allocated_tokens = a.allocated_tokens;
    c.kv_utilization = a.utilization();
    c.kv_allocated_per_request = pool_.kv_bytes_per_token_per_gpu * a.allocated_tokens;
    const double fit = pool_.feasible ? std::floor(pool_.kv_budget / c.kv_allocated_per_request) : 0;
    c.memory_limit = static_cast<int>(std::min<double>(fit, r_.max_batch));
    c.binding = fit >= r_.max_batch ? "max batch" : "memory";
    c.slo_limit = c.memory_limit;
    if (r_.itl_slo && c.memory_limit > 0 && itl_at(c.memory_limit) > *r_.itl_slo) {
      c.slo_limit = largest_batch_within_slo(c.memory_limit);
      c.binding = "ITL SLO";
    }
    c.max_concurrent_requests = std::min(c.memory_limit, c.slo_limit);
    if (c.max_concurrent_requests > 0) {
      c.itl = itl_at(c.max_concurrent_requests);
      c.tokens_per_s = c.max_concurrent_requests / c.itl.si();
    }
    return c;
  }

 private:
  [[nodiscard]] Seconds itl_at(int n) const {
    return time_step(d_, Phase::Decode, n, 1, context_).latency + d_.step_host;
  }
  // Largest N <= limit with ITL(N) <= SLO: the decode step grows with N (more KV to read, more FLOPs).
  [[nodiscard]] int largest_batch_within_slo(int limit) const {
    int lo = 0, hi = limit;
    while (hi - lo > 1) {
      const int mid = lo + (hi - lo) / 2;
      (itl_at(mid) <= *r_.itl_slo ? lo : hi) = mid;
    }
    if (lo == 0 && itl_at(1) <= *r_.itl_slo) lo = 1;
    return lo;
  }

  const ServingDeployment& d_;
  const BatchingRequest& r_;
  const BatchingResult& pool_;
  const int context_;
};

void explain_batching(const ModelSpec& model, const HardwareSpec& hw, const BatchingRequest& r,
                      BatchingResult& out) {
  auto& t = out.trace;
  t.push_back(fmt::format("KV pool per {} (vLLM's start-up profile): usable {} x {} - weights {} - "
                          "profile peak {} (the larger of the {}-token forward pass, {}, and a sampler "
                          "pass over {} sequences x {} vocabulary entries x 16 B, {}) - runtime "
                          "buffers {} = {}.",
                          hw.unit_noun(), format_bytes(hw.memory_usable), r.memory_utilization,
                          format_bytes(out.weights_per_gpu), format_bytes(out.reserved_activations),
                          kVllmBatchedTokens, format_bytes(out.reserve.forward_peak),
                          out.reserve.sampler_rows, model.tf.vocab, format_bytes(out.reserve.sampler_peak),
                          format_bytes(out.reserve.runtime_buffers), format_bytes(out.kv_budget)));
  t.push_back(fmt::format("KV per token per {}: {}; requests use {} tokens on average, at most {}.",
                          hw.unit_noun(), format_bytes(out.kv_bytes_per_token_per_gpu), out.mean_tokens, r.seq_len));
  auto line = [&](const char* name, const AllocatorCapacity& c, const std::string& how) {
    t.push_back(fmt::format("{} ({}): {:.0f} tokens allocated per request ({} used) -> {} fit in "
                            "memory; max concurrent {} (bound by {}); ITL {} -> {:.4g} tokens/s.",
                            name, how, c.allocated_tokens, format_percent(c.kv_utilization),
                            c.memory_limit, c.max_concurrent_requests, c.binding,
                            format_time(c.itl), c.tokens_per_s));
  };
  line("Static", out.static_alloc, "reserve the maximum length, as Orca/FasterTransformer");
  line("Paged", out.paged, fmt::format("PagedAttention, Kwon et al. 2023, {}-token blocks", r.page_size));
  t.push_back(fmt::format("Paged / static throughput: {:.2f}x.", out.speedup_vs_static));
  if (!out.feasible) t.push_back("DOES NOT FIT: " + batching_does_not_fit_message(out, r, model, hw) + ".");
}

}  // namespace

std::string batching_does_not_fit_message(const BatchingResult& out, const BatchingRequest& r,
                                          const ModelSpec& model, const HardwareSpec& hw) {
  if (out.feasible) return {};
  const std::string more_tp = more_tensor_parallel_remedy(model, r.tp, kMaxTensorParallel);
  if (out.kv_budget.si() <= 0)
    return fmt::format("weights {} + runtime reserve {} leave no KV memory in {} usable: {}; or a "
                       "lower --precision{}",
                       format_bytes(out.weights_per_gpu), format_bytes(out.reserve.total()),
                       format_bytes(usable_budget(hw, r.memory_utilization)), more_tp,
                       reserve_remedy(out.reserve, Bytes(-out.kv_budget.si())));
  const AllocatorCapacity& c = out.paged;
  if (c.memory_limit < 1)
    return fmt::format("the {} KV pool holds less than one request ({} allocated per request): {}; or a "
                       "lower --kv-precision, or shorter requests",
                       format_bytes(out.kv_budget), format_bytes(c.kv_allocated_per_request), more_tp);
  return fmt::format("no batch meets the ITL SLO of {}: one request alone decodes slower; raise --itl-slo-ms "
                     "or add --tp",
                     format_time(r.itl_slo.value_or(Seconds(0))));
}

BatchingResult continuous_batching(const ModelSpec& model, const HardwareSpec& hw,
                                   const BatchingRequest& r) {
  const int mean = check_batching_request(model, r);
  BatchingResult out;
  out.tp = r.tp;
  out.mean_tokens = mean;
  const ServingDeployment d = make_deployment(model, hw, r.tp, r.precision, r.kv_precision, r.efficiency,
                                              r.runtime, r.fleet, r.quantize_head, r.overrides);
  const StepTime pf = time_step(d, Phase::Prefill, 1, mean, 0);
  out.ttft = pf.latency + d.step_host;
  out.weights_per_gpu = pf.profile.memory.weights;
  // vLLM sizes the KV pool after a profiling run at its chunked-prefill token budget (8192) and
  // its sequence cap (--max-batch = --max-num-seqs).
  out.reserve = profiling_run(d, r.max_batch, kVllmBatchedTokens).reserve;
  out.reserved_activations = out.reserve.profile_peak();
  out.kv_bytes_per_token_per_gpu = kv_cache_bytes_per_token(d.shard, pf.profile.kv_precision);
  out.kv_budget = kv_pool_bytes(hw, r.memory_utilization, out.weights_per_gpu, out.reserve);
  out.feasible = out.kv_budget.si() > 0;
  const AllocatorSizing size(d, r, out, mean);
  out.static_alloc = size(static_kv_allocation(mean, r.seq_len));
  out.paged = size(paged_kv_allocation(mean, r.page_size));
  out.speedup_vs_static = out.static_alloc.tokens_per_s > 0
                              ? out.paged.tokens_per_s / out.static_alloc.tokens_per_s : 0;
  out.feasible = out.feasible && out.paged.max_concurrent_requests > 0;
  explain_batching(model, hw, r, out);
  return out;
}

}  // namespace mlsysim
