// `mlsysim amdahl`: single/multi-component Amdahl, Gustafson, and profile-guided ROI analysis; the
// profile comes from --profile name=fraction,... or from a `train` run (--model ... options).
#include <algorithm>
#include <iostream>
#include <sstream>

#include "train_options.hpp"
#include "mlsysim/physics/scaling.hpp"
#include "mlsysim/solvers/amdahl.hpp"

namespace mlsysim::cli {
namespace {

struct AmdahlOptions {
  std::optional<double> fraction, speedup, serial_fraction, mfu, budget;
  std::optional<int> processors;
  std::string profile, speedups, costs;
  TrainOptions train;
};

// "name=value,name=value": each name once and non-empty, each value a number with nothing after it (no
// trailing text: "0.5;b=0.5" is not 0.5).
std::vector<std::pair<std::string, double>> parse_pairs(const std::string& flag, const std::string& text) {
  std::vector<std::pair<std::string, double>> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto eq = item.find('=');
    if (eq == std::string::npos)
      throw BadInput(flag + " expects name=value[,name=value...]; got '" + item + "'");
    auto trimmed = [](std::string t) {
      t.erase(0, t.find_first_not_of(" \t"));
      t.erase(t.find_last_not_of(" \t") + 1);
      return t;
    };
    const std::string name = trimmed(item.substr(0, eq)), value = trimmed(item.substr(eq + 1));
    if (name.empty()) throw BadInput(flag + ": '" + item + "' has no component name before '='");
    for (const auto& [seen, v] : out)
      if (seen == name) throw BadInput(flag + ": component '" + name + "' appears twice");
    std::size_t used = 0;
    double x = 0;
    try {
      x = std::stod(value, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != value.size()) throw BadInput(flag + ": '" + value + "' is not a number");
    out.emplace_back(name, x);
  }
  return out;
}

// The command's modes and the flags each one reads. A flag of another mode would be dropped
// silently, so giving it is an error.
const std::vector<std::string> kGustafsonFlags = {"--serial-fraction", "--processors"};
const std::vector<std::string> kSingleFlags = {"--fraction", "--speedup"};
const std::vector<std::string> kProfileFlags = {"--profile"};
// What every profile mode (single, --profile, train run) reads, and Gustafson does not.
const std::vector<std::string> kAnalysisFlags = {"--speedups", "--costs", "--mfu", "--budget-weeks"};

bool is_own_flag(const std::string& flag) {
  for (const auto* group : {&kGustafsonFlags, &kSingleFlags, &kProfileFlags, &kAnalysisFlags})
    if (std::find(group->begin(), group->end(), flag) != group->end()) return true;
  return flag == "--help";
}

// The given flags of `group` (in the command's order), or of the train run when group is null.
std::vector<std::string> given_of(const std::vector<std::string>& given, const std::vector<std::string>* group) {
  std::vector<std::string> out;
  for (const auto& f : given)
    if (group ? std::find(group->begin(), group->end(), f) != group->end() : !is_own_flag(f)) out.push_back(f);
  return out;
}

bool has(const std::vector<std::string>& given, const std::string& flag) {
  return std::find(given.begin(), given.end(), flag) != given.end();
}

// At most one mode: Gustafson, or one source of the profile (a single component, --profile, a train
// run). Gustafson reads none of the profile analysis flags; a single component's factor is --speedup.
void check_modes(const std::vector<std::string>& given) {
  struct Mode {
    std::string what;
    std::vector<std::string> flags;  // those given
  };
  const std::vector<Mode> modes = {{"Gustafson (--serial-fraction/--processors)", given_of(given, &kGustafsonFlags)},
                                   {"a single component (--fraction/--speedup)", given_of(given, &kSingleFlags)},
                                   {"a --profile", given_of(given, &kProfileFlags)},
                                   {"a train run's profile (--model ...)", given_of(given, nullptr)}};
  const Mode* chosen = nullptr;
  for (const auto& m : modes) {
    if (m.flags.empty()) continue;
    if (chosen)
      throw BadInput(fmt::format("{} and {} contradict each other: {} asks for {}, {} for {}; give one of them",
                                 chosen->flags[0], m.flags[0], chosen->flags[0], chosen->what, m.flags[0], m.what));
    chosen = &m;
  }
  const auto analysis = given_of(given, &kAnalysisFlags);
  if (chosen == &modes[0] && !analysis.empty())
    throw BadInput(analysis[0] + " applies to a profile analysis, not to Gustafson (--serial-fraction/--processors); "
                                 "drop one of them");
  if (chosen == &modes[1] && has(given, "--speedups"))
    throw BadInput("--speedups contradicts --speedup: with --fraction the one component's factor is --speedup");
  if (chosen == &modes[3] && !has(given, "--model"))
    throw BadInput(chosen->flags[0] + " is a train-run option: the profile from a train run needs --model M "
                                      "(with --hardware H --gpus N ...)");
}

nlohmann::ordered_json amdahl_json(const AmdahlResult& r) {
  nlohmann::ordered_json j;
  j["speedup"] = r.speedup;
  j["improvement"] = r.improvement;
  // MFU figures only with a baseline MFU (--mfu or a train run): no 0.0 placeholders.
  if (r.base_mfu) j["base_mfu"] = *r.base_mfu;
  if (r.new_mfu) j["new_mfu"] = *r.new_mfu;
  j["total_cost_weeks"] = r.total_cost_weeks;
  if (r.budget_weeks) j["budget_weeks"] = *r.budget_weeks;
  j["within_budget"] = r.within_budget;
  if (r.roi) j["roi_mfu_points_per_week"] = *r.roi;
  j["hotspot"] = r.hotspot;
  j["best_roi"] = r.best_roi;
  for (const auto& c : r.components) {
    nlohmann::ordered_json cj = {{"name", c.name}, {"fraction", c.fraction}, {"speedup", c.speedup},
                                 {"new_fraction", c.new_fraction}, {"cost_weeks", c.cost_weeks},
                                 {"alone_speedup", c.alone_speedup}};
    if (c.alone_mfu) cj["alone_mfu"] = *c.alone_mfu;
    if (c.alone_roi) cj["alone_roi_mfu_points_per_week"] = *c.alone_roi;
    cj["limit_speedup"] = c.limit_speedup;
    j["components"].push_back(cj);
  }
  j["trace"] = r.trace;
  return j;
}

std::string amdahl_table(const AmdahlResult& r) {
  // A space before every column keeps wide values (a 1e6x speedup) from running into their neighbours.
  std::string text = fmt::format("{:<18} {:>8} {:>9} {:>9} {:>7} {:>11} {:>9}\n", "component", "share", "speedup",
                                 "new share", "weeks", "alone", "ceiling");
  for (const auto& c : r.components)
    text += fmt::format("{:<18} {:>7.1f}% {:>8.2f}x {:>8.1f}% {:>7.1f} {:>10.4f}x {:>8.3f}x\n", c.name,
                        100 * c.fraction, c.speedup, 100 * c.new_fraction, c.cost_weeks, c.alone_speedup,
                        c.limit_speedup);
  text += fmt::format("\nend-to-end speedup {:.4f}x ({:+.1f}%)", r.speedup, 100 * r.improvement);
  if (r.base_mfu) text += fmt::format("; MFU {:.1f}% -> {:.1f}%", 100 * *r.base_mfu, 100 * *r.new_mfu);
  if (r.total_cost_weeks > 0) text += fmt::format("; {:.1f} engineer-weeks", r.total_cost_weeks);
  if (r.roi) text += fmt::format(", ROI {:.2f} MFU points/week", *r.roi);
  text += "\n\nwhy:\n";
  for (const auto& t : r.trace) text += "  " + t + "\n";
  return text;
}

int run_amdahl(const GlobalOptions& g, const AmdahlOptions& o, const std::vector<std::string>& given) {
  (void)parse_format(g.format);
  check_modes(given);
  if (o.serial_fraction || o.processors) {
    if (!o.serial_fraction || !o.processors)
      throw BadInput("Gustafson needs --serial-fraction and --processors");
    const double s = gustafson_speedup(*o.serial_fraction, *o.processors);
    const double a = amdahl_speedup(1 - *o.serial_fraction, *o.processors);
    print(g, {{"gustafson_speedup", s}, {"amdahl_speedup", a}, {"serial_fraction", *o.serial_fraction},
              {"processors", *o.processors}},
          fmt::format("Gustafson (scaled problem): S = k - f(k-1) = {} - {}x{} = {:.3f}x\n"
                      "Amdahl (fixed problem):     S = 1/(f + (1-f)/k) = {:.3f}x\n",
                      *o.processors, *o.serial_fraction, *o.processors - 1, s, a));
    return kExitOk;
  }
  std::vector<ProfileComponent> profile;
  std::optional<double> base_mfu = o.mfu;
  if (o.fraction || o.speedup) {
    if (!o.fraction) throw BadInput("--speedup needs --fraction (the share of the step it speeds up)");
    if (!o.speedup) throw BadInput("--fraction needs --speedup (the factor applied to that fraction)");
    profile = {{"optimized", *o.fraction, *o.speedup, 0}, {"rest", 1 - *o.fraction, 1, 0}};
  } else if (!o.profile.empty()) {
    for (auto& [n, f] : parse_pairs("--profile", o.profile)) profile.push_back({n, f, 1, 0});
  } else if (!o.train.model.empty()) {
    const auto s = make_train_setup(g, o.train);
    const TrainingResult r = train(*s->model, *s->hw, s->cluster, s->request);
    profile = profile_from_training(r);
    if (!o.mfu) base_mfu = r.mfu;
  } else {
    throw BadInput("give --fraction F --speedup K, or --profile name=f,..., or a train run (--model M "
                   "--hardware H --gpus N ...), or --serial-fraction/--processors for Gustafson");
  }
  auto find = [&](const std::string& n) -> ProfileComponent& {
    for (auto& c : profile)
      if (c.name == n) return c;
    std::string names;
    for (auto& c : profile) names += (names.empty() ? "" : ", ") + c.name;
    throw BadInput("no profile component '" + n + "' (components: " + names + ")");
  };
  for (auto& [n, k] : parse_pairs("--speedups", o.speedups)) find(n).speedup = k;
  for (auto& [n, w] : parse_pairs("--costs", o.costs)) find(n).cost_weeks = w;
  const AmdahlResult r = amdahl_analysis(profile, base_mfu, o.budget);
  print(g, amdahl_json(r), amdahl_table(r));
  return r.within_budget ? kExitOk : kExitBadInput;
}

const CommandRegistrar registrar(23, "amdahl", [](CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<AmdahlOptions>();
  auto* cmd = app.add_subcommand("amdahl", "Amdahl / Gustafson and profile-guided optimization ROI");
  cmd->add_option("--fraction,-f", o->fraction, "Single component: fraction of the step it takes");
  cmd->add_option("--speedup,-k", o->speedup, "Single component: its speedup factor");
  cmd->add_option("--profile", o->profile, "Components: name=fraction,... (sum to 1)");
  cmd->add_option("--speedups", o->speedups, "Per-component speedups: name=k,...");
  cmd->add_option("--costs", o->costs, "Per-component engineering cost: name=weeks,...");
  cmd->add_option("--mfu", o->mfu, "Baseline MFU as a fraction (e.g. 0.35)");
  cmd->add_option("--budget-weeks", o->budget, "Engineering budget (exit 1 when exceeded)");
  cmd->add_option("--serial-fraction", o->serial_fraction, "Gustafson: serial fraction");
  cmd->add_option("--processors", o->processors, "Gustafson: processor count");
  add_train_options(cmd, o->train, false);
  return Command{cmd, [o, &g, cmd] {
                   std::vector<std::string> given;  // long names of the flags on the command line
                   for (const CLI::Option* opt : cmd->get_options())
                     if (opt->count() > 0) given.push_back(opt->get_name());
                   return run_amdahl(g, *o, given);
                 }};
});

}  // namespace
}  // namespace mlsysim::cli
