#include "mlsysim/catalog/validation.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "mlsysim/catalog/embedded.hpp"
#include "mlsysim/catalog/toml_files.hpp"
#include "mlsysim/errors.hpp"

namespace mlsysim {
namespace {

void parse_points(std::string_view text, const std::string& origin,
                  std::vector<ValidationPoint>& out) {
  const toml::table doc = parse_toml(text, origin);
  auto* points = doc["point"].as_array();
  if (!points) return;
  size_t row = 0;
  for (auto& node : *points) {
    ++row;
    auto* t = node.as_table();
    if (!t) continue;
    ValidationPoint p;
    p.id = (*t)["id"].value_or(std::string());
    p.category = (*t)["category"].value_or(std::string());
    p.description = (*t)["description"].value_or(std::string());
    p.command = (*t)["command"].value_or(std::string());
    p.metric = (*t)["metric"].value_or(std::string());
    p.measured = (*t)["measured"].value_or(0.0);
    p.source = (*t)["source"].value_or(std::string());
    p.framework = (*t)["framework"].value_or(std::string());
    p.notes = (*t)["notes"].value_or(std::string());
    p.used_for_calibration = (*t)["used_for_calibration"].value_or(false);
    p.confidence = (*t)["confidence"].value_or(std::string("medium"));
    const std::string where = origin + " point " + std::to_string(row) + (p.id.empty() ? "" : " (" + p.id + ")");
    if (p.id.empty() || p.command.empty() || p.metric.empty())
      throw BadInput(where + ": id, command and metric are required");
    if (!(p.measured > 0) || !std::isfinite(p.measured))
      throw BadInput(where + ": measured must be a positive, finite number (SI units)");
    if (p.source.empty()) throw BadInput(where + ": every point needs its source");
    if (p.confidence != "high" && p.confidence != "medium" && p.confidence != "low")
      throw BadInput(where + ": confidence must be high, medium or low");
    out.push_back(std::move(p));
  }
}

}  // namespace

std::vector<ValidationPoint> load_validation_points(const std::string& dir) {
  std::vector<ValidationPoint> points;
  if (dir.empty()) {
    for (size_t i = 0; i < kEmbeddedValidationCount; ++i)
      parse_points(kEmbeddedValidation[i].text, std::string("validation/points/") + kEmbeddedValidation[i].path,
                   points);
  } else {
    for (const auto& [path, text] : read_toml_dir(dir, "--points")) parse_points(text, path, points);
  }
  std::set<std::string> ids;
  for (const auto& p : points)
    if (!ids.insert(p.id).second) throw BadInput("duplicate validation point id '" + p.id + "'");
  return points;
}

}  // namespace mlsysim
