// Command registry for the CLI. Each command lives in its own cmd_*.cpp and registers itself with
// a static CommandRegistrar, so adding a command touches no other file. A command's setup adds its
// CLI11 subcommand and options and returns the function to run when that subcommand is chosen.
#pragma once

#include <CLI/CLI.hpp>

#include <chrono>
#include <functional>
#include <iosfwd>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/catalog/fleet.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/physics/precision.hpp"
#include "mlsysim/solvers/serving.hpp"
#include "output.hpp"

namespace mlsysim::cli {

constexpr int kExitOk = 0;
constexpr int kExitBadInput = 1;
constexpr int kExitDoesNotFit = 2;

struct GlobalOptions {
  std::string format = "table";
  std::string catalog_dir;
  std::string calibration_file;
};

struct Command {
  CLI::App* subcommand = nullptr;  // parsed when chosen
  std::function<int()> run;
};

using CommandSetup = std::function<Command(CLI::App& app, const GlobalOptions& global)>;

struct CommandRegistrar {
  // `order` sorts commands in --help (lower first); `name` is the subcommand's name.
  CommandRegistrar(int order, const char* name, CommandSetup setup);
};

struct RegisteredCommand {
  int order;
  std::string name;
  CommandSetup setup;
};
std::vector<RegisteredCommand>& command_registry();

// This thread's standard output and error: std::cout and std::cerr, or the buffers of the
// run_captured() in progress on this thread. Commands write only through these, so captured runs
// on several threads (validate's points) never see each other's output.
std::ostream& out_stream();
std::ostream& err_stream();

// A one-line progress report, rewritten in place, on the standard error of the thread that makes it,
// only when that is an interactive terminal (not a pipe, not a captured run) and only once the work
// has lasted half a second: a long command says how far it is without cluttering logs. Any thread
// may report (validate's workers do); reports closer than 50 ms apart are skipped, except the last.
class TerminalProgress {
 public:
  explicit TerminalProgress(std::string label);
  ~TerminalProgress();  // ends the line if one was printed and not finished by a last report
  TerminalProgress(const TerminalProgress&) = delete;
  TerminalProgress& operator=(const TerminalProgress&) = delete;
  // `status`, e.g. "41.0% of requests"; `last`: the work is done (printed only after earlier reports).
  void report(const std::string& status, bool last = false);
  [[nodiscard]] bool active() const { return out_ != nullptr; }

 private:
  std::ostream* out_ = nullptr;  // null: not a terminal, nothing is printed
  std::string label_;
  std::chrono::steady_clock::time_point start_, last_print_{};
  std::mutex mutex_;
  bool printed_ = false;
};

// Parses argv (argv[0] is the program name), runs the chosen command, returns the exit code.
int run(int argc, char** argv);

// Runs the CLI in-process on `args` (no program name) with stdout and stderr captured: how
// `mlsysim validate` and the Python module (mlsysim.cli) call commands through the public path.
struct CapturedRun {
  int exit_code = 0;
  std::string out, err;
};
CapturedRun run_captured(const std::vector<std::string>& args);

// ---- helpers shared by commands ----------------------------------------------------------------
std::string read_file(const std::string& path);
Format parse_format(const std::string& f);
// Built-in catalog + --catalog DIR + --calibration FILE. The built-in one is shared, not copied
// (parsing and copying the catalog would dominate a solve).
std::shared_ptr<const Catalog> load_catalog(const GlobalOptions& g);
// The fleet (nodes, fabrics, clusters) with the --catalog directory's overrides; the built-in fleet
// is shared, not copied (as load_catalog does for devices and models).
inline std::shared_ptr<const FleetCatalog> load_fleet(const GlobalOptions& g) {
  if (g.catalog_dir.empty())
    return std::shared_ptr<const FleetCatalog>(&FleetCatalog::builtin(), [](const FleetCatalog*) {});
  return std::make_shared<const FleetCatalog>(FleetCatalog::with_user_dir(g.catalog_dir));
}
// A catalog id/alias, or a path to a Hugging Face config.json (stored in `storage`).
const ModelSpec& resolve_model(const Catalog& c, const std::string& name, ModelSpec& storage);
Precision parse_precision_flag(const std::string& flag, const std::string& value);
// What solve, serve, compress and simulate start from: the catalog (with --catalog/--calibration),
// the --model (a catalog id, or a config.json kept here) and the --hardware. Not copyable: `model`
// may point at `custom`.
struct Workload {
  Workload(const GlobalOptions& g, const std::string& model_name, const std::string& hardware_name);
  Workload(const Workload&) = delete;
  Workload& operator=(const Workload&) = delete;
  std::shared_ptr<const Catalog> catalog;
  ModelSpec custom;
  const ModelSpec& model;
  const HardwareSpec& hw;
};

template <class T>
T parse_enum(const std::string& flag, const std::string& value,
             std::initializer_list<std::pair<const char*, T>> options) {
  std::string valid;
  const std::string wanted = normalize_name(value);  // any case, '_' or '-', as names are
  for (const auto& [name, v] : options) {
    if (normalize_name(name) == wanted) return v;
    valid += (valid.empty() ? "" : "|") + std::string(name);
  }
  throw BadInput(flag + " must be " + valid + "; got '" + value + "'");
}

// --runtime graph|eager and --fusion auto|fused|unfused|hf (physics/efficiency.hpp's parsers); the
// kernel command also takes --runtime isolated.
Runtime parse_runtime_flag(const std::string& value);
Fusion parse_fusion_flag(const std::string& value);
AttentionKernel parse_attention_flag(const std::string& value);  // --attention flash|materialized|fa2
ActivationScaling parse_activation_scaling_flag(const std::string& value);  // --activation-scaling static|dynamic
// --lora-rank R and --lora-targets attention|all (solve --phase train and train share them).
struct LoraOptions {
  int rank = 0;
  std::string targets = "attention";
};
void add_lora_options(CLI::App* cmd, LoraOptions& o);
LoraSpec parse_lora_options(const LoraOptions& o);
// --compute-precision, --step-host-us and --activation-scaling (serve and simulate share them):
// what a request sets on its serving deployment (DeploymentOverrides).
struct DeploymentOverrideOptions {
  std::string compute_precision, activation_scaling;
  std::optional<double> step_host_us;
};
void add_deployment_override_options(CLI::App* cmd, DeploymentOverrideOptions& o);
DeploymentOverrides parse_deployment_overrides(const DeploymentOverrideOptions& o);
inline constexpr const char* kComputePrecisionHelp =
    "Math precision for weight-only quantization (e.g. --precision int4 --compute-precision bf16, "
    "as AWQ/GPTQ kernels run): weights are read at --precision, multiplied at this one";
inline constexpr const char* kActivationScalingHelp =
    "8-bit inference (--precision fp8|int8): static (calibrated scales; the producing norm or "
    "activation writes 8 bits, TensorRT-LLM/ModelOpt; default) | dynamic (each GEMM input's scale "
    "is taken at run time: one reduce-and-cast kernel per quantized input, as SGLang's FP8 and "
    "torchao's float8 dynamic recipes run)";
inline constexpr const char* kStepHostHelp =
    "The serving engine's host work per iteration that the GPU waits for, microseconds (default: "
    "20 framework calls at the device's calibrated eager dispatch cost, about 0.3-0.5 ms; 0 for an "
    "engine that overlaps its scheduling with the GPU)";
inline constexpr const char* kQuantizeHeadHelp =
    "Quantize the output head (LM head) too, as gpt-fast does; by default a language model "
    "quantized below 16 bits keeps its head in 16 bits, as TensorRT-LLM (ModelOpt), vLLM, AWQ/GPTQ "
    "and Megatron FP8 training do (the embedding table stays 16-bit either way)";
inline constexpr const char* kAttentionHelp =
    "flash (one fused kernel at the device's calibrated rate, scores stay on chip; default) | materialized "
    "(QK^T, softmax, PV with the scores in memory: Megatron-LM before FlashAttention, PyTorch's math SDPA) | "
    "fa2 (FlashAttention-2: softmax exponentials not overlapped with the matmuls; needs its calibration)";

// The --model (id, alias or config.json path) and --hardware options every workload command takes.
void add_workload_options(CLI::App* cmd, std::string& model, std::string& hardware,
                          const std::string& hardware_help = "Hardware id (see `mlsysim hardware list`)");

// Prints a JSON document (json format) or text; used by commands that have no table layout.
// --efficiency for the textbook single-efficiency model; an explicit 0 is refused.
void add_efficiency_option(CLI::App* cmd, double& efficiency);
void print(const GlobalOptions& g, const nlohmann::ordered_json& j, const std::string& text);

}  // namespace mlsysim::cli
