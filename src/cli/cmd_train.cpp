// `mlsysim train`: one distributed training step of a transformer on a cluster (DistributedModel).
#include <iostream>

#include "held_out_accuracy.hpp"
#include "train_options.hpp"

namespace mlsysim::cli {
namespace {

int run_train(const GlobalOptions& g, const TrainOptions& o) {
  const Format format = parse_format(g.format);
  const auto s = make_train_setup(g, o);
  const TrainingResult r = train(*s->model, *s->hw, s->cluster, s->request);
  switch (format) {
    case Format::Json: std::cout << training_json(r).dump(2) << "\n"; break;
    case Format::Csv: {
      auto j = training_json(r);
      j.erase("breakdown_s"); j.erase("memory"); j.erase("trace"); j.erase("remedies");
      std::cout << csv_from_rows(nlohmann::ordered_json::array({j}));
      break;
    }
    case Format::Table:
      std::cout << training_table(r) << accuracy_line_for("training", kGraphGroup);
      break;
  }
  if (!r.feasible) {
    std::cerr << "error: " << does_not_fit_message(r) << "\n";
    return kExitDoesNotFit;
  }
  return kExitOk;
}

const CommandRegistrar registrar(21, "train", [](CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<TrainOptions>();
  auto* cmd = app.add_subcommand("train", "Distributed training step: TP x PP x DP x CP x EP on a cluster");
  add_train_options(cmd, *o, true);
  return Command{cmd, [o, &g] { return run_train(g, *o); }};
});

}  // namespace
}  // namespace mlsysim::cli
