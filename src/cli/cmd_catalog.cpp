// `mlsysim hardware [list|show]` and `mlsysim models [list|show]`: no subcommand lists.
#include <iostream>
#include <memory>
#include <set>

#include "command.hpp"
#include "mlsysim/errors.hpp"

namespace mlsysim::cli {
namespace {

struct CatalogOptions {
  std::string tier, name;
};

// A tier no device has is a typo, not an empty list: name the tiers the catalog has.
void check_tier(const Catalog& c, const std::string& tier) {
  if (tier.empty()) return;
  std::set<std::string> tiers;
  for (const auto& hw : c.all_hardware()) tiers.insert(hw.tier);
  if (tiers.count(tier)) return;
  std::string valid;
  for (const auto& t : tiers) valid += (valid.empty() ? "" : ", ") + t;
  throw BadInput("--tier '" + tier + "' matches no device; tiers: " + valid);
}

const CommandRegistrar hardware_registrar(30, "hardware", [](CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<CatalogOptions>();
  auto* cmd = app.add_subcommand("hardware", "List or show catalog hardware");
  cmd->require_subcommand(0, 1);
  const auto tier_option = [&](CLI::App* on) {
    on->add_option("--tier", o->tier, "cloud | workstation | edge | mobile | tiny (or a --catalog's own)");
  };
  tier_option(cmd);
  tier_option(cmd->add_subcommand("list", "List devices (the default)"));
  auto* show = cmd->add_subcommand("show", "Show one device with its sources");
  show->add_option("name", o->name, "Device id or alias")->required();
  return Command{cmd, [o, &g, show] {
    const Format f = parse_format(g.format);
    const auto catalog_owner = load_catalog(g);
    const Catalog& c = *catalog_owner;
    if (!show->parsed()) check_tier(c, o->tier);
    out_stream() << (show->parsed() ? hardware_show(c.hardware(o->name), f) : hardware_list(c, f, o->tier));
    return kExitOk;
  }};
});

const CommandRegistrar models_registrar(31, "models", [](CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<CatalogOptions>();
  auto* cmd = app.add_subcommand("models", "List or show catalog models");
  cmd->require_subcommand(0, 1);
  cmd->add_subcommand("list", "List models (the default)");
  auto* show = cmd->add_subcommand("show", "Show one model");
  show->add_option("name", o->name, "Model id, alias or config.json path")->required();
  return Command{cmd, [o, &g, show] {
    const Format f = parse_format(g.format);
    const auto catalog_owner = load_catalog(g);
    const Catalog& c = *catalog_owner;
    if (show->parsed()) {
      ModelSpec custom;
      out_stream() << model_show(resolve_model(c, o->name, custom), f);
    } else {
      out_stream() << model_list(c, f);
    }
    return kExitOk;
  }};
});

}  // namespace
}  // namespace mlsysim::cli
