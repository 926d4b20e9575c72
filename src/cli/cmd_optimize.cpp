// `mlsysim optimize parallelism`: exhaustive search of training layouts (ParallelismOptimizer).
#include <iostream>

#include "train_options.hpp"
#include "mlsysim/solvers/parallelism_optimizer.hpp"
#include "mlsysim/solvers/worker_threads.hpp"

namespace mlsysim::cli {
namespace {

struct OptimizeOptions {
  std::string model, hardware, cluster, precision, objective = "time";
  int gpus = 0, global_batch = 0, top = 5, threads = 0;
  std::optional<int> seq_len, max_tp, max_pp;
  std::optional<double> tokens;
  bool tp_comm_overlap = false, overlap_p2p_comm = false;
  LoraOptions lora;
};

int run_optimize(const GlobalOptions& g, const OptimizeOptions& o) {
  const Format format = parse_format(g.format);
  TrainOptions t;
  t.model = o.model;
  t.hardware = o.hardware;
  t.cluster = o.cluster;
  t.gpus = o.gpus;
  const auto s = make_train_setup(g, t);
  OptimizerRequest q;
  q.gpus = o.gpus;
  q.global_batch = o.global_batch;
  q.seq_len = o.seq_len;
  if (!o.precision.empty()) q.precision = parse_precision_flag("--precision", o.precision);
  q.max_tp = o.max_tp;
  q.max_pp = o.max_pp;
  q.objective = parse_enum<Objective>("--objective", o.objective, {{"time", Objective::StepTime}, {"cost", Objective::Cost}});
  q.top = o.top;
  check_worker_threads(o.threads);
  q.threads = o.threads;
  q.tokens = o.tokens;
  q.tp_comm_overlap = o.tp_comm_overlap;
  q.pp_comm_overlap = o.overlap_p2p_comm;
  q.lora = parse_lora_options(o.lora);
  const OptimizerResult r = optimize_parallelism(*s->model, *s->hw, s->cluster, q);
  nlohmann::ordered_json j;
  j["model"] = s->model->id;
  j["hardware"] = s->hw->id;
  j["cluster"] = s->cluster.id;
  j["searched"] = r.searched;
  j["feasible"] = r.feasible;
  j["did_not_fit"] = r.did_not_fit;
  j["rejected"] = r.rejected;
  j["search_seconds"] = r.search_time.si();
  j["best"] = training_json(r.best());
  nlohmann::ordered_json top = nlohmann::ordered_json::array();
  for (const auto& c : r.top) {
    auto row = training_json(c);
    row.erase("trace");
    top.push_back(row);
  }
  j["top"] = top;
  j["explanation"] = r.explanation;
  if (format == Format::Json) {
    out_stream() << j.dump(2) << "\n";
  } else if (format == Format::Csv) {
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    for (auto row : top) {
      row.erase("breakdown_s"); row.erase("memory"); row.erase("remedies");
      rows.push_back(row);
    }
    out_stream() << csv_from_rows(rows);
  } else {
    // SP: Megatron sequence parallelism over the TP group (only meaningful with TP > 1); layouts
    // that differ only in it would otherwise print as identical rows.
    std::string table = fmt::format("{:<4}{:<5}{:<4}{:<5}{:<5}{:<5}{:<5}{:<4}{:<4}{:<11}{:<6}{:>10}{:>8}{:>8}{:>8}{:>10}\n",
                                  "#", "TP", "SP", "PP", "DP", "CP", "EP", "v", "mb", "recompute", "ZeRO", "step s",
                                  "MFU", "comm", "bubble", "mem GB");
    int i = 1;
    for (const auto& c : r.top)
      table += fmt::format("{:<4}{:<5}{:<4}{:<5}{:<5}{:<5}{:<5}{:<4}{:<4}{:<11}{:<6}{:>10.3f}{:>7.1f}%{:>7.1f}%{:>7.1f}%{:>10.1f}\n",
                         i++, c.layout.tp, c.layout.tp > 1 ? (c.sequence_parallel ? "on" : "off") : "-",
                         c.layout.pp, c.layout.dp, c.layout.cp, c.layout.ep, c.layout.vpp, c.micro_batch,
                         describe_recompute(c), c.zero_stage, c.step_time.si(), 100 * c.mfu,
                         100 * c.communication_fraction, 100 * c.bubble_fraction, in_gb(c.memory.total()));
    table += "\nwhy:\n";
    for (const auto& e : r.explanation) table += "  " + e + "\n";
    table += "\nwinner:\n";
    for (const auto& e : r.best().trace) table += "  " + e + "\n";
    out_stream() << table;
  }
  return kExitOk;
}

const CommandRegistrar registrar(22, "optimize", [](CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<OptimizeOptions>();
  auto* opt = app.add_subcommand("optimize", "Search design spaces");
  opt->require_subcommand(1);
  auto* cmd = opt->add_subcommand("parallelism", "Best TP x PP x DP x CP x EP x micro-batch x recompute x ZeRO");
  cmd->add_option("--model,-m", o->model, "Model id or a Hugging Face config.json path")->required();
  cmd->add_option("--hardware,-H", o->hardware, "Accelerator id (its standard node and fabric)");
  cmd->add_option("--cluster", o->cluster, "Named cluster");
  cmd->add_option("--gpus,-n", o->gpus, "GPUs (default: the whole --cluster)");
  cmd->add_option("--global-batch-size,-B", o->global_batch, "Sequences per optimizer step")->required();
  cmd->add_option("--seq-len,-s", o->seq_len, "Tokens per sequence");
  cmd->add_option("--precision", o->precision, "Precision (default: the device's best 16-bit)");
  cmd->add_option("--max-tp", o->max_tp, "Largest TP degree (default: GPUs per node)");
  cmd->add_option("--max-pp", o->max_pp, "Largest PP degree (default: layers)");
  cmd->add_option("--objective", o->objective, "time (step time) | cost (GPU-seconds per step)");
  cmd->add_option("--top", o->top, "How many layouts to list");
  cmd->add_option("--threads", o->threads, "Search threads (default: all cores)");
  cmd->add_option("--tokens", o->tokens, "Training tokens for time-to-train");
  cmd->add_flag("--tp-comm-overlap", o->tp_comm_overlap,
                "Every layout chunks its TP collectives under the GEMMs (as `train --tp-comm-overlap`)");
  cmd->add_flag("--overlap-p2p-comm", o->overlap_p2p_comm,
                "Every layout overlaps its pipeline sends with compute (as `train --overlap-p2p-comm`)");
  add_lora_options(cmd, o->lora);
  return Command{opt, [o, &g] { return run_optimize(g, *o); }};
});

}  // namespace
}  // namespace mlsysim::cli
