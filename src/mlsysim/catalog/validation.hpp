// Published real measurements used to validate predictions (validation/points/*.toml, compiled
// into the binary). Each point is reproducible as one mlsysim command.
#pragma once

#include <string>
#include <vector>

namespace mlsysim {

struct ValidationPoint {
  std::string id, category, description;
  std::string command;  // mlsysim arguments, e.g. "solve --model llama3-8b --hardware h100 ..."
  std::string metric;   // JSON field of the command's output compared with `measured`
  double measured = 0;  // SI units
  std::string source, framework, notes;
  bool used_for_calibration = false;
  // high | medium | low: how exactly the published configuration maps onto the command
  // (low: e.g. an unpublished batch size replaced by a placeholder). Low points are shown but not
  // scored unless asked.
  std::string confidence = "medium";
};

// The built-in points, or every *.toml under `dir` when it is not empty.
std::vector<ValidationPoint> load_validation_points(const std::string& dir = "");

}  // namespace mlsysim
