// mlsysim command-line tool: parses flags, resolves catalog names, calls the engine, renders.
// Exit codes: 0 success; 1 bad input (with the valid range or a "did you mean"); 2 the workload
// does not fit in memory (required vs available, and remedies).
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/physics/calibration.hpp"
#include "mlsysim/solvers/engine.hpp"
#include "output.hpp"

using namespace mlsysim;
using cli::Format;

namespace {

constexpr int kExitBadInput = 1;
constexpr int kExitDoesNotFit = 2;

struct GlobalOptions {
  std::string format = "table";
  std::string catalog_dir;
  std::string calibration_file;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw BadInput("cannot read '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Format parse_format(const std::string& f) {
  if (f == "table") return Format::Table;
  if (f == "json") return Format::Json;
  if (f == "csv") return Format::Csv;
  throw BadInput("--format must be table, json or csv; got '" + f + "'");
}

Catalog load_catalog(const GlobalOptions& g) {
  Catalog c = g.catalog_dir.empty() ? Catalog::builtin() : Catalog::with_user_dir(g.catalog_dir);
  if (!g.calibration_file.empty()) c.add_calibration_toml(read_file(g.calibration_file), g.calibration_file);
  return c;
}

bool looks_like_path(const std::string& s) {
  return s.find('/') != std::string::npos || (s.size() > 5 && s.substr(s.size() - 5) == ".json");
}

template <class T>
T parse_enum(const std::string& flag, const std::string& value,
             std::initializer_list<std::pair<const char*, T>> options) {
  std::string valid;
  for (const auto& [name, v] : options) {
    if (value == name) return v;
    valid += (valid.empty() ? "" : "|") + std::string(name);
  }
  throw BadInput(flag + " must be " + valid + "; got '" + value + "'");
}

struct SolveOptions {
  std::string model, hardware, phase, precision, kv_precision, recompute = "none",
                                                               runtime = "graph";
  int batch = 1;
  std::optional<int> seq_len, context;
  double efficiency = 0;
  bool operators = false;
};

int run_solve(const GlobalOptions& g, const SolveOptions& o) {
  const Format fmt_kind = parse_format(g.format);
  Catalog catalog = load_catalog(g);
  ModelSpec custom;
  const ModelSpec* model;
  if (looks_like_path(o.model)) {
    custom = model_from_hf_config(o.model);
    model = &custom;
  } else {
    model = &catalog.model(o.model);
  }
  const HardwareSpec& hw = catalog.hardware(o.hardware);
  SolveRequest r;
  if (!o.phase.empty())
    r.phase = parse_enum<Phase>("--phase", o.phase,
                                {{"inference", Phase::Inference}, {"prefill", Phase::Prefill},
                                 {"decode", Phase::Decode}, {"train", Phase::Train}});
  r.batch = o.batch;
  r.seq_len = o.seq_len;
  r.context = o.context;
  auto precision = [](const std::string& flag, const std::string& v) {
    auto p = parse_precision(v);
    if (!p) throw BadInput(flag + " '" + v + "' is not one of " + precision_list());
    return *p;
  };
  if (!o.precision.empty()) r.precision = precision("--precision", o.precision);
  if (!o.kv_precision.empty()) r.kv_precision = precision("--kv-precision", o.kv_precision);
  r.recompute = parse_enum<Recompute>("--recompute", o.recompute,
                                      {{"none", Recompute::None}, {"selective", Recompute::Selective},
                                       {"full", Recompute::Full}});
  r.runtime = parse_enum<Runtime>("--runtime", o.runtime,
                                  {{"graph", Runtime::Graph}, {"eager", Runtime::Eager}});
  if (o.efficiency != 0 && (o.efficiency <= 0 || o.efficiency > 1))
    throw BadInput(fmt::format("--efficiency must be in (0, 1], got {}", o.efficiency));
  r.efficiency = o.efficiency;

  const Profile p = solve(*model, hw, r);
  switch (fmt_kind) {
    case Format::Json: std::cout << cli::profile_json(p).dump(2) << "\n"; break;
    case Format::Csv: std::cout << cli::profile_csv(p); break;
    case Format::Table: std::cout << cli::profile_table(p, o.operators); break;
  }
  if (!p.feasible) {
    std::cerr << "error: " << does_not_fit_message(p) << "\n";
    return kExitDoesNotFit;
  }
  return 0;
}

int run_calibrate(const GlobalOptions& g, const std::string& from, const std::string& hardware,
                  const std::string& output) {
  Catalog catalog = load_catalog(g);
  const std::string text = read_file(from);
  std::string device = hardware;
  if (device.empty()) {  // the microbenchmark file names its device
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_object()) device = j.value("hardware", "");
    if (device.empty()) throw BadInput(from + ": give --hardware (the file names no device)");
  }
  const HardwareSpec& hw = catalog.hardware(device);
  const CalibrationFit fit = fit_calibration(hw, text, from);
  const std::string toml = calibration_toml(hw.id, fit);
  if (output.empty()) std::cout << toml;
  else {
    std::ofstream out(output);
    if (!out) throw BadInput("cannot write '" + output + "'");
    out << toml;
  }
  std::cerr << fmt::format("calibrated {}: {} GEMM points ({} compute-bound, {} memory-bound); "
                           "median |error| {:.1f}%, max {:.1f}% on isolated kernels\n",
                           hw.id, fit.gemm_points, fit.compute_bound_points, fit.memory_bound_points,
                           100 * fit.median_abs_error, 100 * fit.max_abs_error);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mlsysim: first-principles ML systems modeling (roofline, memory, overhead)"};
  app.require_subcommand(1);
  app.fallthrough();
  GlobalOptions g;
  app.add_option("--format", g.format, "Output format: table, json or csv")
      ->check(CLI::IsMember({"table", "json", "csv"}));
  app.add_option("--catalog", g.catalog_dir, "Directory of extra catalog *.toml files");
  app.add_option("--calibration", g.calibration_file, "Calibration TOML (from `mlsysim calibrate`)");
  app.set_version_flag("--version", "mlsysim 0.1.0");

  SolveOptions so;
  auto* solve_cmd = app.add_subcommand("solve", "Time one step of a workload on one device");
  solve_cmd->add_option("--model,-m", so.model, "Model id or a Hugging Face config.json path")->required();
  solve_cmd->add_option("--hardware,-H", so.hardware, "Hardware id (see `mlsysim hardware list`)")->required();
  solve_cmd->add_option("--phase,-p", so.phase, "inference | prefill | decode | train");
  solve_cmd->add_option("--batch-size,-b", so.batch, "Sequences / samples per step (>= 1)");
  solve_cmd->add_option("--seq-len,-s", so.seq_len, "Tokens per sequence (prefill/train/inference)");
  solve_cmd->add_option("--context,-c", so.context, "Decode: tokens already in the KV cache");
  solve_cmd->add_option("--precision", so.precision, "fp32 | tf32 | fp16 | bf16 | fp8 | int8 | int4");
  solve_cmd->add_option("--kv-precision", so.kv_precision, "KV-cache precision (default: math precision)");
  solve_cmd->add_option("--recompute", so.recompute, "Training activation recomputation: none | selective | full");
  solve_cmd->add_option("--runtime", so.runtime, "graph (CUDA graphs / compiled, default) | eager (per-op host dispatch)");
  solve_cmd->add_option("--efficiency", so.efficiency, "Textbook model: one efficiency factor in (0, 1]");
  solve_cmd->add_flag("--operators", so.operators, "Table output: list every operator");

  auto* hw_cmd = app.add_subcommand("hardware", "List or show catalog hardware");
  hw_cmd->require_subcommand(1);
  std::string tier, show_name;
  auto* hw_list = hw_cmd->add_subcommand("list", "List devices");
  hw_list->add_option("--tier", tier, "cloud | workstation | edge | mobile | tiny");
  auto* hw_show = hw_cmd->add_subcommand("show", "Show one device with its sources");
  hw_show->add_option("name", show_name, "Device id or alias")->required();

  auto* models_cmd = app.add_subcommand("models", "List or show catalog models");
  models_cmd->require_subcommand(1);
  std::string model_name;
  auto* models_list = models_cmd->add_subcommand("list", "List models");
  auto* models_show = models_cmd->add_subcommand("show", "Show one model");
  models_show->add_option("name", model_name, "Model id, alias or config.json path")->required();

  std::string cal_from, cal_hw, cal_out;
  auto* cal_cmd = app.add_subcommand("calibrate", "Fit a device's efficiency from microbenchmarks");
  cal_cmd->add_option("--from", cal_from, "Microbenchmark JSON (format of bench/gpu/microbench.py)")->required();
  cal_cmd->add_option("--hardware,-H", cal_hw, "Device id (default: the file's 'hardware' field)");
  cal_cmd->add_option("--output,-o", cal_out, "Write the calibration TOML here (default: stdout)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitBadInput;
  }

  try {
    if (*solve_cmd) return run_solve(g, so);
    const Format f = parse_format(g.format);
    if (*hw_list) {
      std::cout << cli::hardware_list(load_catalog(g), f, tier);
    } else if (*hw_show) {
      Catalog c = load_catalog(g);
      std::cout << cli::hardware_show(c.hardware(show_name), f);
    } else if (*models_list) {
      std::cout << cli::model_list(load_catalog(g), f);
    } else if (*models_show) {
      Catalog c = load_catalog(g);
      if (looks_like_path(model_name)) std::cout << cli::model_show(model_from_hf_config(model_name), f);
      else std::cout << cli::model_show(c.model(model_name), f);
    } else if (*cal_cmd) {
      return run_calibrate(g, cal_from, cal_hw, cal_out);
    }
    return 0;
  } catch (const BadInput& e) {
    std::cerr << "error: " << e.what() << "\n";
    if (g.format == "json") std::cout << nlohmann::json{{"error", e.what()}, {"exit_code", 1}}.dump() << "\n";
    return kExitBadInput;
  } catch (const DoesNotFit& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitDoesNotFit;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitBadInput;
  }
}
