// `mlsysim calibrate --from FILE`: fit a device's efficiency profile from microbenchmarks.
#include <fmt/format.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/physics/calibration.hpp"

namespace mlsysim::cli {
namespace {

struct CalibrateOptions {
  std::string from, hardware, output;
};

int run_calibrate(const GlobalOptions& g, const CalibrateOptions& o) {
  const auto catalog_owner = load_catalog(g);
  const Catalog& catalog = *catalog_owner;
  const std::string text = read_file(o.from);
  std::string device = o.hardware;
  if (device.empty()) {  // the microbenchmark file names its device
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_object()) device = j.value("hardware", "");
    if (device.empty()) throw BadInput(o.from + ": give --hardware (the file names no device)");
  }
  const HardwareSpec& hw = catalog.hardware(device);
  const CalibrationFit fit = fit_calibration(hw, text, o.from);
  const std::string toml = calibration_toml(hw.id, fit);
  if (o.output.empty()) {
    std::cout << toml;
  } else {
    std::ofstream out(o.output);
    if (!out) throw BadInput("cannot write '" + o.output + "'");
    out << toml;
  }
  std::cerr << fmt::format(
      "calibrated {}: {} GEMM points ({} compute-bound, {} memory-bound); median |error| {:.1f}% "
      "({:.1f}% over the compute-bound ones), max {:.1f}% on isolated kernels{}\n",
      hw.id, fit.gemm_points, fit.compute_bound_points, fit.memory_bound_points,
      100 * fit.median_abs_error, 100 * fit.compute_bound_median_abs_error, 100 * fit.max_abs_error,
      fit.attention_points ? fmt::format("; attention: {} kernels, median |error| {:.1f}%",
                                         fit.attention_points, 100 * fit.attention_median_abs_error)
                           : "");
  return kExitOk;
}

const CommandRegistrar registrar(40, "calibrate", [](CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<CalibrateOptions>();
  auto* cmd = app.add_subcommand("calibrate", "Fit a device's efficiency from microbenchmarks");
  cmd->add_option("--from", o->from, "Microbenchmark JSON (format of bench/gpu/microbench.py)")->required();
  cmd->add_option("--hardware,-H", o->hardware, "Device id (default: the file's 'hardware' field)");
  cmd->add_option("--output,-o", o->output, "Write the calibration TOML here (default: stdout)");
  return Command{cmd, [o, &g] { return run_calibrate(g, *o); }};
});

}  // namespace
}  // namespace mlsysim::cli
