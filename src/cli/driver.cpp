// The CLI driver, shared by the `mlsysim` executable and the Python module (mlsysim.cli()).
// Commands register themselves (cmd_*.cpp); this parses, dispatches, and maps errors to exit codes:
//   0 success; 1 bad input (with the valid range or a "did you mean"); 2 the workload does not fit.
#include <algorithm>
#include <iostream>
#include <sstream>

#include "command.hpp"
#include "mlsysim/errors.hpp"

namespace mlsysim::cli {

int run(int argc, char** argv) {
  CLI::App app{"mlsysim: first-principles ML systems modeling (roofline, memory, overhead)"};
  app.require_subcommand(1);
  app.fallthrough();
  GlobalOptions g;
  app.add_option("--format", g.format, "Output format: table, json or csv")
      ->check(CLI::IsMember({"table", "json", "csv"}));
  app.add_option("--catalog", g.catalog_dir, "Directory of extra catalog *.toml files");
  app.add_option("--calibration", g.calibration_file, "Calibration TOML (from `mlsysim calibrate`)");
  app.set_version_flag("--version", "mlsysim 0.1.0");

  auto& registry = command_registry();
  std::stable_sort(registry.begin(), registry.end(),
                   [](const auto& a, const auto& b) { return a.order < b.order; });
  // Only the chosen command is built when argv names one (building all of CLI11's option tables
  // costs more than a solve); help and unknown names get every command.
  std::string chosen;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--format" || a == "--catalog" || a == "--calibration") { ++i; continue; }
    if (!a.empty() && a[0] == '-') { if (a == "-h" || a == "--help") break; continue; }
    chosen = a;
    break;
  }
  const bool known = std::any_of(registry.begin(), registry.end(),
                                 [&](const auto& r) { return r.name == chosen; });
  std::vector<Command> commands;
  for (auto& r : registry)
    if (!known || r.name == chosen) commands.push_back(r.setup(app, g));

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
    for (auto& c : commands)
      if (c.subcommand && c.subcommand->parsed()) return c.run();
    return kExitOk;
  } catch (const BadInput& e) {
    std::cerr << "error: " << e.what() << "\n";
    if (g.format == "json")
      std::cout << nlohmann::json{{"error", e.what()}, {"exit_code", kExitBadInput}}.dump() << "\n";
    return kExitBadInput;
  } catch (const DoesNotFit& e) {
    std::cerr << "error: " << e.what() << "\n";
    if (g.format == "json")
      std::cout << nlohmann::json{{"error", e.what()},
                                  {"exit_code", kExitDoesNotFit},
                                  {"feasible", false},
                                  {"required_bytes", e.required_bytes},
                                  {"available_bytes", e.available_bytes}}.dump() << "\n";
    return kExitDoesNotFit;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitBadInput;
  }
}

CapturedRun run_captured(const std::vector<std::string>& args) {
  std::vector<std::string> storage{"mlsysim"};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : storage) argv.push_back(a.data());
  std::ostringstream out, err;
  auto* old_out = std::cout.rdbuf(out.rdbuf());
  auto* old_err = std::cerr.rdbuf(err.rdbuf());
  CapturedRun r;
  try {
    r.exit_code = run(static_cast<int>(argv.size()), argv.data());
  } catch (...) {
    std::cout.rdbuf(old_out);
    std::cerr.rdbuf(old_err);
    throw;
  }
  std::cout.rdbuf(old_out);
  std::cerr.rdbuf(old_err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

}  // namespace mlsysim::cli
