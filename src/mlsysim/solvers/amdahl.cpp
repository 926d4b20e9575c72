#include "mlsysim/solvers/amdahl.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "mlsysim/errors.hpp"
#include "mlsysim/physics/scaling.hpp"

namespace mlsysim {

AmdahlResult amdahl_analysis(const std::vector<ProfileComponent>& profile, double base_mfu,
                             std::optional<double> budget_weeks) {
  if (profile.empty()) throw BadInput("the profile needs at least one component (name=fraction)");
  if (!(base_mfu >= 0 && base_mfu <= 1))
    throw BadInput(fmt::format("base MFU must be a fraction in [0, 1] (e.g. 0.35), got {}", base_mfu));
  if (budget_weeks && !(*budget_weeks >= 0)) throw BadInput("budget must be >= 0 engineer-weeks");
  std::vector<double> f, k;
  for (const auto& c : profile) {
    if (c.cost_weeks < 0) throw BadInput("engineering cost of '" + c.name + "' must be >= 0 weeks");
    f.push_back(c.fraction);
    k.push_back(c.speedup);
  }
  AmdahlResult r;
  r.speedup = amdahl_speedup(f, k);  // validates fractions (sum to 1) and speedups (> 0)
  r.improvement = r.speedup - 1;
  r.base_mfu = base_mfu;
  // The useful FLOPs per step are unchanged, so MFU scales with the step-time speedup.
  r.new_mfu = base_mfu * r.speedup;
  r.budget_weeks = budget_weeks;
  double new_total = 0;
  for (size_t i = 0; i < f.size(); ++i) new_total += f[i] / k[i];
  double best_roi = -1, biggest = -1;
  for (size_t i = 0; i < profile.size(); ++i) {
    ComponentOutcome o;
    o.name = profile[i].name;
    o.fraction = f[i];
    o.speedup = k[i];
    o.cost_weeks = profile[i].cost_weeks;
    o.new_fraction = (f[i] / k[i]) / new_total;
    o.alone_speedup = amdahl_speedup(f[i], k[i]);
    o.alone_mfu = base_mfu * o.alone_speedup;
    o.alone_roi = o.cost_weeks > 0 ? 100 * (o.alone_mfu - base_mfu) / o.cost_weeks : 0;
    o.limit_speedup = amdahl_limit(f[i]);
    r.total_cost_weeks += o.cost_weeks;
    if (f[i] > biggest) biggest = f[i], r.hotspot = o.name;
    if (k[i] != 1 && o.alone_roi > best_roi) best_roi = o.alone_roi, r.best_roi = o.name;
    r.components.push_back(o);
  }
  r.within_budget = !budget_weeks || r.total_cost_weeks <= *budget_weeks + 1e-12;
  r.roi = r.total_cost_weeks > 0 ? 100 * (r.new_mfu - base_mfu) / r.total_cost_weeks : 0;
  auto& t = r.trace;
  t.push_back(fmt::format("Amdahl: speedup = 1 / sum(f_i / k_i) = 1 / {:.4f} = {:.4f}x ({:+.1f}%)", new_total,
                          r.speedup, 100 * r.improvement));
  for (const auto& o : r.components)
    if (o.speedup != 1)
      t.push_back(fmt::format("{}: {:.0f}% of the step x{:.2g} alone -> 1/((1-{:.2f}) + {:.2f}/{:.2g}) = {:.4f}x "
                              "({:+.1f}%), ceiling {:.3f}x{}", o.name, 100 * o.fraction, o.speedup, o.fraction,
                              o.fraction, o.speedup, o.alone_speedup, 100 * (o.alone_speedup - 1),
                              o.limit_speedup,
                              o.cost_weeks > 0 ? fmt::format("; {:.1f} weeks -> {:.2f} MFU points/week",
                                                             o.cost_weeks, o.alone_roi) : ""));
  if (base_mfu > 0)
    t.push_back(fmt::format("MFU {:.1f}% -> {:.1f}% (same useful FLOPs in {:.1f}% of the time)", 100 * base_mfu,
                            100 * r.new_mfu, 100 / r.speedup));
  t.push_back("hotspot: " + r.hotspot + " (largest share of the step; optimize it first unless its cost says otherwise)");
  if (budget_weeks)
    t.push_back(fmt::format("budget: {:.1f} of {:.1f} engineer-weeks -> {}", r.total_cost_weeks, *budget_weeks,
                            r.within_budget ? "within budget" : "OVER BUDGET: defer the most expensive change"));
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
