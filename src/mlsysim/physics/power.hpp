#pragma once

#include "mlsysim/units/quantity.hpp"
// Board power of one accelerator as a fraction of its TDP (the board power limit): while it waits
// between kernels, and while a kernel body runs. Sources, the choice of the three default
// coefficients and the held-out check: docs/PHYSICS.md, "Power"; validation/points/power.toml.
namespace mlsysim {

struct HardwareSpec;

// Floor, memory and compute shares of a kernel body's board power, in units of the TDP.
struct PowerCoefficients {
  double idle = 0, memory = 0, compute = 0;
};
// The published defaults (physics/power.cpp).
PowerCoefficients default_power_coefficients();
// A device's own, where `mlsysim calibrate` measured them (EfficiencyProfile::power_*), else the
// defaults, field by field.
PowerCoefficients power_coefficients(const HardwareSpec& hw);

// The board power a device draws idle (context held), through a memory-bound kernel body and
// through a compute-bound one, and whether they are its own (`calibrate` board_power) or the defaults.
struct BoardPowerLevels {
  units::Watts idle{}, memory_bound{}, compute_bound{};
  bool calibrated = false;
};
BoardPowerLevels board_power_levels(const HardwareSpec& hw);

// While a kernel body runs: the floor, plus the memory term times the share of the body its memory
// traffic fills (t_memory / t_body), plus the compute term times the share its math fills
// (t_compute / t_body), capped at 1: the power limit, where compute-bound kernels sit.
double body_power_fraction(const PowerCoefficients& c, double memory_share, double compute_share);

}  // namespace mlsysim
