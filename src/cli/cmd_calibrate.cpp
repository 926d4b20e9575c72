// `mlsysim calibrate --from FILE`: fit a device's efficiency profile from microbenchmarks.
// `mlsysim calibrate --nccl-tests FILE --cluster C`: fit a cluster fabric's alpha and efficiency from
// an nccl-tests log.
#include <fmt/format.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "train_options.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/physics/calibration.hpp"
#include "mlsysim/physics/fabric_calibration.hpp"

namespace mlsysim::cli {
namespace {

struct CalibrateOptions {
  std::string from, nccl_tests, hardware, cluster, op, output, algorithm = "auto";
  int gpus = 0;
};

void write_output(const std::string& text, const std::string& path) {
  if (path.empty()) {
    out_stream() << text;
    return;
  }
  std::ofstream out(path);
  if (!out) throw BadInput("cannot write '" + path + "'");
  out << text;
}

// The fabric fit: the log's rows against the engine's collective model on the named cluster, before
// and after, and the fabric entry that carries the fitted alpha and efficiency.
int run_fabric_calibration(const GlobalOptions& g, const CalibrateOptions& o) {
  const auto fleet_owner = load_fleet(g);
  const FleetCatalog& fleet = *fleet_owner;
  const NcclTestsLog log = parse_nccl_tests(read_file(o.nccl_tests), o.nccl_tests);
  const CollectiveOp op = !o.op.empty() ? parse_collective_op(o.op)
                          : log.op      ? *log.op
                                        : throw BadInput(o.nccl_tests + ": the log does not name its nccl-tests "
                                                         "binary; give --op allreduce|allgather|reducescatter|alltoall");
  const int ranks = o.gpus > 0 ? o.gpus : log.ranks;
  if (o.gpus > 0 && o.gpus < 2) throw BadInput("--gpus must be >= 2: a collective needs at least 2 ranks");
  if (ranks < 2)
    throw BadInput(o.nccl_tests + ": the log lists no '#  Rank' lines; give --gpus N (the ranks of the run)");
  const Cluster cluster = !o.cluster.empty() ? fleet.cluster(o.cluster)
                                             : fleet.standard_cluster(o.hardware.empty() ? "h100" : o.hardware, ranks);
  if (ranks > cluster.total_gpus())
    throw BadInput(fmt::format("the run has {} ranks but {} has {} GPUs; pick a larger --cluster", ranks,
                               cluster.id, cluster.total_gpus()));
  const GroupPlacement group = place_group(ranks, 1, cluster.gpus_per_node());
  // Where the ranks really sit, as `mlsysim collective` shows it: 12 ranks on 8-GPU nodes are
  // 8 + 4, not "8 per node x 2 nodes" (group.per_node is only the fullest node).
  const std::string placement = describe_placement(group);
  const Algorithm algorithm = parse_collective_algorithm(o.algorithm);
  const FabricFit fit = fit_fabric(log.samples, op, group, cluster, algorithm);
  const Fabric& before = fit.scale_out ? cluster.scale_out : cluster.scale_up;
  write_output(fabric_toml(before, fit, o.nccl_tests), o.output);

  const Cluster after = apply_fabric_fit(cluster, fit);
  if (fit.in_network_fit)
    err_stream() << fmt::format(
        "calibrated fabric {} ({}) in-network all-reduce from {} of {} {} rows over {} ranks of {} ({}):\n"
        "  fixed cost {:.3g} us (was {:.3g}), efficiency {:.3f} (was {:.3f}); median |error| {:.1f}%, max {:.1f}%\n",
        before.id, fit.scale_out ? "scale-out" : "scale-up", fit.samples_used, log.samples.size(), to_string(op),
        ranks, cluster.id, placement, in_us(fit.in_network_latency), in_us(in_network_fixed_cost(cluster, fit.scale_out)),
        fit.in_network_efficiency, before.in_network_efficiency, 100 * fit.median_abs_error,
        100 * fit.max_abs_error);
  else err_stream() << fmt::format(
      "calibrated fabric {} ({}) from {} {} rows over {} ranks of {} ({}):\n"
      "  bulk protocol ({} rows at >= {:.0f}% of the best bus bandwidth): alpha {:.3g} us (was {:.3g}), "
      "efficiency {:.3f} (was {:.3f})\n",
      before.id, fit.scale_out ? "scale-out" : "scale-up", log.samples.size(), to_string(op), ranks, cluster.id,
      placement, fit.samples_used, 100 * kBandwidthRegimeShare, in_us(fit.latency),
      in_us(before.latency), fit.efficiency, before.collective_efficiency);
  if (!fit.in_network_fit && fit.small_message_efficiency > 0)
    err_stream() << fmt::format("  small-message protocol ({} smaller rows): alpha {:.3g} us, efficiency {:.3f}\n",
                             fit.small_samples_used, in_us(fit.small_message_latency), fit.small_message_efficiency);
  if (!fit.in_network_fit)
    err_stream() << fmt::format("  median |error| {:.1f}%, max {:.1f}% over all {} rows\n", 100 * fit.median_abs_error,
                             100 * fit.max_abs_error, log.samples.size());
  // A fit that needs the whole line rate, or that still misses, says the run was not on this cluster
  // as described (line rate, GPUs per node, NICs).
  const double fitted_efficiency = fit.in_network_fit ? fit.in_network_efficiency : fit.efficiency;
  if (fitted_efficiency >= 0.99 || fit.median_abs_error > 0.2)
    err_stream() << fmt::format(
        "  warning: the fitted model {} this run; check --cluster and --gpus (ranks placed {}; {:.0f} GB/s per "
        "direction on {})\n",
        fitted_efficiency >= 0.99 ? "needs the full line rate to reach" : "does not match", placement,
        in_gbps(before.per_direction), before.id);
  err_stream() << fmt::format("  {:>12}  {:>12}  {:>14}  {:>14}\n", "bytes", "measured ms", "catalog ms", "calibrated ms");
  for (const auto& s : log.samples)
    err_stream() << fmt::format("  {:>12.4g}  {:>12.4f}  {:>14.4f}  {:>14.4f}\n", s.message.si(), in_ms(s.time),
                             in_ms(collective_time(op, s.message, group, cluster, algorithm).time),
                             in_ms(collective_time(op, s.message, group, after, algorithm).time));
  return kExitOk;
}

// "; default attention at head dim 64: 0.68x, 256: 1.02x (of head dim 128)" when a table was fitted.
std::string head_dim_summary(const CalibrationFit& fit) {
  if (fit.head_dim_rate_points == 0) return "";
  std::string text = "; default attention at head dim";
  const char* separator = " ";
  for (const HeadDimRate& r : fit.profile.attention_head_dim_rates) {
    if (r.head_dim == 128) continue;
    text += fmt::format("{}{}: {:.2f}x", separator, r.head_dim, r.relative_rate);
    separator = ", ";
  }
  text += " of head dim 128's rate";
  if (fit.profile.attention_backward <= 0) return text;
  text += fmt::format("; its backward at {:.2f}x the forward at head dim 128", fit.profile.attention_backward);
  for (const HeadDimRate& r : fit.profile.attention_backward_head_dim_rates)
    if (r.head_dim != 128) text += fmt::format(", {:.2f}x of that at head dim {}", r.relative_rate, r.head_dim);
  return text;
}

int run_calibrate(const GlobalOptions& g, const CalibrateOptions& o) {
  // Its output is a TOML file the engine loads; the fit report is for people, on stderr.
  if (g.format != "table")
    throw BadInput(fmt::format("calibrate writes a TOML calibration file (to -o FILE, or stdout) and its fit report "
                               "to stderr: --format {} does not apply; drop it",
                               g.format));
  if (o.from.empty() == o.nccl_tests.empty())
    throw BadInput("calibrate needs one source: --from FILE (GPU microbenchmarks, bench/gpu/microbench.py) or "
                   "--nccl-tests FILE (an nccl-tests log, with --cluster)");
  if (!o.nccl_tests.empty()) return run_fabric_calibration(g, o);
  const auto catalog_owner = load_catalog(g);
  const Catalog& catalog = *catalog_owner;
  const std::string text = read_file(o.from);
  std::string device = o.hardware;
  if (device.empty()) {  // the microbenchmark file names its device
    device = microbenchmark_device(text, o.from);
    if (device.empty()) throw BadInput(o.from + ": give --hardware (the file names no device)");
  }
  const HardwareSpec& hw = catalog.hardware(device);
  const CalibrationFit fit = fit_calibration(hw, text, o.from);
  write_output(calibration_toml(hw.id, fit), o.output);
  if (fit.partial) {
    err_stream() << fmt::format("calibrated {} (partial: attention kernels only){}{}\n", hw.id,
                             fit.flash_attention2_points
                                 ? fmt::format("; FlashAttention-2: {} kernel timings, matmul efficiency {:.3f}, "
                                               "median |error| {:.1f}%",
                                               fit.flash_attention2_points, fit.profile.flash_attention2,
                                               100 * fit.flash_attention2_median_abs_error)
                                 : "",
                             head_dim_summary(fit));
    return kExitOk;
  }
  err_stream() << fmt::format(
      "calibrated {}: {} GEMM points ({} compute-bound, {} memory-bound); median |error| {:.1f}% "
      "({:.1f}% over the compute-bound ones), max {:.1f}% on isolated kernels{}{}{}\n",
      hw.id, fit.gemm_points, fit.compute_bound_points, fit.memory_bound_points,
      100 * fit.median_abs_error, 100 * fit.compute_bound_median_abs_error, 100 * fit.max_abs_error,
      fit.attention_points ? fmt::format("; attention: {} kernels, median |error| {:.1f}%",
                                         fit.attention_points, 100 * fit.attention_median_abs_error)
                           : "",
      fit.flash_attention2_points ? fmt::format("; FlashAttention-2: {} kernels, median |error| {:.1f}%",
                                                fit.flash_attention2_points,
                                                100 * fit.flash_attention2_median_abs_error)
                                  : "",
      head_dim_summary(fit));
  return kExitOk;
}

const CommandRegistrar registrar(40, "calibrate", [](CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<CalibrateOptions>();
  auto* cmd = app.add_subcommand("calibrate", "Fit a device's efficiency from microbenchmarks, or a fabric's from nccl-tests");
  cmd->add_option("--from", o->from, "Microbenchmark JSON (format of bench/gpu/microbench.py)");
  cmd->add_option("--nccl-tests", o->nccl_tests,
                  "An nccl-tests log (all_reduce_perf ... output): fit the cluster fabric's alpha and efficiency");
  cmd->add_option("--hardware,-H", o->hardware,
                  "Device id (default: the file's 'hardware' field); with --nccl-tests: its standard node");
  cmd->add_option("--cluster", o->cluster, "With --nccl-tests: the cluster the run used (see collective --list)");
  cmd->add_option("--algorithm", o->algorithm,
                  "With --nccl-tests: the algorithm the run used: auto (NCCL's choice, default) | ring | tree | "
                  "in-network (an NCCL_ALGO=RING sweep fits the ring and leaves NVLS/SHARP as it was; an NVLS "
                  "sweep fits the in-network fixed cost and efficiency)");
  cmd->add_option("--gpus,-n", o->gpus, "With --nccl-tests: ranks of the run (default: the log's Rank lines)");
  cmd->add_option("--op", o->op, "With --nccl-tests: allreduce | allgather | reducescatter | alltoall "
                                 "(default: from the binary named in the log)");
  cmd->add_option("--output,-o", o->output,
                  "Write the calibration TOML here (default: stdout); a fabric file goes in a --catalog DIR");
  return Command{cmd, [o, &g] { return run_calibrate(g, *o); }};
});

}  // namespace
}  // namespace mlsysim::cli
