#include "mlsysim/physics/fabric_calibration.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "mlsysim/errors.hpp"
#include "mlsysim/physics/calibration.hpp"

namespace mlsysim {
namespace {

std::optional<CollectiveOp> op_from_binary_name(std::string_view text) {
  // The nccl-tests binaries, as they appear in the command line a log usually starts with.
  static const std::pair<const char*, CollectiveOp> kBinaries[] = {
      {"all_reduce_perf", CollectiveOp::AllReduce},         {"all_gather_perf", CollectiveOp::AllGather},
      {"reduce_scatter_perf", CollectiveOp::ReduceScatter}, {"alltoall_perf", CollectiveOp::AllToAll},
      {"sendrecv_perf", CollectiveOp::PointToPoint}};
  for (const auto& [name, op] : kBinaries)
    if (text.find(name) != std::string_view::npos) return op;
  return std::nullopt;
}

std::optional<double> number(const std::string& token) {
  char* end = nullptr;
  const double v = std::strtod(token.c_str(), &end);
  if (end == token.c_str() || *end != '\0' || !std::isfinite(v)) return std::nullopt;
  return v;
}

// One data row: "size count type redop root time algbw busbw #wrong time algbw busbw #wrong"
// (nccl-tests 2.x); older releases print no root column. The out-of-place time comes first. A
// line that is not a data row gives nothing; a data row whose time is not a positive number
// (nan, -1, 0) is refused with its line, rather than silently fitting one row fewer.
std::optional<CollectiveSample> parse_row(const std::vector<std::string>& t, const std::string& where) {
  if (t.size() < 8) return std::nullopt;
  const auto size = number(t[0]);
  if (!size || *size <= 0 || number(t[2]) || number(t[3])) return std::nullopt;  // type, redop are words
  const size_t time_column = t.size() >= 13 ? 5 : 4;
  const auto us = number(t[time_column]);
  if (!us || *us <= 0)
    throw BadInput(fmt::format("{}: the out-of-place time of the {:.0f}-byte row must be a positive number of "
                               "microseconds, got '{}' (drop the row, or rerun that size)",
                               where, *size, t[time_column]));
  return CollectiveSample{Bytes(*size), microseconds(*us)};
}

struct GridPoint {
  double alpha_s = 0, efficiency = 1, cost = INFINITY;
};

}  // namespace

NcclTestsLog parse_nccl_tests(std::string_view text, const std::string& origin) {
  NcclTestsLog log;
  log.op = op_from_binary_name(text);
  std::istringstream in{std::string(text)};
  std::string line;
  for (int line_number = 1; std::getline(in, line); ++line_number) {
    std::istringstream words(line);
    std::vector<std::string> t;
    for (std::string w; words >> w;) t.push_back(w);
    if (t.empty()) continue;
    if (t[0] == "#") {
      if (t.size() > 2 && t[1] == "Rank") ++log.ranks;
      continue;
    }
    if (auto s = parse_row(t, fmt::format("{} line {}", origin, line_number))) log.samples.push_back(*s);
  }
  if (log.samples.size() < 2)
    throw BadInput(origin + ": found " + std::to_string(log.samples.size()) +
                   " nccl-tests result rows (size count type redop [root] time algbw busbw ...); need at "
                   "least 2 message sizes: run e.g. all_reduce_perf -b 8 -e 8G -f 2");
  return log;
}

Cluster apply_fabric_fit(Cluster cluster, const FabricFit& fit) {
  Fabric& f = fit.scale_out ? cluster.scale_out : cluster.scale_up;
  f.latency = fit.latency;
  f.collective_efficiency = fit.efficiency;
  if (f.in_network_reduction) f.in_network_efficiency = fit.in_network_efficiency;
  f.in_network_latency = fit.in_network_latency;
  f.small_message_latency = fit.small_message_latency;
  f.small_message_efficiency = fit.small_message_efficiency;
  return cluster;
}

namespace {

// Least squares in log time of the engine's collective model over `rows`, as the fabric's
// (alpha, efficiency) pair moves: a log grid of alpha (0 and 0.1 us .. 10 ms, every 12%) times
// efficiency (0.01 .. 1, every 0.01), then a 41 x 41 grid over the best cell's neighbours.
// `cluster_for(alpha, efficiency)` builds the cluster to evaluate.
template <class ClusterFor>
GridPoint least_squares_alpha_efficiency(const std::vector<CollectiveSample>& rows, CollectiveOp op,
                                         const GroupPlacement& group, Algorithm algorithm,
                                         ClusterFor cluster_for) {
  auto cost = [&](double alpha_s, double efficiency) {
    const Cluster c = cluster_for(alpha_s, efficiency);
    double sum = 0;
    for (const auto& s : rows) {
      const double r = std::log(collective_time(op, s.message, group, c, algorithm).time / s.time);
      sum += r * r;
    }
    return sum;
  };
  auto search = [&](double alpha_lo, double alpha_hi, int alpha_steps, double eff_lo, double eff_hi,
                    int eff_steps, bool with_zero_alpha) {
    GridPoint best;
    auto consider = [&](double a, double e) {
      const double c = cost(a, e);
      if (c < best.cost) best = {a, e, c};
    };
    for (int j = 0; j < eff_steps; ++j) {
      const double e = eff_lo + (eff_hi - eff_lo) * j / (eff_steps - 1);
      if (with_zero_alpha) consider(0.0, e);
      for (int i = 0; i < alpha_steps; ++i)
        consider(alpha_lo * std::pow(alpha_hi / alpha_lo, static_cast<double>(i) / (alpha_steps - 1)), e);
    }
    return best;
  };
  constexpr double kAlphaLo = 1e-7, kAlphaHi = 1e-2, kEffLo = 0.01, kEffHi = 1.0;
  constexpr int kAlphaSteps = 101, kEffSteps = 100;
  const GridPoint coarse = search(kAlphaLo, kAlphaHi, kAlphaSteps, kEffLo, kEffHi, kEffSteps, true);
  const double alpha_cell = std::pow(kAlphaHi / kAlphaLo, 1.0 / (kAlphaSteps - 1));
  const double eff_cell = (kEffHi - kEffLo) / (kEffSteps - 1);
  const double a0 = coarse.alpha_s > 0 ? coarse.alpha_s : kAlphaLo;
  const GridPoint fine =
      search(a0 / alpha_cell, a0 * alpha_cell, 41, std::max(kEffLo / 2, coarse.efficiency - eff_cell),
             std::min(kEffHi, coarse.efficiency + eff_cell), 41, coarse.alpha_s == 0);
  return fine.cost < coarse.cost ? fine : coarse;
}

// The fit's record: its smallest bandwidth-regime size and its error over `scored` rows.
void record_fit_quality(FabricFit& fit, const std::vector<CollectiveSample>& bulk_rows,
                        const std::vector<CollectiveSample>& scored, CollectiveOp op,
                        const GroupPlacement& group, const Cluster& cluster, Algorithm algorithm) {
  fit.samples_used = static_cast<int>(bulk_rows.size());
  fit.smallest_used = bulk_rows.front().message;
  for (const auto& s : bulk_rows) fit.smallest_used = min(fit.smallest_used, s.message);
  std::vector<double> errors;
  const Cluster fitted = apply_fabric_fit(cluster, fit);
  for (const auto& s : scored)
    errors.push_back(std::abs(collective_time(op, s.message, group, fitted, algorithm).time / s.time - 1));
  fit.median_abs_error = median(errors);
  fit.max_abs_error = *std::max_element(errors.begin(), errors.end());
}

}  // namespace

FabricFit fit_fabric(const std::vector<CollectiveSample>& samples, CollectiveOp op, const GroupPlacement& group,
                     const Cluster& cluster, Algorithm algorithm) {
  if (group.size < 2) throw BadInput("fabric calibration: the collective must span at least 2 ranks");
  FabricFit fit;
  fit.scale_out = group.nodes > 1;
  const Fabric& original = fit.scale_out ? cluster.scale_out : cluster.scale_up;
  fit.latency = original.latency;
  fit.efficiency = original.collective_efficiency;
  fit.in_network_efficiency = original.in_network_efficiency;
  fit.in_network_latency = original.in_network_latency;
  fit.small_message_latency = original.small_message_latency;
  fit.small_message_efficiency = original.small_message_efficiency;
  if (algorithm == Algorithm::InNetwork && !original.in_network_reduction)
    throw BadInput(fmt::format("fabric calibration: {} has no in-network reduction (NVLS/SHARP) to fit; "
                               "use --algorithm auto or ring", original.id));
  // Auto: in-network reduction (NVLS/SHARP) keeps its ratio to the ring efficiency, one scale
  // factor moves both, so each fit stays two-dimensional. A named algorithm leaves it alone.
  const bool scale_in_network = algorithm == Algorithm::Auto && original.in_network_reduction;
  auto in_network_for = [&](double efficiency) {
    if (!original.in_network_reduction) return 0.0;
    if (!scale_in_network) return original.in_network_efficiency;
    return std::min(1.0, efficiency * original.in_network_efficiency / original.collective_efficiency);
  };

  // The bandwidth regime: rows whose bus bandwidth reaches kBandwidthRegimeShare of the best.
  const double factor = bus_bandwidth_factor(op, group.size);
  double best_busbw = 0;
  for (const auto& s : samples) best_busbw = std::max(best_busbw, s.message.si() * factor / s.time.si());
  std::vector<CollectiveSample> bulk_rows, small_rows;
  for (const auto& s : samples)
    (s.message.si() * factor / s.time.si() >= kBandwidthRegimeShare * best_busbw ? bulk_rows : small_rows)
        .push_back(s);
  if (bulk_rows.size() < 2)
    throw BadInput("fabric calibration: fewer than 2 rows reach " +
                   fmt::format("{:.0f}%", 100 * kBandwidthRegimeShare) +
                   " of the best bus bandwidth; measure up to larger messages (e.g. -e 8G)");

  if (algorithm == Algorithm::InNetwork) {
    // The in-network pair (fixed cost, efficiency) over the bandwidth-regime rows; the ring's
    // figures stay as they were.
    auto in_network = [&](double fixed_s, double efficiency) {
      FabricFit f = fit;
      f.in_network_latency = Seconds(std::max(fixed_s, 1e-9));
      f.in_network_efficiency = efficiency;
      return f;
    };
    const GridPoint g = least_squares_alpha_efficiency(bulk_rows, op, group, algorithm, [&](double a, double e) {
      return apply_fabric_fit(cluster, in_network(a, e));
    });
    fit = in_network(g.alpha_s, g.efficiency);
    fit.in_network_fit = true;
    record_fit_quality(fit, bulk_rows, bulk_rows, op, group, cluster, algorithm);
    return fit;
  }

  // Stage 1: the bulk protocol, one protocol only.
  auto bulk = [&](double alpha_s, double efficiency) {
    FabricFit f = fit;
    f.small_message_latency = Seconds(0);  // one protocol in this stage
    f.small_message_efficiency = 0;
    f.latency = Seconds(alpha_s);
    f.efficiency = efficiency;
    f.in_network_efficiency = in_network_for(efficiency);
    return f;
  };
  const GridPoint b = least_squares_alpha_efficiency(bulk_rows, op, group, algorithm, [&](double a, double e) {
    return apply_fabric_fit(cluster, bulk(a, e));
  });
  fit = bulk(b.alpha_s, b.efficiency);

  // Stage 2: the small-message pair over the rows below the bandwidth regime, with the bulk pair
  // fixed: each row runs on whichever protocol is faster, as in the engine.
  if (small_rows.size() >= 2) {
    const GridPoint s = least_squares_alpha_efficiency(small_rows, op, group, algorithm, [&](double a, double e) {
      FabricFit f = fit;
      f.small_message_latency = Seconds(a);
      f.small_message_efficiency = e;
      return apply_fabric_fit(cluster, f);
    });
    fit.small_message_latency = Seconds(s.alpha_s);
    fit.small_message_efficiency = s.efficiency;
    fit.small_samples_used = static_cast<int>(small_rows.size());
  }

  record_fit_quality(fit, bulk_rows, samples, op, group, cluster, algorithm);
  return fit;
}

std::string fabric_toml(const Fabric& f, const FabricFit& fit, const std::string& origin) {
  std::string out;
  out += "# Written by `mlsysim calibrate --nccl-tests`; load it with --catalog DIR (it replaces the\n";
  out += "# built-in fabric of the same id).\n[[fabric]]\n";
  out += fmt::format("id = \"{}\"\n", f.id);
  if (!f.name.empty()) out += fmt::format("name = {}\n", toml_string(f.name + " (calibrated)"));
  out += fmt::format("kind = \"{}\"\n", f.kind);
  out += fmt::format("per_direction_gbps_bytes = {:.4g}\n", f.per_direction.si() / 1e9);
  out += fmt::format("latency_us = {:.4g}\n", fit.latency.si() * 1e6);
  out += fmt::format("collective_efficiency = {:.4f}\n", fit.efficiency);
  out += fmt::format("in_network_reduction = {}\n", f.in_network_reduction ? "true" : "false");
  if (f.in_network_reduction) out += fmt::format("in_network_efficiency = {:.4f}\n", fit.in_network_efficiency);
  if (f.in_network_reduction && fit.in_network_latency.si() > 0)
    out += fmt::format("in_network_latency_us = {:.4g}\n", fit.in_network_latency.si() * 1e6);
  if (fit.small_message_efficiency > 0) {
    out += fmt::format("small_message_latency_us = {:.4g}\n", fit.small_message_latency.si() * 1e6);
    out += fmt::format("small_message_efficiency = {:.4f}\n", fit.small_message_efficiency);
  }
  if (fit.in_network_fit) {
    out += fmt::format(
        "source = {}\n",
        toml_string(fmt::format("in-network fixed cost and efficiency fitted by mlsysim calibrate --nccl-tests "
                                "--algorithm in-network from {} ({} sizes from {:.0f} bytes up, median |error| "
                                "{:.1f}%, max {:.1f}%); ring figures and per-direction line rate from the catalog's "
                                "fabric '{}'",
                                origin, fit.samples_used, fit.smallest_used.si(), 100 * fit.median_abs_error,
                                100 * fit.max_abs_error, f.id)));
    return out;
  }
  out += fmt::format(
      "source = {}\n",
      toml_string(fmt::format("alpha and efficiency fitted by mlsysim calibrate --nccl-tests from {} (bulk "
                              "protocol: {} sizes from {:.0f} bytes up; small-message protocol: {} smaller sizes; "
                              "median |error| {:.1f}%, max {:.1f}% over all of them); per-direction line rate "
                              "from the catalog's fabric '{}'",
                              origin, fit.samples_used, fit.smallest_used.si(), fit.small_samples_used,
                              100 * fit.median_abs_error, 100 * fit.max_abs_error, f.id)));
  return out;
}

}  // namespace mlsysim
