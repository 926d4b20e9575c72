// `mlsysim hardware list|show` and `mlsysim models list|show`.
#include <iostream>
#include <memory>

#include "command.hpp"

namespace mlsysim::cli {
namespace {

struct CatalogOptions {
  std::string tier, name;
};

const CommandRegistrar hardware_registrar(30, "hardware", [](CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<CatalogOptions>();
  auto* cmd = app.add_subcommand("hardware", "List or show catalog hardware");
  cmd->require_subcommand(1);
  auto* list = cmd->add_subcommand("list", "List devices");
  list->add_option("--tier", o->tier, "cloud | workstation | edge | mobile | tiny");
  auto* show = cmd->add_subcommand("show", "Show one device with its sources");
  show->add_option("name", o->name, "Device id or alias")->required();
  return Command{cmd, [o, &g, list] {
    const Format f = parse_format(g.format);
    const auto catalog_owner = load_catalog(g);
    const Catalog& c = *catalog_owner;
    std::cout << (list->parsed() ? hardware_list(c, f, o->tier) : hardware_show(c.hardware(o->name), f));
    return kExitOk;
  }};
});

const CommandRegistrar models_registrar(31, "models", [](CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<CatalogOptions>();
  auto* cmd = app.add_subcommand("models", "List or show catalog models");
  cmd->require_subcommand(1);
  auto* list = cmd->add_subcommand("list", "List models");
  auto* show = cmd->add_subcommand("show", "Show one model");
  show->add_option("name", o->name, "Model id, alias or config.json path")->required();
  return Command{cmd, [o, &g, list] {
    const Format f = parse_format(g.format);
    const auto catalog_owner = load_catalog(g);
    const Catalog& c = *catalog_owner;
    if (list->parsed()) {
      std::cout << model_list(c, f);
    } else {
      ModelSpec custom;
      std::cout << model_show(resolve_model(c, o->name, custom), f);
    }
    return kExitOk;
  }};
});

}  // namespace
}  // namespace mlsysim::cli
