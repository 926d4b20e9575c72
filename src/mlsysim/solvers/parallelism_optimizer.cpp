#include "mlsysim/solvers/parallelism_optimizer.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fmt/format.h>
#include <limits>

#include "mlsysim/errors.hpp"
#include "mlsysim/solvers/worker_threads.hpp"

namespace mlsysim {
namespace {

std::vector<int> divisors(int n, int limit) {
  std::vector<int> out;
  for (int d = 1; d <= std::min(n, limit); ++d)
    if (n % d == 0) out.push_back(d);
  return out;
}

double objective_value(const TrainingResult& r, Objective o) {
  if (o == Objective::Cost) return r.step_time.si() * r.gpus;  // GPU-seconds: x the device's $/GPU-s is money
  return r.step_time.si();
}

std::string describe(const TrainingResult& r) {
  return fmt::format("TP{} PP{} DP{} CP{} EP{}{} mb{} {} ZeRO-{}", r.layout.tp, r.layout.pp, r.layout.dp,
                     r.layout.cp, r.layout.ep, r.layout.vpp > 1 ? fmt::format(" v{}", r.layout.vpp) : "",
                     r.micro_batch, describe_recompute(r), r.zero_stage);
}

void check_request(const ModelSpec& model, const Cluster& cluster, const OptimizerRequest& req, int N) {
  if (!model.is_transformer())
    throw BadInput("the parallelism optimizer searches transformer layouts; " + model.id + " is " +
                   a_kind_model(model.kind));
  if (N > cluster.total_gpus())
    throw BadInput(fmt::format("--gpus {} exceeds cluster {} ({} GPUs)", N, cluster.id, cluster.total_gpus()));
  if (req.global_batch < 1) throw BadInput("--global-batch-size is required and must be >= 1");
  check_run_lengths(req.seq_len, req.tokens);
  if (req.max_tp && *req.max_tp < 1)
    throw BadInput(fmt::format("--max-tp must be >= 1 (1 = no tensor parallelism), got {}", *req.max_tp));
  if (req.max_pp && *req.max_pp < 1)
    throw BadInput(fmt::format("--max-pp must be >= 1 (1 = no pipeline), got {}", *req.max_pp));
  if (req.top < 1) throw BadInput(fmt::format("--top must be >= 1 layout, got {}", req.top));
}

// Every layout of N GPUs the search space allows: TP within a node and dividing the heads, PP up to
// the layers, CP dividing the sequence, EP dividing the experts, micro-batches dividing the global
// batch, then interleaving depths, sequence parallelism, recomputation and ZeRO stages.
// `fewest_replicas` gets the fewest data-parallel replicas (dp x ep) of any split, whether or not
// it divides the global batch: what the batch must be a multiple of for any layout to exist.
std::vector<TrainingRequest> enumerate_layouts(const ModelSpec& model, const Cluster& cluster,
                                               const OptimizerRequest& req, int N, int S, int& fewest_replicas) {
  const TransformerSpec& tf = model.tf;
  const int g = cluster.gpus_per_node();
  std::vector<TrainingRequest> cands;
  const int max_tp = std::min(req.max_tp.value_or(g), g);
  const int max_pp = req.max_pp.value_or(tf.layers);
  for (int tp : divisors(N, max_tp)) {
    if (tf.heads % tp != 0) continue;
    for (int pp : divisors(N / tp, max_pp)) {
      for (int cp : req.search_cp ? divisors(N / (tp * pp), 16) : std::vector<int>{1}) {
        if (S % cp != 0) continue;
        const std::vector<int> eps = (req.search_ep && tf.experts > 0) ? divisors(N / (tp * pp * cp), tf.experts)
                                                                       : std::vector<int>{1};
        for (int ep : eps) {
          if (tf.experts > 0 && tf.experts % ep != 0) continue;
          const int dp = N / (tp * pp * cp * ep);
          const int replicas = dp * ep;
          fewest_replicas = std::min(fewest_replicas, replicas);
          if (req.global_batch % replicas != 0) continue;
          for (int b = 1; b <= 32; b *= 2) {
            if (req.global_batch % (replicas * b) != 0) continue;
            const int m = req.global_batch / (replicas * b);
            // Interleaved 1F1B (Narayanan et al. 2021): v model chunks per GPU, needs the
            // micro-batch count to be a multiple of pp and the layers to split evenly into chunks.
            std::vector<int> vs{1};
            if (req.search_interleaving && pp > 1 && m % pp == 0)
              for (int v = 2; v <= 8; ++v)
                if (interleaving_splits_evenly(tf.layers, pp, v)) vs.push_back(v);
            // Sequence parallelism (Korthikanti et al. 2022) only changes anything with TP.
            const std::vector<bool> sps = tp > 1 ? std::vector<bool>{true, false} : std::vector<bool>{true};
            // Full recomputation of every layer, or (block recomputation) of a quarter, half or
            // three quarters of each stage's layers: the least recomputation that fits is the fastest.
            const int stage_layers = (tf.layers + pp - 1) / pp;
            std::vector<std::optional<int>> blocks{std::nullopt};
            if (req.search_block_recompute)
              for (int quarter = 1; quarter <= 3; ++quarter) {
                const int n = stage_layers * quarter / 4;
                if (n >= 1 && n < stage_layers && (blocks.size() == 1 || blocks.back() != n)) blocks.push_back(n);
              }
            for (int v : vs)
              for (bool sp : sps)
              for (Recompute r : req.recompute)
              for (const std::optional<int>& block : r == Recompute::Full ? blocks : std::vector<std::optional<int>>{std::nullopt})
                for (int z : req.zero_stages) {
                  if (z > 0 && replicas == 1) continue;  // nothing to shard
                  TrainingRequest q;
                  q.sequence_parallel = sp;
                  q.gpus = N;
                  q.layout = {tp, pp, dp, cp, ep, v};
                  q.global_batch = req.global_batch;
                  q.micro_batch = b;
                  q.seq_len = S;
                  q.precision = req.precision;
                  q.recompute = r;
                  q.recompute_layers = block;
                  q.zero_stage = z;
                  q.tokens = req.tokens;
                  q.tp_comm_overlap = req.tp_comm_overlap;
                  q.pp_comm_overlap = req.pp_comm_overlap;
                  q.lora = req.lora;
                  cands.push_back(q);
                }
          }
        }
      }
    }
  }
  return cands;
}

// A kept result remembers the request it came from: the winner is re-evaluated from that request.
struct Kept {
  size_t candidate;
  TrainingResult result;
};

// What one search thread found: its best layouts, its counts, the smallest layout that did not
// fit (for the error when none fits) and the first reason a layout was impossible.
struct ThreadFindings {
  std::vector<Kept> top;
  long rejected = 0, did_not_fit = 0, feasible = 0;
  std::optional<TrainingResult> smallest;
  std::string first_error;
};

class LayoutSearch {
 public:
  LayoutSearch(const ModelSpec& model, const HardwareSpec& hw, const Cluster& cluster,
               const OptimizerRequest& req, const std::vector<TrainingRequest>& cands)
      : model_(model), hw_(hw), cluster_(cluster), req_(req), cands_(cands),
        keep_(static_cast<size_t>(std::max(req.top, 2))) {}

  // Evaluates every candidate over the threads (thread t takes candidates t, t + T, ...).
  std::vector<ThreadFindings> run() const {
    // At least 64 candidates per thread: fewer do not repay a thread's start.
    const unsigned threads = worker_thread_count(req_.threads, cands_.size() / 64 + 1);
    std::vector<ThreadFindings> found(threads);
    run_workers(threads, [&](unsigned t) { search(t, threads, found[t]); });
    return found;
  }

  [[nodiscard]] bool better(const Kept& a, const Kept& b) const { return value(a.result) < value(b.result); }

 private:
  [[nodiscard]] double value(const TrainingResult& r) const { return objective_value(r, req_.objective); }

  void search(unsigned t, unsigned threads, ThreadFindings& f) const {
    TrainingEvaluator ev(model_, hw_, cluster_);
    for (size_t i = t; i < cands_.size(); i += threads) {
      TrainingResult r;
      try {
        r = ev.evaluate(cands_[i]);
      } catch (const BadInput& e) {
        if (f.first_error.empty()) f.first_error = e.what();
        ++f.rejected;
        continue;
      }
      if (!r.feasible) {
        ++f.did_not_fit;
        if (!f.smallest || r.memory.total() < f.smallest->memory.total()) f.smallest = std::move(r);
        continue;
      }
      ++f.feasible;
      if (f.top.size() < keep_ || value(r) < value(f.top.back().result)) {
        r.trace.clear();  // keep the search light; the winner is re-evaluated with its trace
        f.top.push_back({i, std::move(r)});
        std::sort(f.top.begin(), f.top.end(), [this](const Kept& a, const Kept& b) { return better(a, b); });
        if (f.top.size() > keep_) f.top.pop_back();
      }
    }
  }

  const ModelSpec& model_;
  const HardwareSpec& hw_;
  const Cluster& cluster_;
  const OptimizerRequest& req_;
  const std::vector<TrainingRequest>& cands_;
  const size_t keep_;
};

// No split of N GPUs exists at all: say which constraint leaves none.
[[noreturn]] void throw_no_layout(const ModelSpec& model, const Cluster& cluster, const OptimizerRequest& req, int N,
                                  int S, int fewest_replicas) {
  const int max_tp = std::min(req.max_tp.value_or(cluster.gpus_per_node()), cluster.gpus_per_node());
  const int max_pp = req.max_pp.value_or(model.tf.layers);
  if (fewest_replicas == std::numeric_limits<int>::max())
    throw BadInput(fmt::format("no TP x PP x CP split of {} GPUs suits {} at sequence {}: TP must divide its {} heads "
                               "and be <= {}, PP <= {}, CP divide the sequence; use a GPU count with such factors",
                               N, model.id, S, model.tf.heads, max_tp, max_pp));
  throw BadInput(fmt::format("no layout of {} on {} GPUs splits global batch {}: each data-parallel replica "
                             "(GPUs / (TP x PP x CP x EP)) takes whole sequences, and the fewest replicas any split "
                             "has here is {} (TP <= {}, PP <= {}): use a --global-batch-size that is a multiple of "
                             "{}, or fewer --gpus",
                             model.id, N, req.global_batch, fewest_replicas, max_tp, max_pp, fewest_replicas));
}

[[noreturn]] void throw_nothing_fits(const ModelSpec& model, const HardwareSpec& hw, const OptimizerRequest& req,
                                     int N, int S, long searched, const std::optional<TrainingResult>& least,
                                     const std::string& err) {
  if (least)
    throw DoesNotFit(fmt::format("no parallel layout of {} fits {} GPUs of {} at global batch {} x {} tokens "
                                 "({} layouts searched); the smallest needs {:.1f} GB per GPU ({}), the GPU has "
                                 "{:.1f} GB: use more GPUs, a smaller global batch or sequence, or a device "
                                 "with more memory", model.id, N, hw.id, req.global_batch, S, searched,
                                 in_gb(least->memory.total()), describe(*least), in_gb(hw.memory_usable)),
                     least->memory.total().si(), hw.memory_usable.si());
  throw BadInput(fmt::format("no valid parallel layout of {} on {} GPUs at global batch {} ({} searched){}{}",
                             model.id, N, req.global_batch, searched, err.empty() ? "" : "; e.g. ", err));
}

void explain_winner(const HardwareSpec& hw, const Cluster& cluster, OptimizerResult& out) {
  const TrainingResult& w = out.top.front();
  auto& ex = out.explanation;
  ex.push_back(fmt::format("searched {} layouts in {:.3f} s: {} fit, {} exceed {:.0f} GB per GPU, {} impossible",
                           out.searched, out.search_time.si(), out.feasible, out.did_not_fit,
                           in_gb(hw.memory_usable), out.rejected));
  ex.push_back(fmt::format("winner: {} -> step {:.3f} s, MFU {:.1f}%, scaling efficiency {:.1f}%, {:.1f} of {:.1f} GB",
                           describe(w), w.step_time.si(), 100 * w.mfu, 100 * w.scaling_efficiency,
                           in_gb(w.memory.total()), in_gb(hw.memory_usable)));
  if (w.layout.tp > 1)
    ex.push_back(fmt::format("TP={} stays inside one {}-GPU node on {}: its per-layer collectives cost {:.1f}% of "
                             "the step", w.layout.tp, cluster.gpus_per_node(), cluster.scale_up.id,
                             100 * w.tp_comm_time / w.step_time));
  ex.push_back(w.layout.pp == 1 ? std::string("PP=1: no pipeline bubble")
                                : fmt::format("PP={} with {} micro-batches: bubble {:.1f}% of the step",
                                              w.layout.pp, w.micro_batches, 100 * w.bubble_fraction));
  ex.push_back(fmt::format("DP={}: gradient sync {:.1f} ms, {:.1f} ms exposed after overlap with backward",
                           w.layout.dp, in_ms(w.dp_comm_time), in_ms(w.dp_exposed_time)));
  for (size_t i = 1; i < out.top.size() && i < 3; ++i) {
    const auto& r = out.top[i];
    ex.push_back(fmt::format("runner-up #{}: {} is {:+.1f}% slower (comm {:.1f}%, bubble {:.1f}%)", i + 1,
                             describe(r), 100 * (r.step_time / w.step_time - 1), 100 * r.communication_fraction,
                             100 * r.bubble_fraction));
  }
}

}  // namespace

OptimizerResult optimize_parallelism(const ModelSpec& model, const HardwareSpec& hw,
                                     const Cluster& cluster, const OptimizerRequest& req) {
  const auto t0 = std::chrono::steady_clock::now();
  const int N = req.gpus > 0 ? req.gpus : cluster.total_gpus();
  check_request(model, cluster, req, N);
  const int S = req.seq_len.value_or(model.tf.default_seq > 0 ? model.tf.default_seq : 2048);
  int fewest_replicas = std::numeric_limits<int>::max();
  const std::vector<TrainingRequest> cands = enumerate_layouts(model, cluster, req, N, S, fewest_replicas);
  if (cands.empty()) throw_no_layout(model, cluster, req, N, S, fewest_replicas);
  const LayoutSearch search(model, hw, cluster, req, cands);
  std::vector<ThreadFindings> found = search.run();

  OptimizerResult out;
  out.searched = static_cast<long>(cands.size());
  std::vector<Kept> all;
  std::optional<TrainingResult> least;
  std::string err;
  for (ThreadFindings& f : found) {
    out.rejected += f.rejected;
    out.did_not_fit += f.did_not_fit;
    out.feasible += f.feasible;
    for (auto& k : f.top) all.push_back(std::move(k));
    if (f.smallest && (!least || f.smallest->memory.total() < least->memory.total())) least = f.smallest;
    if (err.empty()) err = f.first_error;
  }
  std::sort(all.begin(), all.end(), [&](const Kept& a, const Kept& b) { return search.better(a, b); });
  if (all.empty()) throw_nothing_fits(model, hw, req, N, S, out.searched, least, err);
  all.resize(std::min(all.size(), static_cast<size_t>(std::max(1, req.top))));
  // Re-evaluate the winner from its own request, now with its full trace.
  all.front().result = TrainingEvaluator(model, hw, cluster).evaluate(cands[all.front().candidate]);
  for (auto& k : all) out.top.push_back(std::move(k.result));
  out.search_time = Seconds(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  explain_winner(hw, cluster, out);
  return out;
}

}  // namespace mlsysim
