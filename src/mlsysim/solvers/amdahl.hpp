// Profile-guided Amdahl analysis (`mlsysim amdahl`; the performance-engineering lab): a step-time
// profile (components with fractions), a speedup and an engineering cost per component ->
// end-to-end speedup (multi-component Amdahl), new MFU, ROI per engineer-week, budget check and
// the hotspot. A profile can come from a `train` run's breakdown.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "mlsysim/solvers/training.hpp"

namespace mlsysim {

struct ProfileComponent {
  std::string name;
  double fraction = 0;     // of the step time; all components sum to 1
  double speedup = 1;      // k_i applied to this component
  double cost_weeks = 0;   // engineering cost of that speedup
};

// The largest speedup factor (and smallest slowdown, its inverse) one component may be given. Past a
// million times the component is, to every printed digit, free: its ceiling 1/(1-f) (the `limit`
// below) is the answer, and larger factors only overflow the arithmetic (k = 1e308 printed +inf%).
inline constexpr double kMaxComponentSpeedup = 1e6;

struct ComponentOutcome {
  std::string name;
  double fraction = 0, new_fraction = 0, speedup = 1, cost_weeks = 0;
  double alone_speedup = 1;       // end-to-end speedup if only this component changes
  std::optional<double> alone_mfu;  // MFU with only this change (a baseline MFU given)
  std::optional<double> alone_roi;  // MFU points per engineer-week for this change alone (MFU and cost)
  double limit_speedup = 1;       // 1 / (1 - f): this component made free
};

struct AmdahlResult {
  std::vector<ComponentOutcome> components;
  double speedup = 1;             // all changes together: 1 / sum(f_i / k_i)
  double improvement = 0;         // speedup - 1
  std::optional<double> base_mfu, new_mfu;  // only with a baseline MFU
  double total_cost_weeks = 0;
  std::optional<double> budget_weeks;
  bool within_budget = true;
  std::optional<double> roi;      // MFU points per engineer-week, all changes together (MFU and cost)
  std::string hotspot;            // the largest fraction
  std::string best_roi;           // the change with the most improvement (MFU points) per week
  std::vector<std::string> trace;
};

// base_mfu (optional): the baseline's model-FLOPs utilization in (0, 1]. MFU scales with the
// speedup, so a projection past 1 (faster than the device's peak) is impossible: BadInput gives the
// largest speedup of each changed component that keeps it at or below 100%.
AmdahlResult amdahl_analysis(const std::vector<ProfileComponent>& profile, std::optional<double> base_mfu,
                             std::optional<double> budget_weeks = std::nullopt);

// The largest speedup of component `i` (the others as given) that keeps base_mfu x speedup <= 1:
// sum_{j != i} f_j/k_j + f_i/k_i >= base_mfu  ->  k_i <= f_i / (base_mfu - sum_{j != i} f_j/k_j);
// infinity when the other components alone keep the projection at or below peak.
double largest_speedup_within_peak(const std::vector<ProfileComponent>& profile, size_t i, double base_mfu);

// The four-way profile of a training run: compute (incl. optimizer and stragglers), communication
// (exposed TP/CP/EP/PP/DP), pipeline bubble; fractions of its step time.
std::vector<ProfileComponent> profile_from_training(const TrainingResult& r);

// The lab's engineering-cost model (performance-engineering lab, Act II):
//   pipeline micro-batches: 0.5 + 0.1 per micro-batch above the baseline (weeks);
//   AllReduce compression k: 0 if k = 1 else 2.0 + 1.5 (k - 1);
//   data prefetch workers w: 0 if w <= 4 else 1.0 + 0.25 (w - 4).
double lab_pipeline_cost_weeks(int base_micro_batches, int new_micro_batches);
double lab_allreduce_cost_weeks(double compression);
double lab_data_loading_cost_weeks(int workers);

}  // namespace mlsysim
