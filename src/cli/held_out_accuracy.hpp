// How far predictions of one kind are from reality: the held-out validation points (validation/)
// of a category and runtime group, re-predicted with the current engine, so the figure always
// describes the binary that prints it. Used by `solve`, `train`, `serve`, `collective` and attention
// `kernel` tables to put an error bar beside their answer.
#pragma once

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "mlsysim/solvers/accuracy.hpp"

namespace mlsysim::cli {

// Runtime groups, as `mlsysim validate` splits its summary.
inline constexpr const char* kEagerGroup = "eager";
inline constexpr const char* kGraphGroup = "graph/engine";

struct HeldOutAccuracy {
  std::string category;  // a validation category: decode, prefill, serving, training, collective, ...
  std::string runtime;   // kEagerGroup, kGraphGroup, or "all runtimes" when too few points match
  ErrorSummary errors;   // signed-error summary over the matching held-out points
  // The device asked about, and whether the figure is over its own points: a device's error can be
  // far from the category's (a published-microbenchmark calibration, an immature software stack), so
  // it is used whenever the device has enough points, and said plainly when it has none.
  std::string hardware;
  bool on_hardware = false;
  int hardware_points = 0;  // scored points of this category and runtime on that device
};

// Empty when the category has no scored point. With `hardware` (a catalog device id), the figure
// is over that device's points of the category and runtime when there are at least 3. Points that
// run a search (simulate --find-max-rate, seconds each) are left out, so the figure can differ a
// little from validate's for the category.
std::optional<HeldOutAccuracy> held_out_accuracy(const std::string& category, const std::string& runtime,
                                                 const std::string& hardware = "");

// The JSON object `--accuracy` adds (field `accuracy`).
inline nlohmann::ordered_json accuracy_json(const HeldOutAccuracy& a) {
  return {{"category", a.category},
          {"runtime", a.runtime},
          {"hardware", a.on_hardware ? nlohmann::ordered_json(a.hardware) : nlohmann::ordered_json()},
          {"points", a.errors.count},
          {"median_abs_error", a.errors.median_abs},
          {"p90_abs_error", a.errors.p90_abs},
          {"mean_signed_error", a.errors.mean_signed},
          {"median_signed_error", a.errors.median_signed},
          {"how", fmt::format("mlsysim validate --category {}{}", a.category, a.on_hardware ? " --by hardware" : "")}};
}

// The line a table ends with.
inline std::string accuracy_line(const HeldOutAccuracy& a) {
  std::string line = fmt::format(
      "Held-out error of {} predictions{} ({}): median {:.1f}%, p90 {:.1f}%, bias {:+.1f}% (median signed) "
      "over {} measured points (mlsysim validate --category {}{}).\n",
      a.category, a.on_hardware ? " on " + a.hardware : std::string(), a.runtime, 100 * a.errors.median_abs,
      100 * a.errors.p90_abs, 100 * a.errors.median_signed, a.errors.count, a.category,
      a.on_hardware ? " --by hardware" : "");
  if (!a.hardware.empty() && !a.on_hardware)
    line += a.hardware_points == 0
                ? fmt::format("No held-out {} point ({}) is on {}: that error is other devices'.\n", a.category,
                              a.runtime, a.hardware)
                : fmt::format("Only {} held-out {} point(s) ({}) on {}: too few for their own figure.\n",
                              a.hardware_points, a.category, a.runtime, a.hardware);
  return line;
}

// That line for a category (and device), or nothing when it has no scored point.
inline std::string accuracy_line_for(const std::string& category, const std::string& runtime,
                                     const std::string& hardware = "") {
  const auto a = held_out_accuracy(category, runtime, hardware);
  return a ? accuracy_line(*a) : std::string();
}

}  // namespace mlsysim::cli
