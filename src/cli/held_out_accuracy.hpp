// How far predictions of one kind are from reality: the held-out validation points (validation/)
// of a category and runtime group, re-predicted with the current engine, so the figure always
// describes the binary that prints it. Used by `solve` to put an error bar beside its answer.
#pragma once

#include <optional>
#include <string>

#include "mlsysim/solvers/accuracy.hpp"

namespace mlsysim::cli {

// Runtime groups, as `mlsysim validate` splits its summary.
inline constexpr const char* kEagerGroup = "eager";
inline constexpr const char* kGraphGroup = "graph/engine";

struct HeldOutAccuracy {
  std::string category;  // decode, prefill, inference, training
  std::string runtime;   // kEagerGroup, kGraphGroup, or "all runtimes" when too few points match
  ErrorSummary errors;   // signed-error summary over the matching held-out points
};

// Empty when the category has no scored point.
std::optional<HeldOutAccuracy> held_out_accuracy(const std::string& category, const std::string& runtime);

}  // namespace mlsysim::cli
