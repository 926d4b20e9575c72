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
};

// Empty when the category has no scored point.
std::optional<HeldOutAccuracy> held_out_accuracy(const std::string& category, const std::string& runtime);

// The JSON object `--accuracy` adds (field `accuracy`).
inline nlohmann::ordered_json accuracy_json(const HeldOutAccuracy& a) {
  return {{"category", a.category},
          {"runtime", a.runtime},
          {"points", a.errors.count},
          {"median_abs_error", a.errors.median_abs},
          {"p90_abs_error", a.errors.p90_abs},
          {"mean_signed_error", a.errors.mean_signed},
          {"median_signed_error", a.errors.median_signed},
          {"how", fmt::format("mlsysim validate --category {}", a.category)}};
}

// The line a table ends with.
inline std::string accuracy_line(const HeldOutAccuracy& a) {
  return fmt::format(
      "Held-out error of {} predictions ({}): median {:.1f}%, p90 {:.1f}%, bias {:+.1f}% (median signed) "
      "over {} measured points (mlsysim validate --category {}).\n",
      a.category, a.runtime, 100 * a.errors.median_abs, 100 * a.errors.p90_abs,
      100 * a.errors.median_signed, a.errors.count, a.category);
}

// That line for a category, or nothing when it has no scored point.
inline std::string accuracy_line_for(const std::string& category, const std::string& runtime) {
  const auto a = held_out_accuracy(category, runtime);
  return a ? accuracy_line(*a) : std::string();
}

}  // namespace mlsysim::cli
