#include "mlsysim/physics/operations.hpp"

#include <cmath>

namespace mlsysim {

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
