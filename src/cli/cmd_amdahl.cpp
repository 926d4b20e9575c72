// `mlsysim amdahl`: single/multi-component Amdahl, Gustafson, and profile-guided ROI analysis; the
// profile comes from --profile name=fraction,... or from a `train` run (--model ... options).
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

int run_amdahl(const GlobalOptions& g, const AmdahlOptions& o) {
  (void)parse_format(g.format);
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
  double base_mfu = o.mfu.value_or(0);
  if (o.fraction) {
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

  nlohmann::ordered_json j;
  j["speedup"] = r.speedup;
  j["improvement"] = r.improvement;
  j["base_mfu"] = r.base_mfu;
  j["new_mfu"] = r.new_mfu;
  j["total_cost_weeks"] = r.total_cost_weeks;
  if (r.budget_weeks) j["budget_weeks"] = *r.budget_weeks;
  j["within_budget"] = r.within_budget;
  j["roi_mfu_points_per_week"] = r.roi;
  j["hotspot"] = r.hotspot;
  j["best_roi"] = r.best_roi;
  for (const auto& c : r.components)
    j["components"].push_back({{"name", c.name}, {"fraction", c.fraction}, {"speedup", c.speedup},
                               {"new_fraction", c.new_fraction}, {"cost_weeks", c.cost_weeks},
                               {"alone_speedup", c.alone_speedup}, {"alone_mfu", c.alone_mfu},
                               {"alone_roi_mfu_points_per_week", c.alone_roi}, {"limit_speedup", c.limit_speedup}});
  j["trace"] = r.trace;
  std::string text = fmt::format("{:<18}{:>9}{:>9}{:>10}{:>8}{:>12}{:>10}\n", "component", "share", "speedup",
                                 "new share", "weeks", "alone", "ceiling");
  for (const auto& c : r.components)
    text += fmt::format("{:<18}{:>8.1f}%{:>8.2f}x{:>9.1f}%{:>8.1f}{:>11.4f}x{:>9.3f}x\n", c.name, 100 * c.fraction,
                        c.speedup, 100 * c.new_fraction, c.cost_weeks, c.alone_speedup, c.limit_speedup);
  text += fmt::format("\nend-to-end speedup {:.4f}x ({:+.1f}%)", r.speedup, 100 * r.improvement);
  if (base_mfu > 0) text += fmt::format("; MFU {:.1f}% -> {:.1f}%", 100 * base_mfu, 100 * r.new_mfu);
  if (r.total_cost_weeks > 0) text += fmt::format("; {:.1f} engineer-weeks, ROI {:.2f} MFU points/week", r.total_cost_weeks, r.roi);
  text += "\n\nwhy:\n";
  for (const auto& t : r.trace) text += "  " + t + "\n";
  print(g, j, text);
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
  return Command{cmd, [o, &g] { return run_amdahl(g, *o); }};
});

}  // namespace
}  // namespace mlsysim::cli
