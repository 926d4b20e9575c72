// `mlsysim sweep`: the engine over a design space on all cores (CSV/JSON rows, or a table summary).
#include <fmt/format.h>

#include <cmath>
#include <iostream>
#include <map>
#include <memory>
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
  unsigned threads = 0;
  int top = 10;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

// "1,2,8" or a geometric range "1:1024:2" (start:stop:factor) or arithmetic "128:1024:+128".
std::vector<int> parse_ints(const std::string& flag, const std::string& text) {
  std::vector<int> out;
  for (const auto& item : split(text)) {
    const auto c1 = item.find(':');
    try {
      if (c1 == std::string::npos) {
        out.push_back(std::stoi(item));
        continue;
      }
      const auto c2 = item.find(':', c1 + 1);
      if (c2 == std::string::npos) throw std::invalid_argument("range");
      const long start = std::stol(item.substr(0, c1)), stop = std::stol(item.substr(c1 + 1, c2 - c1 - 1));
      const std::string step = item.substr(c2 + 1);
      const bool additive = !step.empty() && step[0] == '+';
      const double k = std::stod(additive ? step.substr(1) : step);
      if (start < 1 || stop < start || (additive ? k < 1 : k <= 1)) throw std::invalid_argument("range");
      for (double v = start; v <= stop && out.size() < 100000; v = additive ? v + k : v * k)
        out.push_back(static_cast<int>(std::lround(v)));
    } catch (const std::exception&) {
      throw BadInput(flag + " '" + item + "' must be an integer, a list like 1,2,8, a geometric "
                     "range start:stop:factor (1:1024:2) or an arithmetic one start:stop:+step");
    }
  }
  for (int v : out)
    if (v < 0) throw BadInput(flag + " values must be >= 0, got " + std::to_string(v));
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
  std::cerr << fmt::format("swept {} configurations ({} evaluated, {} skipped) in {:.3f} s on {} "
                           "threads: {:.2f} M/s\n",
                           space.size(), r.evaluated, r.skipped, r.seconds, r.threads,
                           space.size() / std::max(r.seconds, 1e-9) / 1e6);
  if (r.skipped) std::cerr << "first skip reason: " << r.first_skip_reason << "\n";

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
    if (format == Format::Csv) std::cout << csv_from_rows(rows);
    else std::cout << nlohmann::ordered_json{{"configurations", space.size()}, {"evaluated", r.evaluated},
                                             {"skipped", r.skipped}, {"seconds", r.seconds},
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
  std::cout << fmt::format("{:<16} {:<16} {:<9} {:>6} {:>6} {:>6} {:<5} {:>10} {:>12} {:<8} {:>7}\n",
                           "model", "hardware", "phase", "batch", "seq", "ctx", "prec", "latency",
                           "throughput/s", "wall", "MFU");
  int shown = 0;
  for (const auto& [k, p] : best) {
    if (shown++ >= o.top) break;
    std::cout << fmt::format("{:<16} {:<16} {:<9} {:>6} {:>6} {:>6} {:<5} {:>10} {:>12.4g} {:<8} {:>6.1f}%\n",
                             p->model->id.substr(0, 16), p->hardware->id.substr(0, 16),
                             to_string(p->phase), p->batch, p->seq_len, p->context,
                             std::string(to_string(p->precision)), format_time(p->latency),
                             p->throughput, to_string(p->bottleneck), 100 * p->mfu);
  }
  if (best.size() > static_cast<size_t>(o.top))
    std::cout << fmt::format("... {} more (raise --top, or use --format csv for every row)\n",
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
