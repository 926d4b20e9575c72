#include "mlsysim/solvers/simulator.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <deque>
#include <random>
#include <unordered_map>

#include "mlsysim/errors.hpp"
#include "mlsysim/physics/memory.hpp"
#include "mlsysim/physics/serving.hpp"
#include "mlsysim/solvers/serving.hpp"
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
    rows.push_back({a, integer(f[1], "prompt_tokens"), integer(f[2], "output_tokens")});
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

// Engine step times through a cache (the engine is never called twice for the same bucket).
class StepCache {
 public:
  StepCache(const ServingDeployment& d, int max_seq) : d_(d), max_seq_(max_seq) {
    const StepTime st = time_step(d_, Phase::Decode, 1, 1, 0);
    weights_ = weight_read_time(d_, st.profile).si();
  }
  double decode(int n, double avg_ctx) {
    const int c = bucket(static_cast<int>(std::ceil(avg_ctx)), kContextBucket, max_seq_ - 1);
    return get(1, n, 1, c, [&] { return time_step(d_, Phase::Decode, n, 1, c).latency.si(); });
  }
  double prefill(int k, double tokens, double ctx) {
    const int t = bucket(static_cast<int>(std::ceil(tokens)), kTokenBucket, max_seq_);
    const int c = std::min(bucket(static_cast<int>(ctx), kContextBucket, max_seq_), max_seq_ - t);
    return get(2, k, t, c, [&] { return time_step(d_, Phase::Prefill, k, t, c).latency.si(); });
  }
  // A fused iteration (chunked prefill + decodes) reads the weights once (Agrawal et al. 2024,
  // Sarathi-Serve sec. 3): sum of the parts minus one weight read, never below the larger part.
  double mixed(double pre, double dec) const { return std::max({pre + dec - weights_, pre, dec}); }
  [[nodiscard]] long size() const { return static_cast<long>(cache_.size()); }

 private:
  static int bucket(int x, int b, int cap) {
    if (x <= 0) return 0;
    return std::clamp((x + b - 1) / b * b, 1, std::max(1, cap));
  }
  template <class F>
  double get(int kind, int a, int b, int c, F&& f) {
    const std::uint64_t key = (static_cast<std::uint64_t>(kind) << 60) |
                              (static_cast<std::uint64_t>(a) << 40) |
                              (static_cast<std::uint64_t>(b) << 20) | static_cast<std::uint64_t>(c);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
    const double v = f();
    cache_.emplace(key, v);
    return v;
  }
  const ServingDeployment& d_;
  int max_seq_;
  double weights_ = 0;
  std::unordered_map<std::uint64_t, double> cache_;
};

void validate(const ModelSpec& model, const SimulationRequest& r) {
  if (model.kind != ModelKind::Decoder)
    throw BadInput("--model " + model.id + " is not a decoder-only LLM: the serving simulator needs one");
  if (r.trace.empty()) {
    if (!(r.rate > 0) || !std::isfinite(r.rate))
      throw BadInput(fmt::format("--rate must be > 0 requests/s (Poisson arrivals), got {}: or pass "
                                 "--trace FILE", r.rate));
    if (r.requests < 1 || r.requests > 10'000'000)
      throw BadInput(fmt::format("--requests must be in [1, 10000000], got {}", r.requests));
    if (r.prompt_len < 1) throw BadInput(fmt::format("--prompt-len must be >= 1 token, got {}", r.prompt_len));
    if (r.output_len < 1) throw BadInput(fmt::format("--output-len must be >= 1 token, got {}", r.output_len));
    if (model.tf.max_seq > 0 && static_cast<long>(r.prompt_len) + r.output_len > model.tf.max_seq)
      throw BadInput(fmt::format("--prompt-len {} + --output-len {} exceeds {}'s max_seq {}",
                                 r.prompt_len, r.output_len, model.id, model.tf.max_seq));
  }
  if (r.page_size < 1 || r.page_size > 4096)
    throw BadInput(fmt::format("--page-size must be in [1, 4096] tokens, got {} (vLLM: 16)", r.page_size));
  if (r.max_batch < 1 || r.max_batch > 65536)
    throw BadInput(fmt::format("--max-batch must be in [1, 65536], got {}", r.max_batch));
  if (r.max_batched_tokens < 1 || r.max_batched_tokens > 1 << 20)
    throw BadInput(fmt::format("--max-batched-tokens must be in [1, 1048576], got {}", r.max_batched_tokens));
  if (!(r.ttft_slo.si() > 0) || !(r.itl_slo.si() > 0))
    throw BadInput("--ttft-slo-ms and --itl-slo-ms must be > 0");
  if (!(r.memory_utilization > 0 && r.memory_utilization <= 1))
    throw BadInput(fmt::format("--memory-utilization must be in (0, 1], got {}", r.memory_utilization));
}

int draw_length(std::mt19937_64& g, int mean, LengthDist dist, int cap) {
  if (dist == LengthDist::Fixed) return std::clamp(mean, 1, cap);
  const double x = exponential_from_uniform(uniform_from_bits(g()), mean);
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

SimulationResult simulate(const ModelSpec& model, const HardwareSpec& hw, const SimulationRequest& r) {
  validate(model, r);
  const int max_seq = model.tf.max_seq > 0 ? model.tf.max_seq : 1 << 20;

  // ---- workload ----
  std::vector<Req> reqs;
  std::mt19937_64 gen(r.seed);
  if (!r.trace.empty()) {
    reqs.reserve(r.trace.size());
    for (const auto& t : r.trace) reqs.push_back({t.arrival_s, t.prompt_tokens, t.output_tokens});
  } else {
    reqs.reserve(r.requests);
    double t = 0;
    for (int i = 0; i < r.requests; ++i) {
      t += exponential_from_uniform(uniform_from_bits(gen()), 1.0 / r.rate);  // Poisson process
      const int p = draw_length(gen, r.prompt_len, r.length_dist, max_seq - 1);
      const int o = draw_length(gen, r.output_len, r.length_dist, max_seq - p);
      reqs.push_back({t, p, o});
    }
  }

  // ---- deployment: TP as `serve` picks it for one mean request ----
  double mean_p = 0, mean_o = 0;
  for (const auto& q : reqs) mean_p += q.prompt, mean_o += q.output;
  mean_p /= reqs.size(), mean_o /= reqs.size();
  int tp = r.tp;
  if (tp == 0) {
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
    tp = serve(model, hw, s).tp;
  }
  const ServingDeployment d = make_deployment(model, hw, tp, r.precision, r.kv_precision,
                                              r.efficiency, r.runtime, r.fleet, r.quantize_head);
  const ProfilingRun prof = profiling_run(d, r.max_batch, r.max_batched_tokens);
  const ServingReserve& reserve = prof.reserve;
  const Bytes kv_tok = kv_cache_bytes_per_token(d.shard, prof.forward.kv_precision);
  const Bytes weights = prof.forward.memory.weights;
  const Bytes usable = usable_budget(hw, r.memory_utilization);
  const Bytes budget = kv_pool_bytes(hw, r.memory_utilization, weights, reserve);
  const long total_pages = budget.si() > 0
      ? static_cast<long>(std::floor(budget / (kv_tok * static_cast<double>(r.page_size)))) : 0;
  if (total_pages < 1)
    throw DoesNotFit(fmt::format("{} on {} x{}: weights {} + runtime reserve {} (profile peak and "
                                 "buffers) leave no KV-cache memory in {} usable: use --tp {}, "
                                 "--precision int8/int4 or a larger device{}",
                                 model.id, hw.id, tp, format_bytes(weights), format_bytes(reserve.total()),
                                 format_bytes(usable), tp * 2,
                                 reserve_remedy(reserve, Bytes(-budget.si()))),
                     (weights + reserve.total()).si(), usable.si());

  SimulationResult out;
  out.tp = tp;
  out.kv_pages = total_pages;
  StepCache steps(d, max_seq);

  // ---- the scheduler loop ----
  long free_pages = total_pages;
  std::deque<int> waiting;
  std::vector<int> running, next_running;
  size_t next_arrival = 0;
  double now = 0, batch_sum = 0, last_finish = 0;
  long finished = 0;
  LatencyHistogram itl_hist;
  std::vector<double> ttfts, e2es;
  ttfts.reserve(reqs.size());
  e2es.reserve(reqs.size());
  long good = 0, generated_tokens = 0;
  const long n_total = static_cast<long>(reqs.size());

  auto emit_token = [&](Req& q) {
    ++q.generated;
    ++generated_tokens;
    if (q.first_token < 0) q.first_token = now;
    else itl_hist.add(now - q.last_token);
    q.last_token = now;
  };
  auto release = [&](Req& q) { free_pages += q.pages; q.pages = 0; };
  auto preempt = [&](int idx) {  // recompute-mode preemption (vLLM default)
    Req& q = reqs[idx];
    release(q);
    q.prefilled = false;
    q.computed = 0;
    q.prefill_target = q.prompt + q.generated;
    waiting.push_front(idx);
    ++out.preemptions;
  };
  // Gives request `idx` (running) a page for one more token, preempting the newest requests.
  auto grow = [&](int idx) -> bool {
    Req& q = reqs[idx];
    const long need = pages_for(q.prompt + q.generated + 1, r.page_size);
    while (q.pages < need) {
      if (free_pages > 0) { --free_pages; ++q.pages; continue; }
      if (running.empty() || running.back() == idx) return false;
      const int victim = running.back();
      running.pop_back();
      preempt(victim);
    }
    return true;
  };

  while (finished + out.rejected < n_total) {
    // Arrivals up to now.
    while (next_arrival < reqs.size() && reqs[next_arrival].arrival <= now) {
      Req& q = reqs[next_arrival];
      ++out.arrived;
      if (static_cast<long>(q.prompt) + q.output > max_seq ||
          pages_for(q.prompt + q.output, r.page_size) > total_pages) {
        ++out.rejected;  // can never fit: vLLM rejects prompts longer than the KV pool
      } else {
        q.prefill_target = q.prompt;
        waiting.push_back(static_cast<int>(next_arrival));
      }
      ++next_arrival;
    }
    if (running.empty() && waiting.empty()) {
      if (next_arrival >= reqs.size()) break;
      now = std::max(now, reqs[next_arrival].arrival);
      continue;
    }

    double step = 0;
    std::vector<int>& done_prefill = next_running;  // scratch
    done_prefill.clear();
    if (!r.chunked_prefill) {
      // vLLM (V0) default: an iteration either prefills newly admitted prompts or decodes.
      long batched = 0;
      std::vector<int> admitted;
      while (!waiting.empty() && static_cast<int>(running.size() + admitted.size()) < r.max_batch) {
        Req& q = reqs[waiting.front()];
        const long need = pages_for(q.prefill_target, r.page_size);
        if (need > free_pages) break;
        if (!admitted.empty() && batched + q.prefill_target > r.max_batched_tokens) break;
        free_pages -= need;
        q.pages = need;
        batched += q.prefill_target;
        admitted.push_back(waiting.front());
        waiting.pop_front();
      }
      if (!admitted.empty()) {
        step = steps.prefill(static_cast<int>(admitted.size()),
                             static_cast<double>(batched) / admitted.size(), 0);
        now += step;
        for (int idx : admitted) {
          Req& q = reqs[idx];
          q.prefilled = true;
          q.computed = q.prefill_target;
          emit_token(q);
          running.push_back(idx);
        }
      } else {
        // Decode every running request; page growth may preempt the newest ones.
        for (size_t i = 0; i < running.size(); ++i)
          if (!grow(running[i])) { preempt(running[i]); running.erase(running.begin() + i); --i; }
        if (running.empty()) continue;
        double ctx = 0;
        for (int idx : running) ctx += reqs[idx].prompt + reqs[idx].generated;
        step = steps.decode(static_cast<int>(running.size()), ctx / running.size());
        now += step;
        for (int idx : running) emit_token(reqs[idx]);
      }
    } else {
      // Chunked prefill (Sarathi-Serve; vLLM --enable-chunked-prefill): decodes first, then
      // prefill chunks fill the token budget.
      long budget_tokens = r.max_batched_tokens;
      std::vector<int> decoding;
      for (size_t i = 0; i < running.size(); ++i) {
        const int idx = running[i];
        if (!reqs[idx].prefilled) continue;
        if (!grow(idx)) { preempt(idx); running.erase(running.begin() + i); --i; continue; }
      }
      for (int idx : running)
        if (reqs[idx].prefilled && budget_tokens > 0) decoding.push_back(idx), --budget_tokens;
      double pre_tokens = 0, pre_ctx = 0;
      std::vector<std::pair<int, int>> chunks;
      for (int idx : running) {
        Req& q = reqs[idx];
        if (q.prefilled || budget_tokens <= 0) continue;
        const int c = static_cast<int>(std::min<long>(q.prefill_target - q.computed, budget_tokens));
        chunks.push_back({idx, c});
        pre_ctx += static_cast<double>(q.computed) * c;
        pre_tokens += c;
        budget_tokens -= c;
      }
      while (budget_tokens > 0 && !waiting.empty() && static_cast<int>(running.size()) < r.max_batch) {
        Req& q = reqs[waiting.front()];
        const long need = pages_for(q.prefill_target, r.page_size);
        if (need > free_pages) break;
        free_pages -= need;
        q.pages = need;
        const int idx = waiting.front();
        waiting.pop_front();
        running.push_back(idx);
        const int c = static_cast<int>(std::min<long>(q.prefill_target, budget_tokens));
        chunks.push_back({idx, c});
        pre_tokens += c;
        budget_tokens -= c;
      }
      if (decoding.empty() && chunks.empty()) {
        if (next_arrival >= reqs.size() && running.empty()) break;
        continue;
      }
      double ctx = 0;
      for (int idx : decoding) ctx += reqs[idx].prompt + reqs[idx].generated;
      const double dec = decoding.empty() ? 0 : steps.decode(static_cast<int>(decoding.size()),
                                                             ctx / decoding.size());
      const double pre = chunks.empty() ? 0 : steps.prefill(1, pre_tokens, pre_ctx / pre_tokens);
      step = decoding.empty() ? pre : chunks.empty() ? dec : steps.mixed(pre, dec);
      now += step;
      for (int idx : decoding) emit_token(reqs[idx]);
      for (auto [idx, c] : chunks) {
        Req& q = reqs[idx];
        q.computed += c;
        if (q.computed >= q.prefill_target) { q.prefilled = true; emit_token(q); }
      }
    }

    // Completions.
    ++out.iterations;
    batch_sum += static_cast<double>(running.size());
    next_running.clear();
    for (int idx : running) {
      Req& q = reqs[idx];
      if (q.generated >= q.output) {
        q.finish = now;
        release(q);
        ++finished;
        last_finish = now;
        const double ttft = q.first_token - q.arrival;
        ttfts.push_back(ttft);
        e2es.push_back(q.finish - q.arrival);
        const double tpot = q.output > 1 ? (q.finish - q.first_token) / (q.output - 1) : 0;
        if (ttft <= r.ttft_slo.si() && tpot <= r.itl_slo.si()) ++good;
      } else {
        next_running.push_back(idx);
      }
    }
    running.swap(next_running);
    if (r.progress && (out.iterations & 4095) == 0)
      r.progress(static_cast<double>(finished + out.rejected) / n_total);
  }
  if (r.progress) r.progress(1.0);

  out.completed = finished;
  out.in_flight = out.arrived - out.completed - out.rejected;
  out.duration = Seconds(last_finish);
  out.ttft = stats(ttfts);
  out.e2e = stats(e2es);
  out.itl = {itl_hist.percentile(50), itl_hist.percentile(90), itl_hist.percentile(99), itl_hist.mean()};
  const double dur = std::max(last_finish, 1e-12);
  out.throughput_rps = finished / dur;
  out.tokens_per_s = generated_tokens / dur;
  out.goodput_rps = good / dur;
  out.slo_attainment = finished > 0 ? static_cast<double>(good) / finished : 0;
  out.mean_batch = out.iterations > 0 ? batch_sum / out.iterations : 0;
  out.offered_rate = r.trace.empty() ? r.rate
                                     : (reqs.back().arrival > 0 ? reqs.size() / reqs.back().arrival : 0);
  out.step_cache_entries = steps.size();

  auto& t = out.trace;
  t.push_back(fmt::format("{} on {} x{}: KV pool {} pages of {} tokens ({} per token per GPU); "
                          "scheduler: FCFS, max {} sequences, {} batched tokens, {}, preemption by "
                          "recomputation.",
                          model.id, hw.id, tp, total_pages, r.page_size, format_bytes(kv_tok),
                          r.max_batch, r.max_batched_tokens,
                          r.chunked_prefill ? "chunked prefill" : "prefill-priority iterations"));
  t.push_back(fmt::format("Workload: {} requests, {} (offered {:.3g} req/s), mean {:.0f} prompt + "
                          "{:.0f} output tokens.",
                          reqs.size(), r.trace.empty() ? "Poisson arrivals" : "trace arrivals",
                          out.offered_rate, mean_p, mean_o));
  t.push_back(fmt::format("{} iterations, each timed by the engine ({} distinct step shapes "
                          "solved); mean batch {:.1f}; {} preemptions.",
                          out.iterations, out.step_cache_entries, out.mean_batch, out.preemptions));
  t.push_back(fmt::format("Requests: arrived {} = completed {} + in flight {} + rejected {}.",
                          out.arrived, out.completed, out.in_flight, out.rejected));
  t.push_back(fmt::format("TTFT p50/p90/p99 {}/{}/{}; ITL p50/p90/p99 {}/{}/{}; end-to-end p50/p99 {}/{}.",
                          format_time(Seconds(out.ttft.p50)), format_time(Seconds(out.ttft.p90)),
                          format_time(Seconds(out.ttft.p99)), format_time(Seconds(out.itl.p50)),
                          format_time(Seconds(out.itl.p90)), format_time(Seconds(out.itl.p99)),
                          format_time(Seconds(out.e2e.p50)), format_time(Seconds(out.e2e.p99))));
  t.push_back(fmt::format("Throughput {:.3g} req/s ({:.4g} tokens/s); goodput {:.3g} req/s = {} "
                          "within TTFT <= {} and time per output token <= {}.",
                          out.throughput_rps, out.tokens_per_s, out.goodput_rps,
                          format_percent(out.slo_attainment), format_time(r.ttft_slo),
                          format_time(r.itl_slo)));
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
