// Flags for what running GPUs costs (`train`, `serve`): the facility's PUE, the grid's carbon
// intensity and the price of a GPU-hour, in the units people quote. Presentation only.
#pragma once

#include "command.hpp"
#include "mlsysim/solvers/run_outlook.hpp"

namespace mlsysim::cli {

struct OperatingCostFlags {
  double pue = kSurveyAveragePue;
  double grid_kg_per_kwh = kUsGridIntensity.si() * 3.6e6;
  double gpu_hour_usd = kDefaultGpuHourUsd;

  [[nodiscard]] OperatingCosts costs() const {
    return {.pue = pue, .grid_intensity = KgCO2ePerJoule(grid_kg_per_kwh / 3.6e6), .gpu_hour_usd = gpu_hour_usd};
  }
};

inline void add_operating_cost_flags(CLI::App* cmd, OperatingCostFlags& f) {
  cmd->add_option("--pue", f.pue, "Facility power usage effectiveness (default 1.58: Uptime Institute 2023)");
  cmd->add_option("--grid-kg-per-kwh", f.grid_kg_per_kwh,
                  "Grid carbon intensity, kg CO2 per kWh (default 0.390: U.S. 2022, EIA)");
  cmd->add_option("--gpu-hour-usd", f.gpu_hour_usd, "$ per GPU-hour (default 12.29: AWS p5 on-demand)");
}

}  // namespace mlsysim::cli
