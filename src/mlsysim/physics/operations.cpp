#include "mlsysim/physics/operations.hpp"

#include <cmath>

#include <fmt/format.h>

#include "mlsysim/errors.hpp"

namespace mlsysim {

namespace {
// Above this the number is not a grid: none emits more than a coal plant's ~1 kg CO2 per kWh
// (IPCC AR5 WG3 Annex III, lifecycle median 0.82). A GPU-hour's bound is the catalog's,
// kMostDeviceHourUsd.
constexpr double kMostGridKgPerKwh = 2;
}  // namespace

void check_operating_costs(const OperatingCosts& c) {
  const double per_hour = units::in_usd_per_hour(c.gpu_rate);
  if (!(per_hour > 0) || !(per_hour <= kMostDeviceHourUsd))
    throw BadInput(fmt::format("--gpu-hour-usd must be in (0, {:g}] dollars per GPU-hour, got {:g} (e.g. 6.88, AWS p5 "
                               "on-demand per H100; for a node's or a rack's price, divide by its GPUs)",
                               kMostDeviceHourUsd, per_hour));
  if (!(c.pue >= 1.0) || !(c.pue <= 3.0))
    throw BadInput(fmt::format("--pue must be in [1, 3] (total facility power / IT power), got {}", c.pue));
  const double kg_per_kwh = c.grid_intensity.si() * 3.6e6;
  if (!(kg_per_kwh >= 0) || !(kg_per_kwh <= kMostGridKgPerKwh))
    throw BadInput(fmt::format("--grid-kg-per-kwh must be in [0, {:g}] kg CO2 per kWh, got {:g} (U.S. 2022 average "
                               "0.390; a coal plant ~1)",
                               kMostGridKgPerKwh, kg_per_kwh));
}

OperatingCosts priced_for(OperatingCosts costs, const HardwareSpec& hw) {
  if (hw.rental_rate) {
    costs.gpu_rate = *hw.rental_rate;
    costs.gpu_rate_source = hw.rental_note;
  } else {
    costs.gpu_rate = kDefaultGpuRate;
    costs.gpu_rate_source = fmt::format("the catalog lists no cloud rental for {}: an H100's on AWS p5 is used; "
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
