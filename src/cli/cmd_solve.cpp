// `mlsysim solve`: one step of a workload on one device (the engine; Engine.solve in Python).
#include <fmt/format.h>

#include <iostream>
#include <memory>

#include "command.hpp"
#include "held_out_accuracy.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/solvers/engine.hpp"

namespace mlsysim::cli {
namespace {

struct SolveOptions {
  std::string model, hardware, phase, precision, kv_precision, compute_precision, recompute = "none",
      runtime = "graph", fusion = "auto", attention = "flash", activation_scaling = "static";
  int batch = 1;
  std::optional<int> seq_len, context;
  double efficiency = 0;
  bool operators = false;
  bool accuracy = false;
  bool quantize_head = false;
  LoraOptions lora;
};

const char* validation_category(Phase phase) {
  switch (phase) {
    case Phase::Decode: return "decode";
    case Phase::Prefill: return "prefill";
    case Phase::Inference: return "inference";
    case Phase::Train: return "training";
  }
  return "decode";
}

int run_solve(const GlobalOptions& g, const SolveOptions& o) {
  const Format format = parse_format(g.format);
  const Workload w(g, o.model, o.hardware);
  const ModelSpec& model = w.model;
  const HardwareSpec& hw = w.hw;
  SolveRequest r;
  if (!o.phase.empty())
    r.phase = parse_enum<Phase>("--phase", o.phase,
                                {{"inference", Phase::Inference}, {"prefill", Phase::Prefill},
                                 {"decode", Phase::Decode}, {"train", Phase::Train}});
  r.batch = o.batch;
  r.seq_len = o.seq_len;
  r.context = o.context;
  if (!o.precision.empty()) r.precision = parse_precision_flag("--precision", o.precision);
  if (!o.kv_precision.empty()) r.kv_precision = parse_precision_flag("--kv-precision", o.kv_precision);
  if (!o.compute_precision.empty())
    r.compute_precision = parse_precision_flag("--compute-precision", o.compute_precision);
  r.quantize_head = o.quantize_head;
  r.recompute = parse_enum<Recompute>("--recompute", o.recompute,
                                      {{"none", Recompute::None},
                                       {"selective", Recompute::Selective},
                                       {"full", Recompute::Full}});
  r.runtime = parse_runtime_flag(o.runtime);
  r.fusion = parse_fusion_flag(o.fusion);
  r.attention = parse_attention_flag(o.attention);
  r.activation_scaling = parse_activation_scaling_flag(o.activation_scaling);
  r.lora = parse_lora_options(o.lora);
  r.efficiency = o.efficiency;  // checked by the solver

  const Profile p = solve(model, hw, r);
  // The error bar beside the answer: always in the table, on request in JSON (it re-predicts the
  // category's validation points, tens of milliseconds). The textbook model has no such record.
  std::optional<HeldOutAccuracy> accuracy;
  if ((format == Format::Table || o.accuracy) && r.efficiency == 0)
    accuracy = held_out_accuracy(validation_category(p.phase),
                                 r.runtime == Runtime::Graph ? kGraphGroup : kEagerGroup, hw.id);
  switch (format) {
    case Format::Json: {
      auto j = profile_json(p);
      if (o.accuracy) j["accuracy"] = accuracy ? accuracy_json(*accuracy) : nlohmann::ordered_json();
      out_stream() << j.dump(2) << "\n";
      break;
    }
    case Format::Csv: out_stream() << profile_csv(p); break;
    case Format::Table:
      out_stream() << profile_table(p, o.operators);
      if (accuracy) out_stream() << accuracy_line(*accuracy);
      break;
  }
  if (!p.feasible) {
    err_stream() << "error: " << does_not_fit_message(p) << "\n";
    return kExitDoesNotFit;
  }
  return kExitOk;
}

const CommandRegistrar registrar(10, "solve", [](CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<SolveOptions>();
  auto* cmd = app.add_subcommand("solve", "Time one step of a workload on one device");
  add_workload_options(cmd, o->model, o->hardware);
  cmd->add_option("--phase,-p", o->phase, "inference | prefill | decode | train");
  cmd->add_option("--batch-size,-b", o->batch, "Sequences / samples per step (>= 1)");
  cmd->add_option("--seq-len,-s", o->seq_len, "Tokens per sequence (prefill/train/inference)");
  cmd->add_option("--context,-c", o->context, "Decode: tokens already in the KV cache (default 1024)");
  cmd->add_option("--precision", o->precision, "fp32 | tf32 | fp16 | bf16 | fp8 | int8 | int4");
  cmd->add_option("--kv-precision", o->kv_precision, "KV-cache precision (default: math precision)");
  cmd->add_option("--compute-precision", o->compute_precision, kComputePrecisionHelp);
  cmd->add_option("--activation-scaling", o->activation_scaling, kActivationScalingHelp);
  cmd->add_flag("--quantize-head", o->quantize_head, kQuantizeHeadHelp);
  cmd->add_option("--recompute", o->recompute, "Training recomputation: none | selective | full");
  cmd->add_option("--runtime", o->runtime,
                  "graph (CUDA graphs / compiled, default) | eager (per-op host dispatch)");
  cmd->add_option("--fusion", o->fusion,
                  "auto (default: fused under graph, unfused under eager) | fused (compiled kernels) | "
                  "unfused (one kernel per PyTorch op) | hf (Hugging Face transformers modules, eager; "
                  "--phase train: autocast over fp32 parameters, config dropout on)");
  cmd->add_option("--attention", o->attention, kAttentionHelp);
  add_lora_options(cmd, o->lora);
  add_efficiency_option(cmd, o->efficiency);
  cmd->add_flag("--operators", o->operators, "Table output: list every operator");
  cmd->add_flag("--accuracy", o->accuracy,
                "JSON output: add `accuracy`, the held-out validation error of this kind of "
                "prediction (the table always shows it)");
  return Command{cmd, [o, &g] { return run_solve(g, *o); }};
});

}  // namespace
}  // namespace mlsysim::cli
