// `mlsysim sweep`: the engine over a design space on all cores (CSV/JSON rows, or a table summary).
#include <fmt/format.h>

#include <cmath>
#include <iostream>
#include <map>
#include <memory>
#include <limits>
#include <sstream>

#include "command.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/solvers/sweep.hpp"
#include "mlsysim/units/format.hpp"

namespace mlsysim::cli {
namespace {

struct SweepOptions {
  std::string models, hardware, phases, batches = "1", seq_lens, contexts, precisions,
                                        runtime = "graph";
  long long threads = 0;
  int top = 10;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

constexpr std::size_t kMaxListValues = 100000;  // per flag: the sweep is the product of the lists

[[noreturn]] void bad_list_item(const std::string& flag, const std::string& item, const std::string& why) {
  throw BadInput(fmt::format("{} '{}': {}; give an integer, a list like 1,2,8, a geometric range "
                             "start:stop:factor (1:1024:2) or an arithmetic one start:stop:+step (128:1024:+128)",
                             flag, item, why));
}

long parse_long(const std::string& flag, const std::string& item, const std::string& text) {
  std::size_t used = 0;
  long v = 0;
  try {
    v = std::stol(text, &used);
  } catch (const std::exception&) {
    bad_list_item(flag, item, "'" + text + "' is not an integer");
  }
  if (used != text.size()) bad_list_item(flag, item, "'" + text + "' is not an integer");
  return v;
}

// start:stop:factor (geometric) or start:stop:+step (arithmetic), rounded to integers, repeats dropped.
void expand_range(const std::string& flag, const std::string& item, std::size_t c1, std::vector<int>& out) {
  const auto c2 = item.find(':', c1 + 1);
  if (c2 == std::string::npos) bad_list_item(flag, item, "a range needs start:stop:step");
  const long start = parse_long(flag, item, item.substr(0, c1));
  const long stop = parse_long(flag, item, item.substr(c1 + 1, c2 - c1 - 1));
  const std::string step = item.substr(c2 + 1);
  const bool additive = !step.empty() && step[0] == '+';
  double k = 0;
  try {
    k = std::stod(additive ? step.substr(1) : step);
  } catch (const std::exception&) {
    bad_list_item(flag, item, "step '" + step + "' is not a number");
  }
  if (start < 1) bad_list_item(flag, item, fmt::format("a range starts at 1 or above, got {}", start));
  if (stop < start) bad_list_item(flag, item, fmt::format("stop {} is below start {}", stop, start));
  if (stop > std::numeric_limits<int>::max()) bad_list_item(flag, item, fmt::format("stop {} is too large", stop));
  if (additive ? !(k >= 1) : !(k > 1))
    bad_list_item(flag, item, additive ? fmt::format("an arithmetic step must be >= 1, got {}", k)
                                       : fmt::format("a geometric factor must be > 1, got {}", k));
  for (double v = static_cast<double>(start); v <= static_cast<double>(stop); v = additive ? v + k : v * k) {
    const int x = static_cast<int>(std::lround(v));
    if (!out.empty() && out.back() == x) continue;
    if (out.size() == kMaxListValues)
      bad_list_item(flag, item, fmt::format("it expands to more than {} values: use a coarser step", kMaxListValues));
    out.push_back(x);
  }
}

// "1,2,8" or a geometric range "1:1024:2" (start:stop:factor) or arithmetic "128:1024:+128".
std::vector<int> parse_ints(const std::string& flag, const std::string& text) {
  std::vector<int> out;
  for (const auto& item : split(text)) {
    const auto c1 = item.find(':');
    if (c1 == std::string::npos) {
      const long v = parse_long(flag, item, item);
      if (v < 0 || v > std::numeric_limits<int>::max())
        bad_list_item(flag, item, fmt::format("values must be in [0, {}]", std::numeric_limits<int>::max()));
      out.push_back(static_cast<int>(v));
    } else {
      expand_range(flag, item, c1, out);
    }
    if (out.size() > kMaxListValues)
      throw BadInput(fmt::format("{} lists more than {} values: use a coarser range", flag, kMaxListValues));
  }
  return out;
}

int run_sweep_command(const GlobalOptions& g, const SweepOptions& o) {
  const Format format = parse_format(g.format);
  const auto owner = load_catalog(g);
  const Catalog& catalog = *owner;
  SweepSpace space;
  auto all_or = [&](const std::string& list, auto&& add, auto&& add_all) {
    if (list == "all") add_all();
    else for (const auto& name : split(list)) add(name);
  };
  all_or(o.models, [&](const std::string& n) { space.models.push_back(&catalog.model(n)); },
         [&] { for (const auto& m : catalog.all_models()) space.models.push_back(&m); });
  all_or(o.hardware, [&](const std::string& n) { space.hardware.push_back(&catalog.hardware(n)); },
         [&] { for (const auto& h : catalog.all_hardware()) space.hardware.push_back(&h); });
  for (const auto& p : split(o.phases))
    space.phases.push_back(parse_enum<Phase>("--phase", p, {{"inference", Phase::Inference},
                                                            {"prefill", Phase::Prefill},
                                                            {"decode", Phase::Decode},
                                                            {"train", Phase::Train}}));
  space.batches = parse_ints("--batch-size", o.batches);
  if (!o.seq_lens.empty()) space.seq_lens = parse_ints("--seq-len", o.seq_lens);
  if (!o.contexts.empty()) space.contexts = parse_ints("--context", o.contexts);
  for (const auto& p : split(o.precisions)) space.precisions.push_back(parse_precision_flag("--precision", p));
  space.runtime = parse_runtime_flag(o.runtime);
  constexpr size_t kMaxConfigurations = 100'000'000;
  if (space.size() > kMaxConfigurations)
    throw BadInput(fmt::format("the sweep has {} configurations; the limit is {}: narrow a range",
                               space.size(), kMaxConfigurations));

  const SweepResult r = run_sweep(space, o.threads);
  err_stream() << fmt::format("swept {} configurations ({} evaluated, {} skipped{}) in {:.3f} s on {} "
                           "threads: {:.2f} M/s\n",
                           space.size(), r.evaluated, r.skipped,
                           r.repeats ? fmt::format(", {} repeats: --seq-len/--context values a step does not use",
                                                   r.repeats)
                                     : std::string(),
                           r.seconds, r.threads, space.size() / std::max(r.seconds, 1e-9) / 1e6);
  // Nothing evaluated is an input error, not an empty success: say why, as a single solve would.
  if (r.evaluated == 0)
    throw BadInput(fmt::format("none of the sweep's {} configurations is valid, e.g.: {}",
                               space.size(), r.first_skip_reason));
  if (r.skipped) err_stream() << "first skip reason: " << r.first_skip_reason << "\n";

  auto row = [](const SweepPoint& p) {
    return nlohmann::ordered_json{{"model", p.model->id}, {"hardware", p.hardware->id},
                                  {"phase", to_string(p.phase)}, {"batch_size", p.batch},
                                  {"seq_len", p.seq_len}, {"context", p.context},
                                  {"precision", std::string(to_string(p.precision))},
                                  {"latency_s", p.latency.si()}, {"bottleneck", to_string(p.bottleneck)},
                                  {"mfu", p.mfu}, {"throughput_per_s", p.throughput},
                                  {"memory_footprint_bytes", p.memory.si()}, {"feasible", p.feasible}};
  };
  if (format == Format::Csv || format == Format::Json) {
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    for (const auto& p : r.points) rows.push_back(row(p));
    if (format == Format::Csv) out_stream() << csv_from_rows(rows);
    else out_stream() << nlohmann::ordered_json{{"configurations", space.size()}, {"evaluated", r.evaluated},
                                             {"skipped", r.skipped}, {"repeats", r.repeats}, {"seconds", r.seconds},
                                             {"threads", r.threads}, {"points", rows}}.dump(2) << "\n";
    return kExitOk;
  }
  // Table: the highest-throughput feasible configuration per model x hardware x phase.
  std::map<std::tuple<std::string, std::string, std::string>, const SweepPoint*> best;
  for (const auto& p : r.points) {
    if (!p.feasible) continue;
    auto& b = best[{p.model->id, p.hardware->id, to_string(p.phase)}];
    if (!b || p.throughput > b->throughput) b = &p;
  }
  out_stream() << fmt::format("{:<16} {:<16} {:<9} {:>6} {:>6} {:>6} {:<5} {:>10} {:>12} {:<8} {:>7}\n",
                           "model", "hardware", "phase", "batch", "seq", "ctx", "prec", "latency",
                           "throughput/s", "wall", "MFU");
  int shown = 0;
  for (const auto& [k, p] : best) {
    if (shown++ >= o.top) break;
    out_stream() << fmt::format("{:<16} {:<16} {:<9} {:>6} {:>6} {:>6} {:<5} {:>10} {:>12.4g} {:<8} {:>6.1f}%\n",
                             p->model->id.substr(0, 16), p->hardware->id.substr(0, 16),
                             to_string(p->phase), p->batch, p->seq_len, p->context,
                             std::string(to_string(p->precision)), format_time(p->latency),
                             p->throughput, to_string(p->bottleneck), 100 * p->mfu);
  }
  if (best.size() > static_cast<size_t>(o.top))
    out_stream() << fmt::format("... {} more (raise --top, or use --format csv for every row)\n",
                             best.size() - o.top);
  return kExitOk;
}

const CommandRegistrar registrar(15, "sweep", [](CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<SweepOptions>();
  auto* cmd = app.add_subcommand("sweep", "The engine over a design space, on all cores");
  cmd->add_option("--model,-m", o->models, "Comma-separated model ids, or 'all'")->required();
  cmd->add_option("--hardware,-H", o->hardware, "Comma-separated hardware ids, or 'all'")->required();
  cmd->add_option("--phase,-p", o->phases, "Comma-separated phases (default: each model's own)");
  cmd->add_option("--batch-size,-b", o->batches, "List or range: 1,8,64 | 1:1024:2 | 64:512:+64");
  cmd->add_option("--seq-len,-s", o->seq_lens, "List or range of tokens per sequence");
  cmd->add_option("--context,-c", o->contexts, "List or range of cached tokens (decode)");
  cmd->add_option("--precision", o->precisions, "Comma-separated precisions (default: device default)");
  cmd->add_option("--runtime", o->runtime, "graph | eager");
  cmd->add_option("--threads", o->threads, "Worker threads (default: all cores)");
  cmd->add_option("--top", o->top, "Table: how many best configurations to show");
  return Command{cmd, [o, &g] { return run_sweep_command(g, *o); }};
});

}  // namespace
}  // namespace mlsysim::cli
