// Flags for what running GPUs costs (`train`, `serve`): the facility's PUE, the grid's carbon
// intensity and the price of a GPU-hour, in the units people quote. Presentation only.
#pragma once

#include <optional>

#include "command.hpp"
#include "mlsysim/solvers/run_outlook.hpp"

namespace mlsysim::cli {

struct OperatingCostFlags {
  double pue = kSurveyAveragePue;
  double grid_kg_per_kwh = kUsGridIntensity.si() * 3.6e6;
  std::optional<double> gpu_hour_usd;  // absent: the device's catalog rental (priced_for)

  // The costs of running `hw`: --gpu-hour-usd where given, else the device's own rental rate.
  [[nodiscard]] OperatingCosts costs(const HardwareSpec& hw) const {
    OperatingCosts c = priced_for({}, hw);
    c.pue = pue;
    c.grid_intensity = KgCO2ePerJoule(grid_kg_per_kwh / 3.6e6);
    if (gpu_hour_usd) {
      c.gpu_rate = units::usd_per_hour(*gpu_hour_usd);
      c.gpu_rate_source = "--gpu-hour-usd";
    }
    return c;
  }
};

inline void add_operating_cost_flags(CLI::App* cmd, OperatingCostFlags& f) {
  cmd->add_option("--pue", f.pue, "Facility power usage effectiveness (default 1.58: Uptime Institute 2023)");
  cmd->add_option("--grid-kg-per-kwh", f.grid_kg_per_kwh,
                  "Grid carbon intensity, kg CO2 per kWh (default 0.390: U.S. 2022, EIA)");
  cmd->add_option("--gpu-hour-usd", f.gpu_hour_usd,
                  "$ per GPU-hour (default: the device's on-demand cloud rental from the catalog, e.g. 6.88 for an "
                  "H100 on AWS p5; devices no cloud rents get the H100's)");
}

}  // namespace mlsysim::cli
