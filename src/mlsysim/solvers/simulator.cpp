#include "mlsysim/solvers/simulator.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <unordered_map>

#include "mlsysim/errors.hpp"
#include "mlsysim/physics/memory.hpp"
#include "mlsysim/physics/power.hpp"
#include "mlsysim/physics/sharding.hpp"
#include "mlsysim/physics/serving.hpp"
#include "mlsysim/solvers/engine.hpp"
#include "mlsysim/solvers/serving.hpp"
#include "mlsysim/solvers/worker_threads.hpp"
#include "mlsysim/units/format.hpp"

namespace mlsysim {

// ---- trace files ----------------------------------------------------------------------------------

namespace {

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r");
  const auto e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

}  // namespace

std::vector<TraceRequest> parse_trace_csv(const std::string& text, const std::string& name) {
  std::vector<TraceRequest> rows;
  size_t pos = 0;
  long row = 0;
  bool header_seen = false;
  double last_arrival = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    const std::string line = trim(text.substr(pos, nl - pos));
    pos = nl + 1;
    ++row;
    if (line.empty()) {
      if (pos > text.size()) break;
      continue;
    }
    if (!header_seen) {
      std::string h;
      for (char c : line) if (c != ' ' && c != '\t') h += c;
      if (h != "arrival_s,prompt_tokens,output_tokens")
        throw BadInput(fmt::format("{} row {}: the header must be 'arrival_s,prompt_tokens,"
                                   "output_tokens', got '{}'", name, row, line));
      header_seen = true;
      continue;
    }
    std::vector<std::string> f;
    size_t start = 0;
    while (true) {
      const size_t c = line.find(',', start);
      f.push_back(trim(line.substr(start, c == std::string::npos ? std::string::npos : c - start)));
      if (c == std::string::npos) break;
      start = c + 1;
    }
    if (f.size() != 3)
      throw BadInput(fmt::format("{} row {}: expected 3 fields (arrival_s,prompt_tokens,"
                                 "output_tokens), got {}: '{}'", name, row, f.size(), line));
    char* end = nullptr;
    const double a = std::strtod(f[0].c_str(), &end);
    if (f[0].empty() || *end != 0 || !std::isfinite(a) || a < 0)
      throw BadInput(fmt::format("{} row {}: field arrival_s '{}' must be a finite number of "
                                 "seconds >= 0", name, row, f[0]));
    if (a < last_arrival)
      throw BadInput(fmt::format("{} row {}: field arrival_s {} is earlier than the previous row's "
                                 "{}: sort the trace by arrival time", name, row, f[0], last_arrival));
    auto integer = [&](const std::string& v, const char* field) {
      char* e = nullptr;
      const long x = std::strtol(v.c_str(), &e, 10);
      if (v.empty() || *e != 0 || x < 1 || x > (1 << 24))
        throw BadInput(fmt::format("{} row {}: field {} '{}' must be an integer in [1, 16777216]",
                                   name, row, field, v));
      return static_cast<int>(x);
    };
    rows.push_back({Seconds(a), integer(f[1], "prompt_tokens"), integer(f[2], "output_tokens")});
    last_arrival = a;
  }
  if (!header_seen)
    throw BadInput(name + " is empty: expected the header 'arrival_s,prompt_tokens,output_tokens' "
                   "and one row per request");
  if (rows.empty()) throw BadInput(name + " has a header but no requests");
  return rows;
}

// ---- the simulator ---------------------------------------------------------------------------------

namespace {

constexpr int kTokenBucket = 32;    // prefill tokens rounded up to a multiple of this
constexpr int kContextBucket = 64;  // contexts rounded up to a multiple of this

struct Req {
  double arrival = 0;
  int prompt = 0, output = 0;
  int generated = 0;       // output tokens produced so far
  int prefill_target = 0;  // tokens to (re)compute before the next token (prompt + generated)
  int computed = 0;        // of prefill_target, done (chunked prefill)
  long pages = 0;
  double first_token = -1, last_token = 0, finish = -1;
  bool prefilled = false;
};

// One engine step: its time (TP communication included) and one GPU's energy over it, at the
// engine profile's average power (the convention of `serve`).
struct StepCost {
  double time = 0, energy = 0;
};
StepCost step_cost(const StepTime& st) {
  return {st.latency.si(), (st.profile.average_power() * st.latency).si()};
}

// Engine step times through a cache (the engine is never called twice for the same bucket).
class StepCache {
 public:
  StepCache(const ServingDeployment& d, int max_seq) : d_(d), max_seq_(max_seq) {
    const StepTime st = time_step(d_, Phase::Decode, 1, 1, 0);
    const BoardPowerLevels power = board_power_levels(*d.hw);
    weights_.time = weight_read_time(d_, st.profile).si();
    weights_.energy = weights_.time * power.memory_bound.si();
    tdp_ = d.hw->tdp.si();
    idle_watts_ = power.idle.si();
  }
  [[nodiscard]] double idle_watts() const { return idle_watts_; }
  [[nodiscard]] double step_host() const { return d_.step_host.si(); }
  StepCost decode(int n, double avg_ctx) {
    const int c = bucket(static_cast<int>(std::ceil(avg_ctx)), kContextBucket, max_seq_ - 1);
    return get(1, n, 1, c, [&] { return step_cost(time_step(d_, Phase::Decode, n, 1, c)); });
  }
  StepCost prefill(int k, double tokens, double ctx) {
    const int t = bucket(static_cast<int>(std::ceil(tokens)), kTokenBucket, max_seq_);
    const int c = std::min(bucket(static_cast<int>(ctx), kContextBucket, max_seq_), max_seq_ - t);
    return get(2, k, t, c, [&] { return step_cost(time_step(d_, Phase::Prefill, k, t, c)); });
  }
  // A fused iteration (chunked prefill + decodes) reads the weights once (Agrawal et al. 2024,
  // Sarathi-Serve sec. 3): sum of the parts minus one weight read, never below the larger part.
  // Its energy likewise: both parts' less one weight read at a memory-bound body's power, never
  // below the larger part's, nor above the power limit over its time.
  StepCost mixed(const StepCost& pre, const StepCost& dec) const {
    StepCost m;
    m.time = std::max({pre.time + dec.time - weights_.time, pre.time, dec.time});
    m.energy = std::min(std::max({pre.energy + dec.energy - weights_.energy, pre.energy, dec.energy}),
                        tdp_ * m.time);
    return m;
  }
  [[nodiscard]] long size() const { return static_cast<long>(cache_.size()); }

 private:
  static int bucket(int x, int b, int cap) {
    if (x <= 0) return 0;
    return std::clamp((x + b - 1) / b * b, 1, std::max(1, cap));
  }
  template <class F>
  StepCost get(int kind, int a, int b, int c, F&& f) {
    const std::uint64_t key = (static_cast<std::uint64_t>(kind) << 60) |
                              (static_cast<std::uint64_t>(a) << 40) |
                              (static_cast<std::uint64_t>(b) << 20) | static_cast<std::uint64_t>(c);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
    const StepCost v = f();
    cache_.emplace(key, v);
    return v;
  }
  const ServingDeployment& d_;
  int max_seq_;
  StepCost weights_;  // one read of a GPU's weights
  double tdp_ = 0, idle_watts_ = 0;
  std::unordered_map<std::uint64_t, StepCost> cache_;
};

void validate(const ModelSpec& model, const SimulationRequest& r) {
  if (model.kind != ModelKind::Decoder)
    throw BadInput("--model " + model.id + " is not a decoder-only LLM: the serving simulator needs one");
  check_textbook_efficiency(r.efficiency);
  if (r.trace.empty()) {
    if (!(r.rate > 0) || !std::isfinite(r.rate))
      throw BadInput(fmt::format("--rate must be > 0 requests/s (Poisson arrivals), got {}: or pass "
                                 "--trace FILE", r.rate));
    if (r.requests < 1 || r.requests > 10'000'000)
      throw BadInput(fmt::format("--requests must be in [1, 10000000], got {}", r.requests));
    if (r.prompt_len < 1) throw BadInput(fmt::format("--prompt-len must be >= 1 token, got {}", r.prompt_len));
    if (r.output_len < 1) throw BadInput(fmt::format("--output-len must be >= 1 token, got {}", r.output_len));
    // A cap must leave room for its mean: an exponential clipped at c has a mean below c.
    for (const auto& [flag, cap, mean_flag, mean] :
         {std::tuple{"--max-prompt-len", r.max_prompt_len, "--prompt-len", r.prompt_len},
          std::tuple{"--max-output-len", r.max_output_len, "--output-len", r.output_len}}) {
      if (cap < 0) throw BadInput(fmt::format("{} must be >= 1 token (or omitted: no cap), got {}", flag, cap));
      const bool room = r.length_dist == LengthDist::Fixed ? mean <= cap : mean < cap;
      if (cap > 0 && !room)
        throw BadInput(fmt::format("{} {} leaves no room for {} {}: the mean of lengths capped at {} is below "
                                   "it{}; raise the cap or lower the mean",
                                   flag, cap, mean_flag, mean, cap,
                                   r.length_dist == LengthDist::Fixed ? " or equal to it" : ""));
    }
    // The last generated token is never fed back: a request occupies prompt + output - 1 positions
    // (the same rule as serve).
    if (model.tf.max_seq > 0 && static_cast<long>(r.prompt_len) + r.output_len - 1 > model.tf.max_seq)
      throw BadInput(fmt::format("--prompt-len {} + --output-len {} - 1 exceeds {}'s max_seq {}",
                                 r.prompt_len, r.output_len, model.id, model.tf.max_seq));
  }
  if (r.page_size < 1 || r.page_size > 4096)
    throw BadInput(fmt::format("--page-size must be in [1, 4096] tokens, got {} (vLLM: 16)", r.page_size));
  if (r.max_batch < 1 || r.max_batch > 65536)
    throw BadInput(fmt::format("--max-batch must be in [1, 65536], got {}", r.max_batch));
  if (r.max_batched_tokens < 0 || r.max_batched_tokens > 1 << 20)
    throw BadInput(fmt::format("--max-batched-tokens must be in [1, 1048576] (or omitted), got {}",
                               r.max_batched_tokens));
  for (const auto& [flag, slo] : {std::pair{"--ttft-slo-ms", r.ttft_slo}, std::pair{"--itl-slo-ms", r.itl_slo}})
    if (!(slo.si() > 0 && std::isfinite(slo.si())))
      throw BadInput(fmt::format("{} must be a finite time > 0 ms, got {}", flag, slo.si() * 1e3));
  if (!(r.memory_utilization > 0 && r.memory_utilization <= 1))
    throw BadInput(fmt::format("--memory-utilization must be in (0, 1], got {}", r.memory_utilization));
}

// `scale`: the exponential's mean before clipping (the asked mean, or more under a length cap).
int draw_length(std::mt19937_64& g, double scale, LengthDist dist, int cap) {
  if (dist == LengthDist::Fixed) return std::clamp(static_cast<int>(std::lround(scale)), 1, cap);
  const double x = exponential_from_uniform(uniform_from_bits(g()), scale);
  return std::clamp(static_cast<int>(std::lround(x)), 1, cap);
}

Percentiles stats(std::vector<double>& v) {
  Percentiles p;
  if (v.empty()) return p;
  double sum = 0;
  for (double x : v) sum += x;
  p.mean = sum / static_cast<double>(v.size());
  p.p50 = percentile(v, 50);
  p.p90 = percentile(v, 90);
  p.p99 = percentile(v, 99);
  return p;
}

}  // namespace

namespace {

// The requests: the trace's, or Poisson arrivals with lengths drawn around the means.
std::vector<Req> make_workload(const SimulationRequest& r, int max_seq) {
  std::vector<Req> reqs;
  if (!r.trace.empty()) {
    reqs.reserve(r.trace.size());
    for (const auto& t : r.trace) reqs.push_back({t.arrival.si(), t.prompt_tokens, t.output_tokens});
    return reqs;
  }
  std::mt19937_64 gen(r.seed);
  reqs.reserve(r.requests);
  const bool exponential = r.length_dist == LengthDist::Exponential;
  const double prompt_scale = exponential ? exponential_scale_for_capped_mean(r.prompt_len, r.max_prompt_len)
                                          : r.prompt_len;
  const double output_scale = exponential ? exponential_scale_for_capped_mean(r.output_len, r.max_output_len)
                                          : r.output_len;
  const int prompt_cap = r.max_prompt_len > 0 ? std::min(r.max_prompt_len, max_seq - 1) : max_seq - 1;
  double t = 0;
  for (int i = 0; i < r.requests; ++i) {
    t += exponential_from_uniform(uniform_from_bits(gen()), 1.0 / r.rate);  // Poisson process
    const int p = draw_length(gen, prompt_scale, r.length_dist, prompt_cap);
    const int output_cap = r.max_output_len > 0 ? std::min(r.max_output_len, max_seq - p) : max_seq - p;
    const int o = draw_length(gen, output_scale, r.length_dist, output_cap);
    reqs.push_back({t, p, o});
  }
  return reqs;
}

// Tensor parallelism as `serve` picks it for one mean request, unless the request names it.
int deployment_tp(const ModelSpec& model, const HardwareSpec& hw, const SimulationRequest& r,
                  double mean_p, double mean_o, int max_seq) {
  if (r.tp != 0) return r.tp;
  ServingRequest s;
  s.seq_len = std::clamp(static_cast<int>(mean_p), 1, max_seq - 1);
  s.output_len = std::clamp(static_cast<int>(mean_o), 1, max_seq - s.seq_len);
  s.precision = r.precision;
  s.kv_precision = r.kv_precision;
  s.quantize_head = r.quantize_head;
  s.memory_utilization = r.memory_utilization;
  s.efficiency = r.efficiency;
  s.runtime = r.runtime;
  s.fleet = r.fleet;
  return serve(model, hw, s).tp;
}

// The paged KV pool as vLLM sizes it at start-up; throws DoesNotFit when nothing is left for it.
struct KvPool {
  long pages = 0;
  Bytes per_token{};
};
KvPool kv_pool(const ModelSpec& model, const HardwareSpec& hw, const ServingDeployment& d, int tp,
               const SimulationRequest& r) {
  const ProfilingRun prof = profiling_run(d, r.max_batch, r.max_batched_tokens);
  const ServingReserve& reserve = prof.reserve;
  KvPool pool;
  pool.per_token = kv_cache_bytes_per_token(d.shard, prof.forward.kv_precision);
  const Bytes weights = prof.forward.memory.weights;
  const Bytes usable = usable_budget(hw, r.memory_utilization);
  const Bytes budget = kv_pool_bytes(hw, r.memory_utilization, weights, reserve);
  pool.pages = budget.si() > 0
      ? static_cast<long>(std::floor(budget / (pool.per_token * static_cast<double>(r.page_size)))) : 0;
  if (pool.pages < 1)
    throw DoesNotFit(fmt::format("{} on {} x{}: weights {} + runtime reserve {} (profile peak and "
                                 "buffers) leave no KV-cache memory in {} usable: {}; or "
                                 "--precision int8/int4 or a larger device{}",
                                 model.id, hw.id, tp, format_bytes(weights), format_bytes(reserve.total()),
                                 format_bytes(usable), more_tensor_parallel_remedy(model, tp, kMaxTensorParallel),
                                 reserve_remedy(reserve, Bytes(-budget.si()))),
                     (weights + reserve.total()).si(), usable.si());
  return pool;
}

// vLLM's scheduler loop over the requests: FCFS admission into the paged KV pool, one engine-timed
// step per iteration, recompute-mode preemption of the newest requests when pages run out.
class Scheduler {
 public:
  Scheduler(std::vector<Req>& reqs, const SimulationRequest& r, long total_pages, int max_seq,
            StepCache& steps, SimulationResult& out)
      : reqs_(reqs), r_(r), total_pages_(total_pages), free_pages_(total_pages), max_seq_(max_seq),
        steps_(steps), out_(out), n_total_(static_cast<long>(reqs.size())),
        idle_watts_(steps.idle_watts()), step_host_(steps.step_host()) {
    ttfts_.reserve(reqs.size());
    e2es_.reserve(reqs.size());
    tpots_.reserve(reqs.size());
  }

  void run() {
    while (finished_ + out_.rejected < n_total_) {
      admit_arrivals();
      if (running_.empty() && waiting_.empty()) {
        if (next_arrival_ >= reqs_.size()) break;
        idle_until(reqs_[next_arrival_].arrival);
        continue;
      }
      const Iteration it = r_.chunked_prefill ? chunked_iteration() : prefill_or_decode_iteration();
      if (it == Iteration::Done) break;
      if (it == Iteration::Idle) continue;
      retire_finished();
      if (r_.progress && (out_.iterations & 4095) == 0)
        r_.progress(static_cast<double>(finished_ + out_.rejected) / n_total_);
    }
    if (r_.progress) r_.progress(1.0);
    summarize();
  }

 private:
  enum class Iteration { Stepped, Idle, Done };

  // Time passes: a step (its energy per GPU) after the engine's host work for it, which the GPU
  // waits through at its idle floor; or waiting for arrivals at the idle floor.
  void advance(const StepCost& c) {
    now_ += c.time + step_host_;
    energy_per_gpu_ += c.energy + step_host_ * idle_watts_;
  }
  void idle_until(double t) {
    if (t <= now_) return;
    energy_per_gpu_ += (t - now_) * idle_watts_;
    now_ = t;
  }

  // Arrivals up to now join the queue; a request that can never fit is rejected.
  void admit_arrivals() {
    while (next_arrival_ < reqs_.size() && reqs_[next_arrival_].arrival <= now_) {
      Req& q = reqs_[next_arrival_];
      ++out_.arrived;
      if (static_cast<long>(q.prompt) + q.output > max_seq_ ||
          pages_for(q.prompt + q.output, r_.page_size) > total_pages_) {
        ++out_.rejected;  // can never fit: vLLM rejects prompts longer than the KV pool
      } else {
        q.prefill_target = q.prompt;
        waiting_.push_back(static_cast<int>(next_arrival_));
      }
      ++next_arrival_;
    }
  }

  void emit_token(Req& q) {
    ++q.generated;
    ++generated_tokens_;
    if (q.first_token < 0) {
      q.first_token = now_;
      ++started_;
    }
    else add_gap(now_ - q.last_token);
    q.last_token = now_;
  }
  // Every request that decoded in the previous iteration too sees the same gap (the same two
  // times subtracted), so runs of equal gaps go into the histogram as one weighted entry: the
  // histogram's logarithm is then paid about once per iteration instead of once per token.
  void add_gap(double gap) {
    if (gap == pending_gap_) {
      ++pending_count_;
      return;
    }
    flush_gaps();
    pending_gap_ = gap;
    pending_count_ = 1;
  }
  void flush_gaps() {
    if (pending_count_ > 0) itl_hist_.add(pending_gap_, static_cast<double>(pending_count_));
    pending_count_ = 0;
  }
  void release(Req& q) { free_pages_ += q.pages; q.pages = 0; }
  void preempt(int idx) {  // recompute-mode preemption (vLLM default)
    Req& q = reqs_[idx];
    release(q);
    q.prefilled = false;
    q.computed = 0;
    q.prefill_target = q.prompt + q.generated;
    waiting_.push_front(idx);
    ++out_.preemptions;
  }
  // Gives request `idx` (running) a page for one more token, preempting the newest requests.
  bool grow(int idx) {
    Req& q = reqs_[idx];
    const long tokens = static_cast<long>(q.prompt) + q.generated + 1;
    // Most steps the token lands in a page the request holds: a multiply, not pages_for's division
    // (this runs for every running request at every step).
    if (tokens <= q.pages * r_.page_size) return true;
    const long need = pages_for(tokens, r_.page_size);
    while (q.pages < need) {
      if (free_pages_ > 0) { --free_pages_; ++q.pages; continue; }
      if (running_.empty() || running_.back() == idx) return false;
      const int victim = running_.back();
      running_.pop_back();
      preempt(victim);
    }
    return true;
  }
  // Takes pages for the head of the queue's prefill; false when the pool cannot hold it.
  bool reserve_pages_for_head() {
    Req& q = reqs_[waiting_.front()];
    const long need = pages_for(q.prefill_target, r_.page_size);
    if (need > free_pages_) return false;
    free_pages_ -= need;
    q.pages = need;
    return true;
  }
  double mean_context(const std::vector<int>& idxs) const {
    long ctx = 0;  // exact as an integer, as the double sum of these integers was
    for (int idx : idxs) ctx += reqs_[idx].prompt + reqs_[idx].generated;
    return static_cast<double>(ctx) / static_cast<double>(idxs.size());
  }

  // vLLM (V0) default: an iteration either prefills newly admitted prompts or decodes.
  Iteration prefill_or_decode_iteration() {
    long batched = 0;
    std::vector<int> admitted;
    while (!waiting_.empty() && static_cast<int>(running_.size() + admitted.size()) < r_.max_batch) {
      const int target = reqs_[waiting_.front()].prefill_target;
      if (!admitted.empty() && batched + target > r_.max_batched_tokens) break;
      if (!reserve_pages_for_head()) break;
      batched += target;
      admitted.push_back(waiting_.front());
      waiting_.pop_front();
    }
    if (!admitted.empty()) {
      const double mean_prompt = static_cast<double>(batched) / admitted.size();
      advance(steps_.prefill(static_cast<int>(admitted.size()), mean_prompt, 0));
      for (int idx : admitted) {
        Req& q = reqs_[idx];
        q.prefilled = true;
        q.computed = q.prefill_target;
        emit_token(q);
        running_.push_back(idx);
      }
      return Iteration::Stepped;
    }
    // Decode every running request; page growth may preempt the newest ones.
    for (size_t i = 0; i < running_.size(); ++i)
      if (!grow(running_[i])) { preempt(running_[i]); running_.erase(running_.begin() + i); --i; }
    if (running_.empty()) return Iteration::Idle;
    advance(steps_.decode(static_cast<int>(running_.size()), mean_context(running_)));
    for (int idx : running_) emit_token(reqs_[idx]);
    return Iteration::Stepped;
  }

  // Chunked prefill (Sarathi-Serve; vLLM --enable-chunked-prefill): decodes first, then prefill
  // chunks fill the token budget.
  Iteration chunked_iteration() {
    long budget_tokens = r_.max_batched_tokens;
    // One pass: every prefilled request gets its next token's page (growth preempts from the back,
    // past this position, so no request already picked, decoding or mid-prefill, is preempted), and
    // the first ones within the token budget decode; the requests still prefilling are noted in
    // order for the chunks below. Buffers are reused across iterations (no allocation per step).
    std::vector<int>& decoding = decoding_;
    std::vector<int>& prefilling = prefilling_;
    decoding.clear();
    prefilling.clear();
    long decode_ctx = 0;  // summed as an integer: exact, and kept in a register across the loop
    for (size_t i = 0; i < running_.size(); ++i) {
      const int idx = running_[i];
      const Req& q = reqs_[idx];
      if (!q.prefilled) {
        prefilling.push_back(idx);
        continue;
      }
      if (!grow(idx)) {
        preempt(idx);
        running_.erase(running_.begin() + static_cast<std::ptrdiff_t>(i));
        --i;
        continue;
      }
      if (budget_tokens <= 0) continue;
      decoding.push_back(idx);
      decode_ctx += q.prompt + q.generated;
      --budget_tokens;
    }
    double pre_tokens = 0, pre_ctx = 0;
    std::vector<std::pair<int, int>>& chunks = chunks_;
    chunks.clear();
    for (int idx : prefilling) {
      if (budget_tokens <= 0) break;
      Req& q = reqs_[idx];
      const int c = static_cast<int>(std::min<long>(q.prefill_target - q.computed, budget_tokens));
      chunks.push_back({idx, c});
      pre_ctx += static_cast<double>(q.computed) * c;
      pre_tokens += c;
      budget_tokens -= c;
    }
    while (budget_tokens > 0 && !waiting_.empty() && static_cast<int>(running_.size()) < r_.max_batch) {
      if (!reserve_pages_for_head()) break;
      const int idx = waiting_.front();
      waiting_.pop_front();
      running_.push_back(idx);
      const int c = static_cast<int>(std::min<long>(reqs_[idx].prefill_target, budget_tokens));
      chunks.push_back({idx, c});
      pre_tokens += c;
      budget_tokens -= c;
    }
    if (decoding.empty() && chunks.empty())
      return next_arrival_ >= reqs_.size() && running_.empty() ? Iteration::Done : Iteration::Idle;
    const StepCost dec = decoding.empty() ? StepCost{}
                                          : steps_.decode(static_cast<int>(decoding.size()),
                                                          static_cast<double>(decode_ctx) /
                                                              static_cast<double>(decoding.size()));
    const StepCost pre = chunks.empty() ? StepCost{} : steps_.prefill(1, pre_tokens, pre_ctx / pre_tokens);
    advance(decoding.empty() ? pre : chunks.empty() ? dec : steps_.mixed(pre, dec));
    for (int idx : decoding) emit_token(reqs_[idx]);
    for (auto [idx, c] : chunks) {
      Req& q = reqs_[idx];
      q.computed += c;
      if (q.computed >= q.prefill_target) { q.prefilled = true; emit_token(q); }
    }
    return Iteration::Stepped;
  }

  // Completions: requests that produced their last token leave and free their pages.
  void retire_finished() {
    ++out_.iterations;
    batch_sum_ += static_cast<double>(running_.size());
    std::vector<int>& still_running = still_running_;
    still_running.clear();
    for (int idx : running_) {
      Req& q = reqs_[idx];
      if (q.generated < q.output) { still_running.push_back(idx); continue; }
      q.finish = now_;
      release(q);
      ++finished_;
      last_finish_ = now_;
      const double ttft = q.first_token - q.arrival;
      ttfts_.push_back(ttft);
      e2es_.push_back(q.finish - q.arrival);
      const double tpot = q.output > 1 ? (q.finish - q.first_token) / (q.output - 1) : 0;
      if (q.output > 1) tpots_.push_back(tpot);
      if (ttft <= r_.ttft_slo.si() && tpot <= r_.itl_slo.si()) ++good_;
    }
    running_.swap(still_running);
    mark_steady_state();
  }

  // The steady state as ML.ENERGY's benchmark cuts it (ml-energy/benchmark, llm/benchmark.py): from
  // the iteration in which max_batch requests have their first token to the one in which all but
  // max_batch + 1 of the N requests have finished, so that neither ramp is in it.
  struct Mark {
    double time = -1, energy = 0, batch_sum = 0;
    long tokens = 0, iterations = 0;
  };
  void mark_steady_state() {
    const Mark now{now_, energy_per_gpu_, batch_sum_, generated_tokens_, out_.iterations};
    if (steady_start_.time < 0 && started_ >= r_.max_batch) steady_start_ = now;
    if (steady_end_.time < 0 && steady_start_.time >= 0 && finished_ >= n_total_ - r_.max_batch - 1)
      steady_end_ = now;
  }
  // Tokens/s, W per GPU, the replica's J per token and the mean batch between two marks: the
  // steady state's, and (from the start to the last completion) the whole run's.
  SteadyState figures_between(const Mark& from, const Mark& to) const {
    SteadyState w;
    w.start = Seconds(from.time);
    w.end = Seconds(to.time);
    const double span = std::max(to.time - from.time, 1e-12);
    const double tokens = static_cast<double>(to.tokens - from.tokens);
    const double joules = to.energy - from.energy;
    w.tokens_per_s = tokens / span;
    w.average_power_per_gpu = Watts(joules / span);
    w.energy_per_token = Joules(tokens > 0 ? joules * out_.tp / tokens : 0);
    const long its = to.iterations - from.iterations;
    w.mean_batch = its > 0 ? (to.batch_sum - from.batch_sum) / static_cast<double>(its) : 0;
    return w;
  }

  void summarize() {
    if (steady_start_.time >= 0 && steady_end_.time > steady_start_.time)
      out_.steady_state = figures_between(steady_start_, steady_end_);
    const SteadyState run = figures_between(Mark{0, 0, 0, 0, 0},
                                            Mark{last_finish_, energy_per_gpu_, batch_sum_, generated_tokens_,
                                                 out_.iterations});
    out_.completed = finished_;
    out_.in_flight = out_.arrived - out_.completed - out_.rejected;
    out_.duration = Seconds(last_finish_);
    out_.ttft = stats(ttfts_);
    out_.e2e = stats(e2es_);
    out_.tpot = stats(tpots_);
    flush_gaps();
    out_.itl = {itl_hist_.percentile(50), itl_hist_.percentile(90), itl_hist_.percentile(99),
                itl_hist_.mean()};
    const double dur = std::max(last_finish_, 1e-12);
    out_.throughput_rps = finished_ / dur;
    out_.goodput_rps = good_ / dur;
    out_.slo_attainment = finished_ > 0 ? static_cast<double>(good_) / finished_ : 0;
    out_.tokens_per_s = run.tokens_per_s;
    out_.mean_batch = run.mean_batch;
    out_.energy = Joules(energy_per_gpu_ * out_.tp);
    out_.average_power_per_gpu = run.average_power_per_gpu;
    out_.energy_per_token = run.energy_per_token;
  }

  std::vector<Req>& reqs_;
  const SimulationRequest& r_;
  const long total_pages_;
  long free_pages_;
  const int max_seq_;
  StepCache& steps_;
  SimulationResult& out_;
  const long n_total_;
  std::deque<int> waiting_;
  std::vector<int> running_;
  std::vector<int> decoding_, prefilling_, still_running_;  // per-iteration buffers, kept for their capacity
  std::vector<std::pair<int, int>> chunks_;
  size_t next_arrival_ = 0;
  double now_ = 0, batch_sum_ = 0, last_finish_ = 0;
  const double idle_watts_;
  const double step_host_;  // the engine's host work per iteration (ServingDeployment::step_host)
  long started_ = 0;  // requests with their first token
  Mark steady_start_, steady_end_;
  double energy_per_gpu_ = 0;  // joules of one GPU since the start: steps, and idle waits at the floor
  long finished_ = 0, good_ = 0, generated_tokens_ = 0;
  LatencyHistogram itl_hist_;
  double pending_gap_ = -1;  // add_gap's current run of equal gaps
  long pending_count_ = 0;
  std::vector<double> ttfts_, e2es_, tpots_;
};

// No request could ever run: every one is longer than the model's window or than the whole KV pool.
// Statistics over zero completions would be zeros, so say why instead.
[[noreturn]] void throw_all_rejected(const ModelSpec& model, const SimulationRequest& r, const std::vector<Req>& reqs,
                                     const KvPool& pool, int max_seq, int tp) {
  long too_long = 0;
  for (const Req& q : reqs) too_long += static_cast<long>(q.prompt) + q.output > max_seq;
  const long pool_tokens = pool.pages * r.page_size;
  throw BadInput(fmt::format(
      "every request was rejected, so nothing completed: {} of {} need more than {}'s {}-token window "
      "(prompt + output), the rest more than the KV pool's {} tokens on {} GPU(s); shorten the requests{}",
      too_long, reqs.size(), model.id, max_seq, pool_tokens, tp,
      too_long < static_cast<long>(reqs.size()) ? " or give the pool more memory (--tp, --kv-precision fp8)" : ""));
}

void explain_simulation(const ModelSpec& model, const HardwareSpec& hw, const SimulationRequest& r,
                        const KvPool& pool, std::size_t requests, double mean_p, double mean_o,
                        SimulationResult& out) {
  auto& t = out.trace;
  t.push_back(fmt::format("{} on {} x{}: KV pool {} pages of {} tokens ({} per token per GPU); "
                          "scheduler: FCFS, max {} sequences, {} batched tokens, {}, preemption by "
                          "recomputation.",
                          model.id, hw.id, out.tp, pool.pages, r.page_size, format_bytes(pool.per_token),
                          r.max_batch, r.max_batched_tokens,
                          r.chunked_prefill ? "chunked prefill" : "prefill-priority iterations"));
  t.push_back(fmt::format("Workload: {} requests, {} (offered {:.3g} req/s), mean {:.0f} prompt + "
                          "{:.0f} output tokens.",
                          requests, r.trace.empty() ? "Poisson arrivals" : "trace arrivals",
                          out.offered_rate, mean_p, mean_o));
  // Exponential draws are cut at the model's window: near it the realized means fall short of the
  // requested ones, and the workload is not the one asked for unless that is said.
  const bool clipped = r.trace.empty() && r.length_dist == LengthDist::Exponential &&
                       (mean_p < 0.95 * r.prompt_len || mean_o < 0.95 * r.output_len);
  if (clipped)
    t.push_back(fmt::format("The requested means were {} prompt + {} output tokens: exponential lengths are cut "
                            "at {}'s {}-token window, which lowers the realized means (use --length-dist fixed, "
                            "or shorter means, for the asked workload).",
                            r.prompt_len, r.output_len, model.id, model.tf.max_seq));
  t.push_back(fmt::format("{} iterations, each timed by the engine ({} distinct step shapes "
                          "solved); mean batch {:.1f}; {} preemptions.",
                          out.iterations, out.step_cache_entries, out.mean_batch, out.preemptions));
  t.push_back(fmt::format("Requests: arrived {} = completed {} + in flight {} + rejected {}.",
                          out.arrived, out.completed, out.in_flight, out.rejected));
  t.push_back(fmt::format("TTFT p50/p90/p99 {}/{}/{}; ITL p50/p90/p99 {}/{}/{} (every gap between tokens); "
                          "TPOT p50/p99 {}/{} (per request: (finish - first token) / (output - 1), as MLPerf "
                          "Inference); end-to-end p50/p99 {}/{}.",
                          format_time(Seconds(out.ttft.p50)), format_time(Seconds(out.ttft.p90)),
                          format_time(Seconds(out.ttft.p99)), format_time(Seconds(out.itl.p50)),
                          format_time(Seconds(out.itl.p90)), format_time(Seconds(out.itl.p99)),
                          format_time(Seconds(out.tpot.p50)), format_time(Seconds(out.tpot.p99)),
                          format_time(Seconds(out.e2e.p50)), format_time(Seconds(out.e2e.p99))));
  t.push_back(fmt::format("Throughput {:.3g} req/s ({:.4g} tokens/s); goodput {:.3g} req/s = {} "
                          "within TTFT <= {} and time per output token <= {}.",
                          out.throughput_rps, out.tokens_per_s, out.goodput_rps,
                          format_percent(out.slo_attainment), format_time(r.ttft_slo),
                          format_time(r.itl_slo)));
  t.push_back(fmt::format("Energy {} on {} GPU(s): each step at the engine's power (a fused chunked-prefill step "
                          "saves one weight read's), waits for arrivals at the idle floor; {} per busy-or-waiting "
                          "GPU on average, {:.3g} J per generated token.",
                          format_energy(out.energy), out.tp, format_power(out.average_power_per_gpu),
                          out.energy_per_token.si()));
}

// The per-iteration token budget (SimulationRequest::max_batched_tokens). Without chunked prefill a
// prompt is prefilled in one iteration, so the budget must hold the longest prompt: vLLM refuses to
// start with max_num_batched_tokens below max_model_len unless chunked prefill is on.
constexpr int kDefaultBatchedTokens = 8192;

int prefill_budget(const std::vector<Req>& reqs, const SimulationRequest& r) {
  int longest = 0;
  for (const Req& q : reqs) longest = std::max(longest, q.prompt);
  if (r.max_batched_tokens == 0)
    return r.chunked_prefill ? kDefaultBatchedTokens : std::max(kDefaultBatchedTokens, longest);
  if (!r.chunked_prefill && longest > r.max_batched_tokens)
    throw BadInput(fmt::format("--max-batched-tokens {} is below the longest prompt ({} tokens): without "
                               "--chunked-prefill a prompt is prefilled in one iteration (vLLM requires "
                               "max_num_batched_tokens >= max_model_len); use --max-batched-tokens >= {} or "
                               "--chunked-prefill",
                               r.max_batched_tokens, longest, longest));
  return r.max_batched_tokens;
}

}  // namespace

SimulationResult simulate(const ModelSpec& model, const HardwareSpec& hw, const SimulationRequest& request) {
  validate(model, request);
  const int max_seq = model.tf.max_seq > 0 ? model.tf.max_seq : 1 << 20;
  std::vector<Req> reqs = make_workload(request, max_seq);
  SimulationRequest r = request;
  r.max_batched_tokens = prefill_budget(reqs, request);
  double mean_p = 0, mean_o = 0;
  for (const auto& q : reqs) mean_p += q.prompt, mean_o += q.output;
  mean_p /= reqs.size(), mean_o /= reqs.size();

  SimulationResult out;
  out.tp = deployment_tp(model, hw, r, mean_p, mean_o, max_seq);
  const ServingDeployment d = make_deployment(model, hw, out.tp, r.precision, r.kv_precision, r.efficiency,
                                              r.runtime, r.fleet, r.quantize_head, r.overrides);
  out.step_host = d.step_host;
  const KvPool pool = kv_pool(model, hw, d, out.tp, r);
  out.kv_pages = pool.pages;
  StepCache steps(d, max_seq);
  Scheduler(reqs, r, pool.pages, max_seq, steps, out).run();
  if (out.completed == 0 && out.rejected > 0) throw_all_rejected(model, r, reqs, pool, max_seq, out.tp);
  out.offered_rate = r.trace.empty() ? r.rate
                                     : (reqs.back().arrival > 0 ? reqs.size() / reqs.back().arrival : 0);
  out.step_cache_entries = steps.size();
  explain_simulation(model, hw, r, pool, reqs.size(), mean_p, mean_o, out);
  return out;
}

namespace {
// MLPerf Inference's Server rule (LoadGen checks the 99th percentiles of TTFT and TPOT against the
// benchmark's bounds), with every request admitted.
bool meets_slos(const SimulationResult& s, const SimulationRequest& r) {
  return s.rejected == 0 && s.completed > 0 && s.ttft.p99 <= r.ttft_slo.si() && s.tpot.p99 <= r.itl_slo.si();
}

std::string slo_reading(const SimulationResult& s) {
  return fmt::format("p99 TTFT {}, p99 TPOT {}{}", format_time(Seconds(s.ttft.p99)),
                     format_time(Seconds(s.tpot.p99)),
                     s.rejected > 0 ? fmt::format(", {} requests rejected", s.rejected) : std::string());
}

// Simulations of one workload at given arrival rates, each run once. The search asks for rates one
// at a time, in the order a sequential search would; `prefetch` first runs the rates it may ask for
// next on the worker threads, so on several cores the same path costs fewer rounds. The answer, the
// path and its count (`path_runs`) do not depend on the thread count: only the wasted runs do.
class RateProbe {
 public:
  explicit RateProbe(std::function<SimulationResult(double)> simulate_at) : simulate_at_(std::move(simulate_at)) {}

  // A run already made for this workload elsewhere on the search's path (the failed confirmation
  // that starts a longer search): `at` returns it instead of running it again.
  void remember(double rate, SimulationResult result) {
    done_.emplace(rate, std::move(result));
    remembered_ = rate;
  }
  const SimulationResult& at(double rate) {
    // A remembered run was counted (and reported) where it was made.
    const bool remembered = remembered_ == rate;
    if (remembered) remembered_.reset();
    else ++path_runs_;
    auto it = done_.find(rate);
    if (it == done_.end()) it = done_.emplace(rate, simulate_at_(rate)).first;
    if (!remembered && on_path_run_) on_path_run_(rate, it->second);
    return it->second;
  }
  // Called after each run on the path (not the speculative ones), on the searching thread.
  void on_path_run(std::function<void(double, const SimulationResult&)> f) { on_path_run_ = std::move(f); }
  void prefetch(const std::vector<double>& rates) {
    std::vector<double> todo;
    for (double rate : rates)
      if (!done_.count(rate) && std::find(todo.begin(), todo.end(), rate) == todo.end()) todo.push_back(rate);
    if (todo.size() < 2) return;  // nothing to overlap: at() runs it when asked
    std::vector<SimulationResult> results(todo.size());
    std::atomic<size_t> next{0};
    run_workers(static_cast<unsigned>(todo.size()), [&](unsigned) {
      for (size_t k = next++; k < todo.size(); k = next++) results[k] = simulate_at_(todo[k]);
    });
    for (size_t k = 0; k < todo.size(); ++k) done_.emplace(todo[k], std::move(results[k]));
  }
  [[nodiscard]] int path_runs() const { return path_runs_; }

 private:
  std::function<SimulationResult(double)> simulate_at_;
  std::map<double, SimulationResult> done_;
  std::optional<double> remembered_;  // remember()'s rate until the path asks for it
  std::function<void(double, const SimulationResult&)> on_path_run_;
  int path_runs_ = 0;
};

// How many rates a round can run at once: SimulationRequest::search_threads, or the cores (inside
// another pool's worker, the ones it leaves free: worker_threads.hpp), at most 16 (a bisection's
// speculation grows as 2^depth - 1, and deeper guesses are mostly wasted).
unsigned probe_width(const SimulationRequest& r) {
  return std::min(16u, r.search_threads > 0 ? static_cast<unsigned>(r.search_threads) : available_threads());
}

struct Bracket {
  double lo = 0, hi = 0;  // lo meets the SLOs, hi misses them
  SimulationResult at_lo, at_hi;
};

// The bisection's next midpoints, `depth` levels of its decision tree (both outcomes of each).
void bisection_candidates(double lo, double hi, int depth, double tolerance, std::vector<double>& out) {
  if (depth == 0 || hi / lo <= 1 + tolerance) return;
  const double mid = std::sqrt(lo * hi);
  out.push_back(mid);
  bisection_candidates(lo, mid, depth - 1, tolerance, out);
  bisection_candidates(mid, hi, depth - 1, tolerance, out);
}

// From `start`, double (or halve) the rate until the SLOs' pass/fail flips, then bisect
// geometrically to hi / lo <= 1 + tolerance.
Bracket bracket_max_rate(RateProbe& probe, const SimulationRequest& r, double start, double tolerance) {
  constexpr double kLowestRate = 1e-6, kHighestRate = 1e9;
  // The next rates of a doubling or halving run, as it computes them, within the limits: as many as
  // the threads a round may use now (they change when this search runs inside another pool).
  auto steps_from = [&](double x, double factor) {
    std::vector<double> v;
    const unsigned width = probe_width(r);
    for (unsigned i = 0; i < width && x * factor >= kLowestRate && x * factor <= kHighestRate; ++i)
      v.push_back(x *= factor);
    return v;
  };
  Bracket b;
  b.lo = b.hi = start;
  const SimulationResult& first = probe.at(start);
  if (meets_slos(first, r)) {
    b.at_lo = first;
    for (;;) {  // double until a rate misses the SLOs
      probe.prefetch(steps_from(b.lo, 2.0));
      b.hi = b.lo * 2;
      if (b.hi > kHighestRate)
        throw BadInput(fmt::format("the SLOs are met even at {:.3g} requests/s: check --ttft-slo-ms and "
                                   "--itl-slo-ms", b.lo));
      b.at_hi = probe.at(b.hi);
      if (!meets_slos(b.at_hi, r)) break;
      b.lo = b.hi;
      b.at_lo = b.at_hi;
    }
  } else {
    b.at_hi = first;
    for (;;) {  // halve until a rate meets them
      probe.prefetch(steps_from(b.hi, 0.5));
      b.lo = b.hi / 2;
      if (b.lo < kLowestRate)
        throw BadInput(fmt::format(
            "no arrival rate meets the SLOs (p99 TTFT <= {}, p99 TPOT <= {}): even at {:.3g} requests/s, "
            "requests nearly alone, {}: raise --ttft-slo-ms / --itl-slo-ms, or use more GPUs (--tp), "
            "a faster device or lower precision",
            format_time(r.ttft_slo), format_time(r.itl_slo), b.hi, slo_reading(b.at_hi)));
      b.at_lo = probe.at(b.lo);
      if (meets_slos(b.at_lo, r)) break;
      b.hi = b.lo;
      b.at_hi = b.at_lo;
    }
  }
  std::vector<double> candidates;
  while (b.hi / b.lo > 1 + tolerance) {  // geometric bisection
    const unsigned width = probe_width(r);
    int depth = 1;  // levels of the decision tree one round covers: 2^depth - 1 runs <= width
    while ((2u << depth) - 1 <= width) ++depth;
    candidates.clear();
    bisection_candidates(b.lo, b.hi, depth, tolerance, candidates);
    probe.prefetch(candidates);
    const double mid = std::sqrt(b.lo * b.hi);
    const SimulationResult& at_mid = probe.at(mid);
    if (meets_slos(at_mid, r)) b.lo = mid, b.at_lo = at_mid;
    else b.hi = mid, b.at_hi = at_mid;
  }
  return b;
}
}  // namespace

MaxRateSearch find_max_rate(const ModelSpec& model, const HardwareSpec& hw, const SimulationRequest& r,
                            double tolerance) {
  if (!r.trace.empty())
    throw BadInput("the max-rate search draws Poisson arrivals: drop --trace (a trace fixes its own arrivals)");
  if (!(tolerance > 0 && tolerance < 1)) throw BadInput("the max-rate search's tolerance must be in (0, 1)");
  if (r.search_threads < 0)
    throw BadInput(fmt::format("search threads must be >= 0 (0: all cores), got {}", r.search_threads));
  MaxRateSearch out;
  int requests = r.requests;
  auto simulate_with = [&](int n) {
    return [&, n](double rate) {
      SimulationRequest q = r;
      q.rate = rate;
      q.requests = n;
      q.progress = nullptr;
      q.search_progress = nullptr;
      return simulate(model, hw, q);
    };
  };
  // A run too short for the queue to settle lets a rate above capacity pass (the backlog has not
  // grown past the TTFT SLO when the last request arrives), and the answer falls as the run grows.
  // So the answer must hold on a run twice as long; if not, the search repeats at that length
  // (MLPerf's Server runs last >= 600 s and its LLM tests tens of thousands of queries).
  constexpr int kMaxRequests = 1 << 20;
  auto report = [&](int simulations, int n, double rate, const SimulationResult& s) {
    if (r.search_progress) r.search_progress(SearchStatus{simulations, n, rate, meets_slos(s, r)});
  };
  // `known`: the run at `start` with these n requests, when the confirmation already made it.
  auto search_at = [&](int n, double start, std::optional<SimulationResult> known) {
    RateProbe probe(simulate_with(n));
    if (known) probe.remember(start, std::move(*known));
    probe.on_path_run([&, n](double rate, const SimulationResult& s) {
      report(out.simulations + probe.path_runs(), n, rate, s);
    });
    Bracket found = bracket_max_rate(probe, r, start, tolerance);
    out.simulations += probe.path_runs();
    return found;
  };
  Bracket b = search_at(requests, 1.0, std::nullopt);
  std::string settled;
  for (;;) {
    if (2L * requests > kMaxRequests) {
      settled = fmt::format(" Not confirmed on a longer run: {} requests is the search's limit.", requests);
      break;
    }
    SimulationResult longer = simulate_with(2 * requests)(b.lo);
    ++out.simulations;
    report(out.simulations, 2 * requests, b.lo, longer);
    if (meets_slos(longer, r)) {
      settled = fmt::format(" Confirmed on a run twice as long ({} requests: {}).", 2 * requests,
                            slo_reading(longer));
      break;
    }
    requests *= 2;
    b = search_at(requests, b.lo, std::move(longer));  // the longer search starts where this run failed
  }
  out.max_rate = b.lo;
  out.failing_rate = b.hi;
  out.requests = requests;
  out.at_max = std::move(b.at_lo);
  std::vector<std::string> t = {fmt::format(
      "Max rate under the SLOs (MLPerf Inference Server's rule: p99 TTFT <= {}, p99 TPOT <= {}, every request "
      "served): {:.4g} requests/s ({}); {:.4g} requests/s misses ({}). Searched over the same {} requests "
      "(seed {}), arrivals scaled by 1/rate, bisected to {:.0f}%; {} simulations.{}",
      format_time(r.ttft_slo), format_time(r.itl_slo), b.lo, slo_reading(out.at_max), b.hi, slo_reading(b.at_hi),
      requests, r.seed, tolerance * 100, out.simulations, settled)};
  t.insert(t.end(), out.at_max.trace.begin(), out.at_max.trace.end());
  out.at_max.trace = std::move(t);
  return out;
}

std::vector<SimulationResult> sweep_rates(const ModelSpec& model, const HardwareSpec& hw,
                                          const SimulationRequest& r, const std::vector<double>& rates) {
  if (rates.empty()) throw BadInput("--sweep-rate needs at least one rate");
  std::vector<SimulationResult> out;
  for (double rate : rates) {
    SimulationRequest q = r;
    q.rate = rate;
    q.trace.clear();
    out.push_back(simulate(model, hw, q));
  }
  return out;
}

}  // namespace mlsysim
