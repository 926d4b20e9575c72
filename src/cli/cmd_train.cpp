// `mlsysim train`: one distributed training step of a transformer on a cluster (DistributedModel).
#include <iostream>
#include <optional>

#include "held_out_accuracy.hpp"
#include "mlsysim/units/format.hpp"
#include "operating_costs.hpp"
#include "train_options.hpp"

namespace mlsysim::cli {
namespace {

// The run as a whole (failures, checkpoints, energy, money): flags in the units people quote.
struct RunFlags {
  std::optional<double> gpu_mtbf_hours;  // unset: RunOptions' default, Llama 3's fleet
  double checkpoint_gbps = kLlama3CheckpointBandwidth.si() / 1e9;
  double restart_minutes = 10, checkpoint_interval_minutes = 0;
  OperatingCostFlags costs;

  [[nodiscard]] RunOptions options(const HardwareSpec& hw) const {
    RunOptions r;
    if (gpu_mtbf_hours) r.gpu_mtbf = units::hours(*gpu_mtbf_hours);
    r.checkpoint_bandwidth = BytesPerSecond(checkpoint_gbps * 1e9);
    r.restart = units::seconds(restart_minutes * 60);
    r.checkpoint_interval = units::seconds(checkpoint_interval_minutes * 60);
    r.costs = costs.costs(hw);
    return r;
  }
};

void add_run_flags(CLI::App* cmd, RunFlags& f) {
  cmd->add_option("--gpu-mtbf-hours", f.gpu_mtbf_hours,
                  "Hours between job-interrupting failures per GPU (default 50677: Llama 3, 419 in 54 days on "
                  "16,384 H100s)");
  cmd->add_option("--checkpoint-bandwidth", f.checkpoint_gbps,
                  "GB/s the storage sustains for a checkpoint write (default 2000: Llama 3's Tectonic)");
  cmd->add_option("--restart-minutes", f.restart_minutes,
                  "Minutes from a failure to computing again (default 10, an assumption)");
  cmd->add_option("--checkpoint-interval-minutes", f.checkpoint_interval_minutes,
                  "Minutes of work between checkpoints (default 0: Daly's optimum)");
  add_operating_cost_flags(cmd, f.costs);
}

nlohmann::ordered_json run_json(const RunOutlook& r) {
  if (!r.finishes)
    return {{"finishes", false},
            {"why_not", r.why_not},
            {"cluster_mtbf_hours", r.cluster_mtbf.si() / 3600.0},
            {"checkpoint_interval_s", r.checkpoint_interval.si()},
            {"goodput", r.goodput},
            {"trace", r.trace}};
  return {{"finishes", true},
          {"cluster_mtbf_hours", r.cluster_mtbf.si() / 3600.0},
          {"failure_probability", r.failure_probability},
          {"expected_failures", r.expected_failures},
          {"checkpoint_bytes", r.checkpoint_bytes.si()},
          {"checkpoint_write_s", r.checkpoint_cost.si()},
          {"checkpoint_interval_s", r.checkpoint_interval.si()},
          {"checkpoint_interval_optimal", r.interval_is_optimal},
          {"young_interval_s", r.young_interval.si()},
          {"wall_time_s", r.wall_time.si()},
          {"wall_time_days", r.wall_time.si() / 86400.0},
          {"goodput", r.goodput},
          {"gpu_hours", r.gpu_hours},
          {"gpu_power_w", r.gpu_power.si()},
          {"it_energy_kwh", r.it_energy.si() / 3.6e6},
          {"facility_energy_kwh", r.facility_energy.si() / 3.6e6},
          {"emissions_kg_co2", r.emissions.si()},
          {"cost_usd", r.cost.si()},
          {"gpu_hour_usd", units::in_usd_per_hour(r.gpu_rate)},
          {"trace", r.trace}};
}

std::string run_table(const RunOutlook& r) {
  std::string s = "\nrun (failures, checkpoints, energy, cost):\n";
  if (!r.finishes) return s + "  DOES NOT FINISH: " + r.why_not + "\n";
  auto row = [&](const std::string& k, const std::string& v) { s += fmt::format("  {:<24}{}\n", k, v); };
  row("cluster MTBF", fmt::format("{:.3g} h; {:.3g} failures expected", r.cluster_mtbf.si() / 3600.0,
                                  r.expected_failures));
  row("checkpoint", fmt::format("{}, {:.1f} s to write, every {:.1f} min of work{}",
                                units::format_bytes(r.checkpoint_bytes), r.checkpoint_cost.si(),
                                r.checkpoint_interval.si() / 60.0, r.interval_is_optimal ? " (optimal)" : ""));
  row("wall time", fmt::format("{:.2f} days, goodput {:.1f}%, {:.3g} {}-hours", r.wall_time.si() / 86400.0,
                               100 * r.goodput, r.gpu_hours, r.unit));
  row("energy", fmt::format("{:.3g} MWh at the facility ({:.0f} W per {})", r.facility_energy.si() / 3.6e9,
                            r.gpu_power.si(), r.unit));
  row("emissions", fmt::format("{:.3g} t CO2", r.emissions.si() / 1e3));
  row("cost", "$" + units::format_count(r.cost.si()));
  for (const auto& t : r.trace) s += "  " + t + "\n";
  return s;
}

int run_train(const GlobalOptions& g, const TrainOptions& o, const RunFlags& f) {
  const Format format = parse_format(g.format);
  const auto s = make_train_setup(g, o);
  const TrainingResult r = train(*s->model, *s->hw, s->cluster, s->request);
  const RunOutlook run = run_outlook(r, f.options(*s->hw));
  switch (format) {
    case Format::Json: {
      auto j = training_json(r);
      j["run"] = run_json(run);
      out_stream() << j.dump(2) << "\n";
      break;
    }
    case Format::Csv: {
      auto j = training_json(r);
      j.erase("breakdown_s"); j.erase("memory"); j.erase("trace"); j.erase("remedies");
      const auto run_fields = run_json(run);  // named: items() would not keep a temporary alive
      for (const auto& [k, v] : run_fields.items())
        if (k != "trace") j["run_" + k] = v;
      out_stream() << csv_from_rows(nlohmann::ordered_json::array({j}));
      break;
    }
    case Format::Table:
      out_stream() << training_table(r) << run_table(run) << accuracy_line_for("training", kGraphGroup, r.hardware);
      break;
  }
  if (!r.feasible) {
    err_stream() << "error: " << does_not_fit_message(r) << "\n";
    return kExitDoesNotFit;
  }
  return kExitOk;
}

const CommandRegistrar registrar(21, "train", [](CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<TrainOptions>();
  auto* cmd = app.add_subcommand("train", "Distributed training step: TP x PP x DP x CP x EP on a cluster");
  add_train_options(cmd, *o, true);
  auto f = std::make_shared<RunFlags>();
  add_run_flags(cmd, *f);
  return Command{cmd, [o, f, &g] { return run_train(g, *o, *f); }};
});

}  // namespace
}  // namespace mlsysim::cli
