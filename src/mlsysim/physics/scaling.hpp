// Scaling laws of parallel speedup and synchronous stragglers.
#pragma once

#include <vector>

namespace mlsysim {

// Amdahl 1967: a fraction f of the time sped up k times: S = 1 / ((1 - f) + f / k).
double amdahl_speedup(double fraction, double speedup);
// Multi-component Amdahl: S = 1 / sum_i(f_i / k_i), the f_i summing to 1 (checked to 1e-6).
double amdahl_speedup(const std::vector<double>& fractions, const std::vector<double>& speedups);
// Upper bound when the component becomes free: 1 / (1 - f).
double amdahl_limit(double fraction);
// Gustafson 1988 (scaled speedup, the problem grows with the machine): S = k - f_serial (k - 1).
double gustafson_speedup(double serial_fraction, int processors);

// Expected maximum of n i.i.d. standard normal draws, Blom's approximation
// z_n = Phi^-1((n - 0.375) / (n + 0.25)) (Blom 1958; Harter 1961 tables agree to ~1%).
double expected_max_standard_normal(int n);
// Synchronous step slowdown from per-GPU variability (the step waits for the slowest of n GPUs):
//  normal:    1 + cv x z_n            (per-GPU time ~ N(1, cv^2))
//  lognormal: exp(sigma x z_n)         (per-GPU time ~ LogNormal(0, sigma^2); max is monotone)
double straggler_factor_normal(int n, double cv);
double straggler_factor_lognormal(int n, double sigma);

}  // namespace mlsysim
