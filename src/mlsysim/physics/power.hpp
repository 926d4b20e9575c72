#pragma once
// Board power of one accelerator as a fraction of its TDP (the board power limit): while it waits
// between kernels, and while a kernel body runs. Sources, the choice of the three coefficients and
// the held-out check: docs/PHYSICS.md, "Power"; validation/points/power.toml.
namespace mlsysim {

// Memory, math and floor shares of a kernel body's board power, in units of the TDP.
struct PowerCoefficients {
  double idle = 0, memory = 0, compute = 0;
};
PowerCoefficients power_coefficients();

// The floor: a GPU with a live context and no kernel running (launch gaps, bubbles, waits).
double idle_power_fraction();

// While a kernel body runs: the floor, plus the memory term times the share of the body its memory
// traffic fills (t_memory / t_body), plus the compute term times the share its math fills
// (t_compute / t_body), capped at 1: the power limit, where compute-bound kernels sit.
double body_power_fraction(double memory_share, double compute_share);

}  // namespace mlsysim
