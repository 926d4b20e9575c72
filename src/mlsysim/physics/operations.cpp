#include "mlsysim/physics/operations.hpp"

#include <cmath>

#include <fmt/format.h>

#include "mlsysim/errors.hpp"

namespace mlsysim {

void check_operating_costs(const OperatingCosts& c) {
  if (!(c.gpu_hour_usd > 0) || !std::isfinite(c.gpu_hour_usd))
    throw BadInput(fmt::format("--gpu-hour-usd must be > 0, got {} (e.g. 6.88, AWS p5 on-demand per H100)",
                               c.gpu_hour_usd));
  if (!(c.pue >= 1.0) || !(c.pue <= 3.0))
    throw BadInput(fmt::format("--pue must be in [1, 3] (total facility power / IT power), got {}", c.pue));
  if (!(c.grid_intensity.si() >= 0) || !std::isfinite(c.grid_intensity.si()))
    throw BadInput("--grid-kg-per-kwh must be >= 0 (kg CO2 per kWh; U.S. 2022 average 0.390)");
}

OperatingCosts priced_for(OperatingCosts costs, const HardwareSpec& hw) {
  if (hw.rental_hour) {
    costs.gpu_hour_usd = hw.rental_hour->si();
    costs.gpu_hour_source = hw.rental_note;
  } else {
    costs.gpu_hour_usd = kDefaultGpuHourUsd;
    costs.gpu_hour_source = fmt::format("the catalog lists no cloud rental for {}: an H100's on AWS p5 is used; "
                                        "--gpu-hour-usd gives yours",
                                        hw.id);
  }
  return costs;
}

Seconds cluster_mtbf(Seconds per_gpu_mtbf, double gpus) { return per_gpu_mtbf / gpus; }

double failure_probability(Seconds duration, Seconds mtbf) { return -std::expm1(-(duration / mtbf).si()); }

Seconds young_interval(Seconds checkpoint_cost, Seconds mtbf) {
  return Seconds(std::sqrt(2.0 * checkpoint_cost.si() * mtbf.si()));
}

Seconds daly_interval(Seconds checkpoint_cost, Seconds mtbf) {
  const double delta = checkpoint_cost.si(), m = mtbf.si();
  if (delta >= 2.0 * m) return mtbf;
  const double x = delta / (2.0 * m);
  return Seconds(std::sqrt(2.0 * delta * m) * (1.0 + std::sqrt(x) / 3.0 + x / 9.0) - delta);
}

Seconds daly_wall_time(Seconds work, Seconds interval, Seconds checkpoint_cost, Seconds restart, Seconds mtbf) {
  const double m = mtbf.si(), tau = interval.si();
  return Seconds(m * std::exp(restart.si() / m) * std::expm1((tau + checkpoint_cost.si()) / m) * work.si() / tau);
}

Joules facility_energy(Joules it_energy, double pue) { return it_energy * pue; }

KgCO2e operational_emissions(Joules facility_energy, KgCO2ePerJoule grid_intensity) {
  return facility_energy * grid_intensity;
}

}  // namespace mlsysim
