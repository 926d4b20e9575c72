// Rendering for the command line: human tables, JSON and CSV. Pure presentation: every number
// printed here was computed by the engine.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/solvers/engine.hpp"

namespace mlsysim::cli {

enum class Format { Table, Json, Csv };

nlohmann::ordered_json profile_json(const Profile& p);
std::string profile_table(const Profile& p, bool show_operators);
std::string profile_csv(const Profile& p);

nlohmann::ordered_json hardware_json(const HardwareSpec& hw);
nlohmann::ordered_json model_json(const ModelSpec& m);
std::string hardware_list(const Catalog& c, Format f, const std::string& tier);
std::string hardware_show(const HardwareSpec& hw, Format f);
std::string model_list(const Catalog& c, Format f);
std::string model_show(const ModelSpec& m, Format f);

// CSV from flat JSON objects (one row each, columns from the first object).
std::string csv_from_rows(const nlohmann::ordered_json& rows);

}  // namespace mlsysim::cli
