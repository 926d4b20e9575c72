#include "mlsysim/solvers/amdahl.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "mlsysim/errors.hpp"
#include "mlsysim/physics/scaling.hpp"

namespace mlsysim {

namespace {

void check_inputs(const std::vector<ProfileComponent>& profile, std::optional<double> base_mfu,
                  std::optional<double> budget_weeks) {
  if (profile.empty()) throw BadInput("the profile needs at least one component (name=fraction)");
  // MFU 0 would mean no useful work at all: nothing to scale.
  if (base_mfu && !(*base_mfu > 0 && *base_mfu <= 1))
    throw BadInput(fmt::format("base MFU must be a fraction in (0, 1] (e.g. 0.35 for 35%), got {}", *base_mfu));
  if (budget_weeks && !(*budget_weeks >= 0 && std::isfinite(*budget_weeks)))
    throw BadInput(fmt::format("--budget-weeks must be a finite number >= 0 engineer-weeks, got {}", *budget_weeks));
  for (const auto& c : profile) {
    if (!(c.cost_weeks >= 0) || !std::isfinite(c.cost_weeks))
      throw BadInput("engineering cost of '" + c.name + "' must be a finite number >= 0 weeks");
    if (!(c.speedup >= 1 / kMaxComponentSpeedup && c.speedup <= kMaxComponentSpeedup))
      throw BadInput(fmt::format("speedup of '{}' must be between {:g} (a slowdown) and {:g}, got {:g}: a component "
                                 "a million times faster is already free to every printed digit (its end-to-end "
                                 "ceiling is 1/(1-f), the 'ceiling' column)", c.name, 1 / kMaxComponentSpeedup,
                                 kMaxComponentSpeedup, c.speedup));
  }
}

// A projection past 100% MFU is rejected rather than capped at 100%: a capped MFU would no longer
// equal base x speedup, so the table would show a speedup and an MFU that contradict each other, and
// the input that caused it (a baseline MFU set too high, or a speedup the hardware cannot deliver)
// would go unnoticed. The error says how far each changed component can go.
// `what` names the projection ("the speedups together", "'x' alone"), `others` what the other
// components are held at for each limit ("as given", "unchanged").
void check_within_peak(const std::vector<ProfileComponent>& profile, double base_mfu, double speedup,
                       const std::string& what, const std::string& others) {
  constexpr double kRounding = 1e-9;  // f/k sums of exactly 100% MFU land a few ulps either side
  if (base_mfu * speedup <= 1 + kRounding) return;
  std::string limits;
  for (size_t i = 0; i < profile.size(); ++i) {
    if (profile[i].speedup == 1) continue;
    const double k = largest_speedup_within_peak(profile, i, base_mfu);
    limits += fmt::format("; '{}' at most {}", profile[i].name,
                          std::isfinite(k) ? fmt::format("{:.4g}x", k) : std::string("any speedup"));
  }
  throw BadInput(fmt::format("{} would take MFU from {:.1f}% to {:.1f}%, past the device's peak (100%): "
                             "from {:.1f}% MFU the step can get at most 1/{:.3g} = {:.4g}x faster, not {:.4g}x{} "
                             "(the other components {}). Lower --speedup/--speedups, or check the baseline --mfu",
                             what, 100 * base_mfu, 100 * base_mfu * speedup, 100 * base_mfu, base_mfu,
                             1 / base_mfu, speedup, limits, others));
}

// Ranks the changes for best_roi: improvement per engineer-week (0 for an uncosted change). With a
// baseline MFU this is the MFU points per week divided by 100 x MFU, so the order is the same with or
// without one.
double improvement_per_week(const ComponentOutcome& o) {
  return o.cost_weeks > 0 ? (o.alone_speedup - 1) / o.cost_weeks : 0;
}

std::vector<std::string> amdahl_trace(const AmdahlResult& r, double new_total) {
  std::vector<std::string> t;
  t.push_back(fmt::format("Amdahl: speedup = 1 / sum(f_i / k_i) = 1 / {:.4f} = {:.4f}x ({:+.1f}%)", new_total,
                          r.speedup, 100 * r.improvement));
  for (const auto& o : r.components) {
    if (o.speedup == 1) continue;
    std::string cost;
    if (o.cost_weeks > 0)
      cost = o.alone_roi ? fmt::format("; {:.1f} weeks -> {:.2f} MFU points/week", o.cost_weeks, *o.alone_roi)
                         : fmt::format("; {:.1f} weeks", o.cost_weeks);
    t.push_back(fmt::format("{}: {:.0f}% of the step x{:.2g} alone -> 1/((1-{:.2f}) + {:.2f}/{:.2g}) = {:.4f}x "
                            "({:+.1f}%), ceiling {:.3f}x{}", o.name, 100 * o.fraction, o.speedup, o.fraction,
                            o.fraction, o.speedup, o.alone_speedup, 100 * (o.alone_speedup - 1), o.limit_speedup,
                            cost));
  }
  if (r.base_mfu)
    t.push_back(fmt::format("MFU {:.1f}% -> {:.1f}% (same useful FLOPs in {:.1f}% of the time)", 100 * *r.base_mfu,
                            100 * *r.new_mfu, 100 / r.speedup));
  t.push_back("hotspot: " + r.hotspot + " (largest share of the step; optimize it first unless its cost says otherwise)");
  if (r.budget_weeks)
    t.push_back(fmt::format("budget: {:.1f} of {:.1f} engineer-weeks -> {}", r.total_cost_weeks, *r.budget_weeks,
                            r.within_budget ? "within budget" : "OVER BUDGET: defer the most expensive change"));
  return t;
}

}  // namespace

double largest_speedup_within_peak(const std::vector<ProfileComponent>& profile, size_t i, double base_mfu) {
  if (i >= profile.size()) throw BadInput("component index outside the profile");
  double others = 0;
  for (size_t j = 0; j < profile.size(); ++j)
    if (j != i) others += profile[j].fraction / profile[j].speedup;
  if (others >= base_mfu) return INFINITY;
  return profile[i].fraction / (base_mfu - others);
}

AmdahlResult amdahl_analysis(const std::vector<ProfileComponent>& profile, std::optional<double> base_mfu,
                             std::optional<double> budget_weeks) {
  check_inputs(profile, base_mfu, budget_weeks);
  std::vector<double> f, k;
  for (const auto& c : profile) {
    f.push_back(c.fraction);
    k.push_back(c.speedup);
  }
  AmdahlResult r;
  r.speedup = amdahl_speedup(f, k);  // validates fractions (sum to 1) and speedups (> 0)
  r.improvement = r.speedup - 1;
  if (base_mfu) {
    check_within_peak(profile, *base_mfu, r.speedup, "the speedups together", "as given");
    r.base_mfu = base_mfu;
    // The useful FLOPs per step are unchanged, so MFU scales with the step-time speedup.
    r.new_mfu = *base_mfu * r.speedup;
  }
  r.budget_weeks = budget_weeks;
  double new_total = 0;
  for (size_t i = 0; i < f.size(); ++i) new_total += f[i] / k[i];
  double best = -1, biggest = -1;
  for (size_t i = 0; i < profile.size(); ++i) {
    ComponentOutcome o;
    o.name = profile[i].name;
    o.fraction = f[i];
    o.speedup = k[i];
    o.cost_weeks = profile[i].cost_weeks;
    o.new_fraction = (f[i] / k[i]) / new_total;
    o.alone_speedup = amdahl_speedup(f[i], k[i]);
    if (base_mfu) {
      // Alone can exceed together when another component is slowed down (k < 1).
      std::vector<ProfileComponent> alone = profile;
      for (size_t j = 0; j < alone.size(); ++j)
        if (j != i) alone[j].speedup = 1;
      check_within_peak(alone, *base_mfu, o.alone_speedup, "'" + o.name + "' alone", "unchanged");
      o.alone_mfu = *base_mfu * o.alone_speedup;
      if (o.cost_weeks > 0) o.alone_roi = 100 * (*o.alone_mfu - *base_mfu) / o.cost_weeks;
    }
    o.limit_speedup = amdahl_limit(f[i]);
    r.total_cost_weeks += o.cost_weeks;
    if (f[i] > biggest) biggest = f[i], r.hotspot = o.name;
    if (k[i] != 1 && improvement_per_week(o) > best) best = improvement_per_week(o), r.best_roi = o.name;
    r.components.push_back(o);
  }
  r.within_budget = !budget_weeks || r.total_cost_weeks <= *budget_weeks + 1e-12;
  if (base_mfu && r.total_cost_weeks > 0) r.roi = 100 * (*r.new_mfu - *base_mfu) / r.total_cost_weeks;
  r.trace = amdahl_trace(r, new_total);
  return r;
}

std::vector<ProfileComponent> profile_from_training(const TrainingResult& r) {
  const double step = r.step_time.si();
  if (!(step > 0)) throw BadInput("training result has no step time");
  const double comm = (r.tp_comm_time + r.cp_comm_time + r.ep_comm_time + r.pp_comm_time + r.dp_exposed_time).si();
  const double bubble = r.bubble_time.si();
  const double compute = step - comm - bubble;
  std::vector<ProfileComponent> p;
  p.push_back({"compute", compute / step, 1, 0});
  if (comm > 0) p.push_back({"communication", comm / step, 1, 0});
  if (bubble > 0) p.push_back({"pipeline_bubble", bubble / step, 1, 0});
  return p;
}

double lab_pipeline_cost_weeks(int base, int now) { return 0.5 + std::max(0, now - base) * 0.1; }
double lab_allreduce_cost_weeks(double k) { return k == 1.0 ? 0.0 : 2.0 + (k - 1.0) * 1.5; }
double lab_data_loading_cost_weeks(int w) { return w <= 4 ? 0.0 : 1.0 + (w - 4) * 0.25; }

}  // namespace mlsysim
