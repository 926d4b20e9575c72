#include "command.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "mlsysim/errors.hpp"

namespace mlsysim::cli {

std::vector<RegisteredCommand>& command_registry() {
  static std::vector<RegisteredCommand> registry;
  return registry;
}

CommandRegistrar::CommandRegistrar(int order, const char* name, CommandSetup setup) {
  command_registry().push_back({order, name, std::move(setup)});
}

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

std::shared_ptr<const Catalog> load_catalog(const GlobalOptions& g) {
  if (g.catalog_dir.empty() && g.calibration_file.empty())
    return std::shared_ptr<const Catalog>(&Catalog::builtin(), [](const Catalog*) {});
  auto c = std::make_shared<Catalog>(g.catalog_dir.empty() ? Catalog::builtin()
                                                            : Catalog::with_user_dir(g.catalog_dir));
  if (!g.calibration_file.empty())
    c->add_calibration_toml(read_file(g.calibration_file), g.calibration_file);
  return c;
}

namespace {
bool looks_like_path(const std::string& s) {
  return s.find('/') != std::string::npos ||
         (s.size() > 5 && s.substr(s.size() - 5) == ".json");
}
}  // namespace

// A config.json path, else a catalog name. A Hugging Face repo id ("meta-llama/Meta-Llama-3-8B")
// looks like a path; when no such file exists, the catalog resolves it (catalog loose_name).
const ModelSpec& resolve_model(const Catalog& c, const std::string& name, ModelSpec& storage) {
  const bool json_file = name.size() > 5 && name.substr(name.size() - 5) == ".json";
  if (looks_like_path(name) && !json_file && !std::filesystem::exists(name)) {
    try {
      return c.model(name);
    } catch (const BadInput&) {
      throw BadInput("model '" + name + "' is neither a file nor in the catalog: pass a Hugging Face " +
                     "config.json path (for a repo id, download huggingface.co/" + name +
                     "/resolve/main/config.json) or a catalog id (see `mlsysim models list`)");
    }
  }
  if (looks_like_path(name)) {
    storage = model_from_hf_config(name);
    return storage;
  }
  return c.model(name);
}

Workload::Workload(const GlobalOptions& g, const std::string& model_name, const std::string& hardware_name)
    : catalog(load_catalog(g)),
      model(resolve_model(*catalog, model_name, custom)),
      hw(catalog->hardware(hardware_name)) {}

Runtime parse_runtime_flag(const std::string& value) { return parse_runtime(value, "--runtime"); }

Fusion parse_fusion_flag(const std::string& value) { return parse_fusion(value, "--fusion"); }
AttentionKernel parse_attention_flag(const std::string& value) {
  return parse_attention_kernel(value, "--attention");
}
ActivationScaling parse_activation_scaling_flag(const std::string& value) {
  return parse_activation_scaling(value, "--activation-scaling");
}

void add_deployment_override_options(CLI::App* cmd, DeploymentOverrideOptions& o) {
  cmd->add_option("--compute-precision", o.compute_precision, kComputePrecisionHelp);
  cmd->add_option("--step-host-us", o.step_host_us, kStepHostHelp);
  cmd->add_option("--activation-scaling", o.activation_scaling, kActivationScalingHelp);
}

DeploymentOverrides parse_deployment_overrides(const DeploymentOverrideOptions& o) {
  DeploymentOverrides d;
  if (!o.compute_precision.empty()) d.compute_precision = parse_precision_flag("--compute-precision", o.compute_precision);
  if (o.step_host_us) d.step_host = microseconds(*o.step_host_us);
  if (!o.activation_scaling.empty()) d.activation_scaling = parse_activation_scaling_flag(o.activation_scaling);
  return d;
}

void add_lora_options(CLI::App* cmd, LoraOptions& o) {
  cmd->add_option("--lora-rank", o.rank,
                  "LoRA fine-tuning: freeze the base weights and train rank-R adapters (Hu et al. 2021; "
                  "typical 8-64); 0 (default) trains every weight. QLoRA (an int8/int4 base): `solve --phase train "
                  "--precision int4 --compute-precision bf16`");
  cmd->add_option("--lora-targets", o.targets,
                  "Linears that get LoRA adapters: attention (Q, K, V and output projections; default) | all "
                  "(also the MLP's, experts included)");
}

LoraSpec parse_lora_options(const LoraOptions& o) {
  LoraSpec lora;
  lora.rank = o.rank;
  lora.targets = parse_enum<LoraTargets>("--lora-targets", o.targets,
                                         {{"attention", LoraTargets::Attention}, {"all", LoraTargets::All}});
  if (o.rank == 0 && o.targets != LoraOptions{}.targets)
    throw BadInput("--lora-targets picks where LoRA adapters go: it needs --lora-rank R (R >= 1)");
  return lora;
}

Precision parse_precision_flag(const std::string& flag, const std::string& value) {
  auto p = parse_precision(value);
  if (!p) throw BadInput(flag + " '" + value + "' is not one of " + precision_list());
  return *p;
}

void add_workload_options(CLI::App* cmd, std::string& model, std::string& hardware,
                          const std::string& hardware_help) {
  cmd->add_option("--model,-m", model, "Model id or a Hugging Face config.json path")->required();
  cmd->add_option("--hardware,-H", hardware, hardware_help)->required();
}

void add_efficiency_option(CLI::App* cmd, double& efficiency) {
  // The engine reads 0 as "not given" (the calibrated model), so a 0 the user typed would silently
  // fall back to it: refuse it here, where "given" is known. The engine checks the (0, 1] range.
  cmd->add_option("--efficiency", efficiency, "Textbook model: one efficiency factor in [0.01, 1]")
      ->check(CLI::Validator(
          [](std::string& text) -> std::string {
            char* end = nullptr;
            const double v = std::strtod(text.c_str(), &end);
            if (end != text.c_str() && *end == 0 && v == 0)
              return "must be in [0.01, 1], got 0 (leave --efficiency out for the calibrated model)";
            return {};
          },
          "EFFICIENCY"));
}

void print(const GlobalOptions& g, const nlohmann::ordered_json& j, const std::string& text) {
  if (g.format == "json") {
    out_stream() << j.dump(2) << "\n";
  } else if (g.format == "csv") {
    const std::string csv = csv_from_rows(j.is_array() ? j : nlohmann::ordered_json::array({j}));
    // An output of several tables (an object of lists) has no one CSV: say so rather than print
    // blank lines.
    if (csv.find_first_not_of('\n') == std::string::npos) {
      std::string tables;
      if (j.is_object())
        for (auto it = j.begin(); it != j.end(); ++it) tables += (tables.empty() ? "" : ", ") + it.key();
      throw BadInput(fmt::format("--format csv writes one table, but this output holds several ({}): use "
                                 "--format json or table",
                                 tables));
    }
    out_stream() << csv;
  } else {
    out_stream() << text;
  }
}

}  // namespace mlsysim::cli
