// The command-line contract: flags, JSON fields, exit codes (0 ok, 1 bad input, 2 does not fit).
#include <gtest/gtest.h>

#include "cli_run.hpp"
#include "input_errors.hpp"
#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/physics/operations.hpp"

#include <algorithm>
#include <iterator>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <vector>
#include <nlohmann/json.hpp>
#include <string>
#include <sys/wait.h>

namespace {

using Result = mlsysim::testing::CliResult;
Result run(const std::string& args) { return mlsysim::testing::run_cli(args); }

// Fields of one CSV record (RFC 4180 quoting: "a,b" is one field, "" an escaped quote).
std::vector<std::string> csv_fields(const std::string& line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c == '"' && quoted && i + 1 < line.size() && line[i + 1] == '"') fields.back() += '"', ++i;
    else if (c == '"') quoted = !quoted;
    else if (c == ',' && !quoted) fields.emplace_back();
    else fields.back() += c;
  }
  return fields;
}

}  // namespace

// Every command writes CSV: a header and at least one record, each record as wide as the header,
// and the same numbers as its JSON. (train --format csv once read a destroyed temporary.)
TEST(Cli, EveryCommandWritesCsvAsWideAsItsHeader) {
  const std::vector<std::string> commands = {
      "solve -m llama3-8b -H h100",
      "serve -m llama3-8b -H h100 -s 1024",
      "compress -m llama3-8b -H h100 --target-bitwidth 4",
      "simulate -m llama3-8b -H h100 --rate 5 --requests 200 --seed 1",
      "sweep -m llama3-8b -H h100 -b 1,2",
      "kernel --op gemm -H h100 --m 1024 --n 1024 --k 1024",
      "collective --op allreduce --bytes 1e9 -n 8 -H h100",
      "train -m llama3-8b -H h100 -n 8",
      "optimize parallelism -m llama3-70b -H h100 -n 64 -B 512 --seq-len 4096",
      "amdahl -f 0.1 -k 8",
      "hardware list",
      "models show llama3-8b",
      "validate --category collective"};
  for (const auto& c : commands) {
    const auto r = run("--format csv " + c);
    ASSERT_EQ(r.code, 0) << c;
    std::istringstream lines(r.out);
    std::string header, line;
    ASSERT_TRUE(std::getline(lines, header)) << c;
    const size_t width = csv_fields(header).size();
    EXPECT_GT(width, 1u) << c;
    int records = 0;
    while (std::getline(lines, line)) {
      EXPECT_EQ(csv_fields(line).size(), width) << c << ": " << line;
      ++records;
    }
    EXPECT_GE(records, 1) << c;
  }
  // The train record carries the step and the run, with the JSON's numbers.
  const auto csv = run("--format csv train -m llama3-8b -H h100 -n 8");
  const auto json = nlohmann::json::parse(run("--format json train -m llama3-8b -H h100 -n 8").out);
  std::istringstream lines(csv.out);
  std::string header, record;
  std::getline(lines, header);
  std::getline(lines, record);
  const auto names = csv_fields(header), values = csv_fields(record);
  const auto column = [&](const std::string& name) {
    const auto it = std::find(names.begin(), names.end(), name);
    return it == names.end() ? std::string() : values[it - names.begin()];
  };
  EXPECT_DOUBLE_EQ(std::stod(column("step_time_s")), json["step_time_s"].get<double>());
  EXPECT_DOUBLE_EQ(std::stod(column("run_wall_time_s")), json["run"]["wall_time_s"].get<double>());
}

TEST(Cli, SolveJsonHasTheContractFields) {
  const Result r = run("solve --model llama3-8b --hardware h100 --phase decode --batch-size 1 "
                       "--context 1024 --format json");
  ASSERT_EQ(r.code, 0);
  const auto j = nlohmann::json::parse(r.out);
  for (const char* key : {"latency_s", "bottleneck", "mfu", "memory_footprint_bytes", "feasible",
                          "tokens_per_s", "operators", "trace"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["bottleneck"], "Memory");
  EXPECT_EQ(j["feasible"], true);
  EXPECT_GT(j["latency_s"].get<double>(), 0.004);
}

TEST(Cli, NamesAreCaseInsensitive) {
  const Result a = run("solve --model Llama3_8B --hardware H100 --format json");
  const Result b = run("solve --model llama3-8b --hardware h100 --format json");
  ASSERT_EQ(a.code, 0);
  EXPECT_EQ(nlohmann::json::parse(a.out)["latency_s"], nlohmann::json::parse(b.out)["latency_s"]);
  // So are the choices of enumerated flags (engine-parsed --runtime, CLI-parsed --phase and --op).
  const Result c = run("solve --model llama3-8b --hardware h100 --phase Prefill --runtime EAGER --format json");
  const Result d = run("solve --model llama3-8b --hardware h100 --phase prefill --runtime eager --format json");
  ASSERT_EQ(c.code, 0);
  EXPECT_EQ(nlohmann::json::parse(c.out)["latency_s"], nlohmann::json::parse(d.out)["latency_s"]);
  const Result e = run("collective --op All_Reduce --bytes 1e6 --gpus 8 --hardware h100 --format json");
  ASSERT_EQ(e.code, 0);
  EXPECT_EQ(nlohmann::json::parse(e.out)["op"], "all-reduce");
  EXPECT_EQ(run("solve --model llama3-8b --hardware h100 --phase sleep").code, 1);  // still checked
  // An empty name is reported as empty, not matched to the nearest catalog id.
  const Result empty = run("solve --model '' --hardware h100 --format json");
  EXPECT_EQ(empty.code, 1);
  EXPECT_NE(nlohmann::json::parse(empty.out)["error"].get<std::string>().find("the model name is empty"),
            std::string::npos);
}

TEST(Cli, EveryPhaseRuns) {
  EXPECT_EQ(run("solve -m llama3-8b -H h100 --phase prefill --seq-len 512 --format json").code, 0);
  EXPECT_EQ(run("solve -m gpt2 -H a100 --phase train -b 8 --seq-len 1024 --format json").code, 0);
  EXPECT_EQ(run("solve -m resnet50 -H h100 --phase inference -b 256 --format json").code, 0);
  EXPECT_EQ(run("solve -m bert-base -H l4 --phase inference -b 8 --format csv").code, 0);
}

TEST(Cli, BadInputExitsOne) {
  EXPECT_EQ(run("solve --model llama3-8 --hardware h100").code, 1);
  EXPECT_EQ(run("solve --model llama3-8b --hardware h100 --batch-size 0").code, 1);
  EXPECT_EQ(run("solve --model llama3-8b --hardware h100 --precision fp6").code, 1);
  EXPECT_EQ(run("solve --model llama3-8b --hardware h100 --phase sleep").code, 1);
  EXPECT_EQ(run("solve --model llama3-8b").code, 1);  // missing --hardware
  const Result att = run("solve --model llama3-8b --hardware h100 --attention naive --format json");
  EXPECT_EQ(att.code, 1);
  EXPECT_NE(nlohmann::json::parse(att.out)["error"].get<std::string>().find(
                "--attention must be flash|materialized"),
            std::string::npos);
  EXPECT_EQ(run("train --model llama3-70b --hardware h100 --gpus 64 --tp 8 --attention naive").code, 1);
  const Result j = run("solve --model llama3-8 --hardware h100 --format json");
  EXPECT_NE(nlohmann::json::parse(j.out)["error"].get<std::string>().find("did you mean 'llama3-8b'"),
            std::string::npos);
}

TEST(Cli, TrainGlobalBatchErrorsNameTheValidValues) {
  // An explicit batch below one sequence is an error, not the default batch in disguise.
  for (const char* b : {"0", "-4"}) {
    const Result r = run(std::string("train --model llama3-8b --hardware h100 --gpus 8 --global-batch-size ") + b +
                         " --format json");
    EXPECT_EQ(r.code, 1) << b;
    EXPECT_NE(nlohmann::json::parse(r.out)["error"].get<std::string>().find("--global-batch-size must be >= 1"),
              std::string::npos) << r.out;
  }
  // Not a multiple of DP x micro-batch: the suggestions are the multiples around it, never a repeat.
  const auto error_of = [&](const std::string& flags) {
    return nlohmann::json::parse(run("train --model llama3-8b --hardware h100 --gpus 8 " + flags +
                                     " --format json").out)["error"].get<std::string>();
  };
  // 8 GPUs x micro-batch 3 = 24 sequences per micro-step: 8 is below one unit, 50 lies between 48 and 72.
  EXPECT_NE(error_of("--global-batch-size 8 --micro-batch-size 3").find("use 24 (or a multiple)"), std::string::npos);
  EXPECT_NE(error_of("--global-batch-size 50 --micro-batch-size 3").find("use 48 or 72"), std::string::npos);
}

TEST(Cli, SweepListsExpandOrSayWhatIsWrong) {
  const auto batches = [&](const std::string& spec) {
    const Result r = run("sweep -m llama3-8b -H h100 -b " + spec + " --format json");
    std::vector<int> out;
    if (r.code != 0) return out;
    const auto sweep = nlohmann::json::parse(r.out);
    for (const auto& row : sweep["points"]) out.push_back(row["batch_size"].get<int>());
    std::sort(out.begin(), out.end());
    return out;
  };
  EXPECT_EQ(batches("2:64:2"), (std::vector<int>{2, 4, 8, 16, 32, 64}));
  EXPECT_EQ(batches("128:512:+128"), (std::vector<int>{128, 256, 384, 512}));
  // 1.5^n rounded: 1, 1.5, 2.25, 3.4, 5.1, 7.6, 11.4 -> repeats (2, 2) dropped.
  EXPECT_EQ(batches("1:16:1.5"), (std::vector<int>{1, 2, 3, 5, 8, 11}));
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"0:10:2", "starts at 1"},         {"10:1:2", "below start"},      {"1:64:1", "factor must be > 1"},
      {"1:64:+0", "step must be >= 1"},  {"5x", "is not an integer"},    {"1:64:x", "is not a number"},
      {"1:1000000000:+1", "more than 100000 values"}};
  for (const auto& [spec, why] : bad) {
    const Result r = run("sweep -m llama3-8b -H h100 -b " + spec + " --format json");
    EXPECT_EQ(r.code, 1) << spec;
    EXPECT_NE(nlohmann::json::parse(r.out)["error"].get<std::string>().find(why), std::string::npos) << spec;
  }
}

TEST(Cli, CollectiveFormulaModeTimesOnlyTheAlgorithmsItHasFormulasFor) {
  // --bandwidth is the tutorial's alpha-beta formula: ring for every op, tree for all-reduce. Any other
  // algorithm (or a tree all-gather) is an error, not a ring labelled with the requested name.
  const auto json = [&](const std::string& flags) {
    const Result r = run("collective --bytes 1e6 --gpus 8 --bandwidth 100 " + flags + " --format json");
    return std::make_pair(r.code, nlohmann::json::parse(r.out));
  };
  const auto [tree_code, tree] = json("--op allreduce --algorithm tree");
  ASSERT_EQ(tree_code, 0);
  EXPECT_EQ(tree["algorithm"], "tree");
  const auto [ring_code, ring] = json("--op allreduce");
  ASSERT_EQ(ring_code, 0);
  EXPECT_EQ(ring["algorithm"], "ring");
  EXPECT_NE(tree["time_s"].get<double>(), ring["time_s"].get<double>());
  const auto [nvls_code, nvls] = json("--op allreduce --algorithm nvls");
  EXPECT_EQ(nvls_code, 1);
  EXPECT_NE(nvls["error"].get<std::string>().find("needs a cluster"), std::string::npos);
  const auto [gather_code, gather] = json("--op allgather --algorithm tree");
  EXPECT_EQ(gather_code, 1);
  EXPECT_NE(gather["error"].get<std::string>().find("all-reduce only"), std::string::npos);
}

TEST(Cli, DisaggregationFlagsNeedTheDecodeHardware) {
  // Without --decode-hardware there is no decode pool for --decode-tp (or --kv-link-gbs) to size.
  for (const char* flag : {"--decode-tp 2", "--kv-link-gbs 50"}) {
    const Result r = run(std::string("serve -m llama3-8b -H h100 -s 100 ") + flag + " --format json");
    EXPECT_EQ(r.code, 1) << flag;
    EXPECT_NE(nlohmann::json::parse(r.out)["error"].get<std::string>().find("needs --decode-hardware"),
              std::string::npos) << flag;
  }
  EXPECT_EQ(run("serve -m llama3-8b -H h100 -s 100 --decode-hardware h200 --decode-tp 2 --format json").code, 0);
}

TEST(Cli, AmdahlProfilesNameEachComponentOnceWithANumber) {
  const auto error_of = [&](const std::string& profile) {
    const Result r = run("amdahl --profile '" + profile + "' --format json");
    return r.code == 0 ? std::string() : nlohmann::json::parse(r.out)["error"].get<std::string>();
  };
  EXPECT_NE(error_of("=0.5,b=0.5").find("no component name"), std::string::npos);
  EXPECT_NE(error_of("a=0.5,a=0.5").find("'a' appears twice"), std::string::npos);
  EXPECT_NE(error_of("a=0.5;b=0.5").find("'0.5;b=0.5' is not a number"), std::string::npos);  // not 0.5
  // Spaces around names and values are allowed, and the names match --speedups.
  const Result ok = run("amdahl --profile 'compute=0.5, comm = 0.5' --speedups comm=2 --format json");
  ASSERT_EQ(ok.code, 0) << ok.out;
  EXPECT_DOUBLE_EQ(nlohmann::json::parse(ok.out)["speedup"].get<double>(), 1.0 / (0.5 + 0.5 / 2));  // Amdahl
}

TEST(Cli, WorkloadThatDoesNotFitExitsTwo) {
  const Result r = run("solve --model llama3-70b --hardware h100 --format json");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(nlohmann::json::parse(r.out)["feasible"], false);
}

TEST(Cli, CatalogListings) {
  const Result hw = run("hardware list --format json");
  ASSERT_EQ(hw.code, 0);
  EXPECT_GE(nlohmann::json::parse(hw.out)["hardware"].size(), 35u);
  const Result models = run("models list --format json");
  ASSERT_EQ(models.code, 0);
  EXPECT_GE(nlohmann::json::parse(models.out)["models"].size(), 30u);
  const Result show = run("hardware show H100 --format json");
  ASSERT_EQ(show.code, 0);
  EXPECT_NEAR(nlohmann::json::parse(show.out)["dense_peak_flops_per_s"]["bf16"].get<double>(),
              989.4e12, 1e12);
  EXPECT_EQ(run("models show nosuchmodel").code, 1);
  EXPECT_EQ(run("hardware list --format csv").code, 0);
}

// A Hugging Face repo id is a model name, not a path, when no such file exists; an unknown one is
// an error that says how to get its config.json.
TEST(Cli, HuggingFaceRepoIdsNameCatalogModels) {
  const Result r = run("solve --model meta-llama/Meta-Llama-3-8B --hardware h100 --format json");
  ASSERT_EQ(r.code, 0);
  EXPECT_EQ(nlohmann::json::parse(r.out)["model"], "llama3-8b");
  EXPECT_EQ(run("solve --model someorg/some-model --hardware h100").code, 1);
  const Result unknown = run("solve --model someorg/some-model --hardware h100 2>&1; true");
  EXPECT_NE(unknown.out.find("huggingface.co/someorg/some-model/resolve/main/config.json"), std::string::npos)
      << unknown.out;
}

// `train` answers for the whole run: failures, checkpoints, wall time, energy, emissions, cost.
// LoRA fine-tuning through both commands: the adapters' count in JSON, the reasoning in the trace,
// and the flag that needs another one named.
TEST(Cli, LoraFlagsReachSolveAndTrain) {
  const Result t = run("train --model llama2-70b --hardware h100 --gpus 8 --tp 8 --global-batch-size 8 "
                       "--seq-len 4096 --lora-rank 16 --tokens 1e8 --format json");
  ASSERT_EQ(t.code, 0) << t.out;
  const auto tj = nlohmann::json::parse(t.out);
  EXPECT_DOUBLE_EQ(tj.at("trainable_parameters").get<double>(), 80.0 * 16 * ((8192 + 10240) + (8192 + 8192)));
  EXPECT_EQ(tj.at("lora_rank").get<int>(), 16);
  EXPECT_EQ(tj.at("lora_targets").get<std::string>(), "attention");
  bool traced = false;
  for (const auto& line : tj.at("trace")) traced |= line.get<std::string>().rfind("LoRA: rank 16", 0) == 0;
  EXPECT_TRUE(traced) << tj.at("trace").dump();
  const Result s = run("solve --model llama3-8b --hardware h100 --phase train --seq-len 2048 --lora-rank 8 "
                       "--lora-targets all --format json");
  ASSERT_EQ(s.code, 0) << s.out;
  EXPECT_EQ(nlohmann::json::parse(s.out).at("lora_targets").get<std::string>(), "all");
  const Result bad = run("solve --model llama3-8b --hardware h100 --phase train --lora-targets all --format json");
  EXPECT_EQ(bad.code, 1);
  EXPECT_NE(bad.out.find("needs --lora-rank"), std::string::npos) << bad.out;
}

// `hardware show` states what the links can do: how many devices a bridge joins, and whether the
// driver allows peer-to-peer over the host link (GeForce's does not).
TEST(Cli, HardwareShowStatesLinkReachAndPeerToPeer) {
  const auto geforce = nlohmann::json::parse(run("hardware show rtx-4090 --format json").out);
  EXPECT_FALSE(geforce.at("host_link").at("peer_to_peer").get<bool>());
  const auto bridged = nlohmann::json::parse(run("hardware show rtx-a6000 --format json").out);
  EXPECT_EQ(bridged.at("interconnect").at("gpus").get<int>(), 2);
  EXPECT_TRUE(bridged.at("host_link").at("peer_to_peer").get<bool>());
  EXPECT_NE(run("hardware show rtx-4090").out.find("no peer-to-peer"), std::string::npos);
}

// `hardware show` gives the sustained (power-limited) matmul rate training steps run at, with its
// source, and 0 where none is known: B200's published MSMF is 1421 of 2250 TFLOP/s.
TEST(Cli, HardwareShowStatesTheSustainedMatmulRate) {
  const auto b200 = nlohmann::json::parse(run("hardware show b200 --format json").out).at("efficiency");
  EXPECT_NEAR(b200.at("sustained_gemm_bf16").get<double>(), 1421.0 / 2250.0, 1e-4);
  EXPECT_NE(b200.at("sustained_gemm_source").get<std::string>().find("MSMF"), std::string::npos);
  const auto a100 = nlohmann::json::parse(run("hardware show a100-80gb --format json").out).at("efficiency");
  EXPECT_EQ(a100.at("sustained_gemm_bf16").get<double>(), 0.0);
  EXPECT_NE(run("hardware show b200").out.find("sustained matmul"), std::string::npos);
}

// A device with no standard node trains alone, or as one PCIe server: a single RTX 4090 has no
// communication at all, and 4 of them spend time on the data-parallel gradient sync.
TEST(Cli, TrainRunsOnDevicesWithoutAStandardNode) {
  const Result one = run("train -m gpt2 -H rtx-4090 -n 1 --seq-len 1024 --global-batch-size 8 --format json");
  ASSERT_EQ(one.code, 0) << one.out;
  const auto j1 = nlohmann::json::parse(one.out);
  EXPECT_EQ(j1.at("gpus"), 1);
  EXPECT_EQ(j1.at("communication_fraction").get<double>(), 0.0);
  const Result four = run("train -m gpt2 -H rtx-4090 -n 4 --seq-len 1024 --global-batch-size 32 --format json");
  ASSERT_EQ(four.code, 0) << four.out;
  EXPECT_GT(nlohmann::json::parse(four.out).at("communication_fraction").get<double>(), 0.0);
  EXPECT_NE(run("train -m gpt2 -H rtx-4090 -n 16 --seq-len 1024 2>&1; true").out.find("--cluster"), std::string::npos);
}

// Cost figures price each device at its own on-demand rental from the catalog: an L4 at AWS
// g6.xlarge's $0.8048/h; a device no cloud rents at the H100's rate, saying so; --gpu-hour-usd wins.
TEST(Cli, CostsUseTheDevicesOwnRentalRate) {
  const auto cost_and_rate = [](const std::string& cmd) {
    const Result r = run(cmd + " --format json");
    EXPECT_EQ(r.code, 0) << r.out;
    const auto j = nlohmann::json::parse(r.out);
    return std::pair{j.at("cost_per_million_tokens_usd").get<double>(), j.at("gpu_hour_usd").get<double>()};
  };
  const std::string l4 = "serve -m llama3-8b -H l4 -s 1024 --output-len 256 -b 8";
  const auto [l4_cost, l4_rate] = cost_and_rate(l4);
  EXPECT_DOUBLE_EQ(l4_rate, 0.8048);
  EXPECT_DOUBLE_EQ(mlsysim::Catalog::builtin().hardware("l4").rental_rate->si(), 0.8048 / 3600);
  // Cost per token is proportional to the price of an hour: the same run at $2/h.
  const auto [l4_at_2, rate_2] = cost_and_rate(l4 + " --gpu-hour-usd 2");
  EXPECT_DOUBLE_EQ(rate_2, 2.0);
  EXPECT_NEAR(l4_at_2 / l4_cost, 2.0 / 0.8048, 1e-9);
  // The fallback is the H100's catalog rate, one number in one place.
  EXPECT_DOUBLE_EQ(mlsysim::Catalog::builtin().hardware("h100").rental_rate->si(), mlsysim::kDefaultGpuRate.si());
  const auto [desk_cost, desk_rate] = cost_and_rate("serve -m llama3-8b -H rtx-4090 -s 1024 --output-len 256 -b 8");
  EXPECT_DOUBLE_EQ(desk_rate, 55.04 / 8);  // AWS p5.48xlarge on-demand over its 8 H100s
  EXPECT_NE(run("serve -m llama3-8b -H rtx-4090 -s 1024 --output-len 256 -b 8").out.find(
                "the catalog lists no cloud rental for rtx-4090"),
            std::string::npos);
}

TEST(Cli, TrainReportsTheRunAsAWhole) {
  const std::string cmd = "train --model llama3-8b --hardware h100 --gpus 1024 --global-batch-size 4096 "
                          "--seq-len 4096 --format json";
  const Result r = run(cmd);
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  const auto& run_j = j.at("run");
  // 50677 h per GPU / 1024 GPUs.
  EXPECT_NEAR(run_j.at("cluster_mtbf_hours").get<double>(), 16384.0 * 54 * 24 / 419 / 1024, 1e-6);
  EXPECT_GT(run_j.at("wall_time_s").get<double>(), j.at("time_to_train_s").get<double>());
  EXPECT_NEAR(run_j.at("goodput").get<double>(),
              j.at("time_to_train_s").get<double>() / run_j.at("wall_time_s").get<double>(), 1e-9);
  // The H100's on-demand rate: AWS p5.48xlarge, $55.04/h for 8 GPUs (catalog [device.rental]).
  EXPECT_NEAR(run_j.at("cost_usd").get<double>(), run_j.at("gpu_hours").get<double>() * 55.04 / 8, 1e-3);
  // A cheaper grid emits less for the same energy.
  const auto clean = nlohmann::json::parse(run(cmd + " --grid-kg-per-kwh 0.039").out).at("run");
  EXPECT_NEAR(clean.at("emissions_kg_co2").get<double>(), run_j.at("emissions_kg_co2").get<double>() * 0.039 / 0.390,
              run_j.at("emissions_kg_co2").get<double>() * 1e-3);
  EXPECT_EQ(run(cmd + " --pue 0.5").code, 1);
  EXPECT_NE(run(cmd + " --pue 0.5 2>&1; true").out.find("--pue must be in [1, 3]"), std::string::npos);
  // The trace points at the published range only while the MTBF is the Llama 3 default; a fleet's own
  // figure (even one that rounds to the default's 50677 h) is reported as given.
  const std::string table = "train --model llama3-8b --hardware h100 --gpus 1024 --global-batch-size 4096 --seq-len 4096";
  const std::string range_note = "the MTBF is Llama 3's";
  EXPECT_NE(run(table).out.find(range_note), std::string::npos);
  const Result own = run(table + " --gpu-mtbf-hours 50677");
  ASSERT_EQ(own.code, 0) << own.out;
  EXPECT_EQ(own.out.find(range_note), std::string::npos) << own.out;
}

// Every row of the layout table is a different layout: the columns name everything the search
// varies (sequence parallelism included), so no two rows read the same.
TEST(Cli, OptimizeTableRowsAreDistinctLayouts) {
  const Result r = run("optimize parallelism --model llama3-70b --hardware h100 --gpus 64 "
                       "--global-batch-size 512 --seq-len 4096 --top 10");
  ASSERT_EQ(r.code, 0) << r.out;
  std::istringstream lines(r.out);
  std::string line;
  std::getline(lines, line);
  ASSERT_NE(line.find("SP"), std::string::npos) << line;
  std::set<std::string> layouts;
  int rows = 0;
  while (std::getline(lines, line) && !line.empty()) {
    std::istringstream cols(line);
    std::string rank, layout, col;
    cols >> rank;
    for (int i = 0; i < 10 && cols >> col; ++i) layout += col + " ";  // TP SP PP DP CP EP v mb recompute ZeRO
    layouts.insert(layout);
    ++rows;
  }
  EXPECT_GE(rows, 5);
  EXPECT_EQ(layouts.size(), static_cast<size_t>(rows));
}

// `mlsysim models` and `mlsysim hardware` alone list, the same rows as `list`; a tier filter keeps
// only that tier, and a tier that does not exist is an error naming the valid ones.
TEST(Cli, CatalogCommandsListWithoutASubcommand) {
  const Result models = run("models --format json"), models_list = run("models list --format json");
  ASSERT_EQ(models.code, 0);
  EXPECT_EQ(models.out, models_list.out);
  const Result hw = run("hardware --format json"), hw_list = run("hardware list --format json");
  ASSERT_EQ(hw.code, 0);
  EXPECT_EQ(hw.out, hw_list.out);
  const Result edge = run("hardware --tier edge --format json");
  ASSERT_EQ(edge.code, 0);
  const auto rows = nlohmann::json::parse(edge.out)["hardware"];
  ASSERT_FALSE(rows.empty());
  EXPECT_LT(rows.size(), nlohmann::json::parse(hw.out)["hardware"].size());
  for (const auto& row : rows) EXPECT_EQ(row["tier"], "edge");
  const Result bogus = run("hardware --tier bogus 2>&1; true");
  EXPECT_NE(bogus.out.find("--tier 'bogus' matches no device; tiers: cloud, edge, mobile, tiny, workstation"),
            std::string::npos)
      << bogus.out;
  EXPECT_NE(run("hardware --tier bogus").code, 0);
}

TEST(Cli, ValidateScoresEveryPointAgainstItsMeasurement) {
  // stderr joins stdout: a run this long into a pipe must not write its terminal progress line there.
  const Result r = run("validate --format json 2>&1; exit $?");
  ASSERT_EQ(r.code, 0);
  ASSERT_EQ(r.out.find("scoring points"), std::string::npos);
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_GE(j["points"].size(), 60u);
  int scored = 0;
  for (const auto& p : j["points"]) {
    // A point whose command cannot run drops out of every summary without a trace in the numbers;
    // the dataset must only hold points the public CLI can reproduce.
    EXPECT_EQ(p["status"], "ok") << p["id"] << ": " << p["command"];
    if (p["status"] != "ok") continue;
    const double measured = p["measured"], predicted = p["predicted"];
    EXPECT_NEAR(p["error"].get<double>(), (predicted - measured) / measured, 1e-12) << p["id"];
    EXPECT_GT(predicted, 0) << p["id"];
    if (!p["used_for_calibration"].get<bool>() && p["confidence"] != "low") ++scored;
  }
  EXPECT_EQ(j["summary"]["overall"]["mlsysim"]["count"].get<int>(), scored);
  // Capacity: every scored point whose own command says it does not fit is counted, and only those.
  int over_full = 0;
  for (const auto& p : j["points"]) {
    ASSERT_TRUE(p["feasible"].is_boolean()) << p["id"];
    if (p["status"] == "ok" && !p["used_for_calibration"].get<bool>() && p["confidence"] != "low" &&
        !p["feasible"].get<bool>()) {
      ++over_full;
      const Result own = run(p["command"].get<std::string>().substr(8) + " --format json");
      EXPECT_EQ(own.code, 2) << p["id"] << ": exit 2 means 'does not fit'";
    }
  }
  EXPECT_EQ(j["summary"]["scored_points_that_do_not_fit"].get<int>(), over_full);
  // Every scored point lands in exactly one runtime group and one category.
  int by_runtime = 0, by_category = 0;
  for (const auto& [name, s] : j["summary"]["by_runtime"].items()) by_runtime += s["mlsysim"]["count"].get<int>();
  for (const auto& [name, s] : j["summary"]["by_category"].items()) by_category += s["mlsysim"]["count"].get<int>();
  EXPECT_EQ(by_runtime, scored);
  EXPECT_EQ(by_category, scored);
  EXPECT_TRUE(j["summary"]["by_runtime"].contains("eager"));
  // Accuracy guard (README "Accuracy"): held-out graph/compiled/serving-engine points stay within a
  // 10% median error and everything within 15%; a physics change that breaks this must say why.
  EXPECT_LE(j["summary"]["by_runtime"]["graph/engine"]["mlsysim"]["median_abs_error"].get<double>(), 0.10);
  EXPECT_LE(j["summary"]["overall"]["mlsysim"]["median_abs_error"].get<double>(), 0.15);
  EXPECT_EQ(run("validate --category nosuch").code, 1);
}

TEST(Cli, ValidateGroupsTheSummaryByDevicePrecisionOriginAndSource) {
  // `--by hardware`: each scored point lands in the group named by its command's --hardware (or
  // --cluster) value, and each group's count and median signed error are those of its points. The
  // decode category has four devices, both origins and four sources: enough to check the grouping
  // without the seconds-long serving searches (the full set is scored by the tests above).
  const auto j = nlohmann::json::parse(run("validate --category decode --by hardware --format json").out);
  std::map<std::string, std::vector<double>> expected;
  for (const auto& p : j["points"]) {
    if (p["status"] != "ok" || p["used_for_calibration"].get<bool>() || p["confidence"] == "low") continue;
    auto value_of = [&](const std::string& flag) {
      std::istringstream words(p["command"].get<std::string>());
      for (std::string w; words >> w;)
        if (w == flag && words >> w) return w;
      return std::string();
    };
    const std::string device = value_of("--hardware").empty() ? value_of("--cluster") : value_of("--hardware");
    expected[device].push_back(p["error"].get<double>());
  }
  const auto& groups = j["summary"]["by_hardware"];
  ASSERT_GE(groups.size(), 3u);
  ASSERT_EQ(groups.size(), expected.size());
  for (auto& [device, errors] : expected) {
    ASSERT_TRUE(groups.contains(device)) << device;
    EXPECT_EQ(groups[device]["mlsysim"]["count"].get<size_t>(), errors.size()) << device;
    std::sort(errors.begin(), errors.end());
    const size_t n = errors.size();
    const double median = n % 2 ? errors[n / 2] : (errors[n / 2 - 1] + errors[n / 2]) / 2;
    EXPECT_NEAR(groups[device]["mlsysim"]["median_signed_error"].get<double>(), median, 1e-12) << device;
  }
  // Origin splits the same points into measured-here and published, nothing lost.
  const auto origin = nlohmann::json::parse(run("validate --category decode --by origin --format json").out)["summary"];
  EXPECT_EQ(origin["by_origin"]["measured here"]["mlsysim"]["count"].get<int>() +
                origin["by_origin"]["published"]["mlsysim"]["count"].get<int>(),
            origin["overall"]["mlsysim"]["count"].get<int>());
  // Source groups by the id's first word: every scored point lands in exactly one, nothing lost.
  const auto by_source = nlohmann::json::parse(run("validate --category decode --by source --format json").out);
  std::map<std::string, int> per_source;
  for (const auto& p : by_source["points"]) {
    if (p["status"] != "ok" || p["used_for_calibration"].get<bool>() || p["confidence"] == "low") continue;
    const std::string id = p["id"].get<std::string>();
    ++per_source[id.substr(0, id.find('-'))];
  }
  const auto& sources = by_source["summary"]["by_source"];
  ASSERT_EQ(sources.size(), per_source.size());
  for (const auto& [source, count] : per_source)
    EXPECT_EQ(sources[source]["mlsysim"]["count"].get<int>(), count) << source;
  EXPECT_EQ(run("validate --by vendor").code, 1);
}

TEST(Cli, ReadmeAccuracyFiguresAreTheOnesValidatePrints) {
  // The README states the current accuracy; a physics change that moves it must update the text.
  std::ifstream in(std::string(MLSYSIM_SOURCE_DIR) + "/README.md");
  ASSERT_TRUE(in.good());
  std::stringstream buffer;
  buffer << in.rdbuf();
  std::string readme = buffer.str();
  for (char& c : readme)
    if (c == '\n') c = ' ';  // the sentence wraps across lines
  const auto summary = nlohmann::json::parse(run("validate --format json").out)["summary"];
  auto near = [](const nlohmann::json& s, const std::string& median, const std::string& p90) {
    return std::fabs(100 * s["median_abs_error"].get<double>() - std::stod(median)) < 0.051 &&
           std::fabs(100 * s["p90_abs_error"].get<double>() - std::stod(p90)) < 0.051;
  };
  std::smatch m;
  ASSERT_TRUE(std::regex_search(readme, m, std::regex(R"(Over all (\d+) scored points: median ([\d.]+)%, p90 ([\d.]+)%)")));
  const auto& overall = summary["overall"]["mlsysim"];
  EXPECT_EQ(std::stoi(m[1]), overall["count"].get<int>());
  EXPECT_TRUE(near(overall, m[2], m[3])) << "README says " << m[2] << "/" << m[3] << "; validate: " << overall;
  // "(per category: decode 3.1/23.4, prefill 11.1/39.3, ...)"
  ASSERT_TRUE(std::regex_search(readme, m, std::regex(R"(\(per category: ([^)]*)\))")));
  const std::string list = m[1];
  const std::regex pair(R"(([a-z]+) ([\d.]+)/([\d.]+))");
  int checked = 0;
  for (std::sregex_iterator it(list.begin(), list.end(), pair), end; it != end; ++it, ++checked) {
    std::string category = (*it)[1];
    if (category == "collectives") category = "collective";
    if (category == "kernels") category = "kernel";
    ASSERT_TRUE(summary["by_category"].contains(category)) << category;
    EXPECT_TRUE(near(summary["by_category"][category]["mlsysim"], (*it)[2], (*it)[3]))
        << category << ": README says " << (*it)[2] << "/" << (*it)[3] << "; validate: "
        << summary["by_category"][category]["mlsysim"];
  }
  EXPECT_EQ(checked, static_cast<int>(summary["by_category"].size()));
}

TEST(Cli, ValidatePlotsEveryPredictionOnLogAxesAroundYEqualsX) {
  const std::string dir = ::testing::TempDir();
  const std::string svg_path = dir + "/mlsysim_validate_plot.svg", html_path = dir + "/mlsysim_validate_plot.html";
  std::remove(svg_path.c_str());
  const Result r = run("validate --category decode --plot " + svg_path + " --format json");
  ASSERT_EQ(r.code, 0);
  const auto j = nlohmann::json::parse(r.out);
  std::ifstream f(svg_path);
  ASSERT_TRUE(f.good());
  const std::string svg((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_NE(svg.find("y = x"), std::string::npos);
  // One data marker per point with a prediction, at log-scaled positions: x = pad + (log10 v - l0) /
  // (l1 - l0) * size over whole decades spanning the data (size 560, pad 60; y measured from the top).
  std::vector<std::pair<double, double>> xy;
  for (const auto& p : j["points"])
    if (p["predicted"].is_number() && p["predicted"].get<double>() > 0)
      xy.emplace_back(p["measured"].get<double>(), p["predicted"].get<double>());
  ASSERT_GT(xy.size(), 10u);
  double lo = 1e300, hi = 0;
  for (auto [x, y] : xy) lo = std::min({lo, x, y}), hi = std::max({hi, x, y});
  const double l0 = std::floor(std::log10(lo)), l1 = std::ceil(std::log10(hi)), size = 560, pad = 60;
  auto pos = [&](double v) { return pad + (std::log10(v) - l0) / (l1 - l0) * size; };
  std::vector<std::pair<double, double>> markers;
  const std::regex marker(R"re(<circle cx="([0-9.e+-]+)" cy="([0-9.e+-]+)" r="4" fill="[^"]+" fill-opacity="0.8"/>)re");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), marker); it != std::sregex_iterator(); ++it)
    markers.emplace_back(std::stod((*it)[1]), std::stod((*it)[2]));
  ASSERT_EQ(markers.size(), xy.size());
  for (size_t i = 0; i < xy.size(); ++i) {
    EXPECT_NEAR(markers[i].first, pos(xy[i].first), 0.01) << i;
    EXPECT_NEAR(markers[i].second, size + 2 * pad - pos(xy[i].second), 0.01) << i;
  }
  // The HTML page wraps the same SVG; any other extension is refused before anything is written.
  ASSERT_EQ(run("validate --category decode --plot " + html_path + " --format json").code, 0);
  std::ifstream h(html_path);
  const std::string html((std::istreambuf_iterator<char>(h)), std::istreambuf_iterator<char>());
  EXPECT_EQ(html.rfind("<!doctype html>", 0), 0u);
  EXPECT_NE(html.find(svg), std::string::npos);
  const std::string png = dir + "/mlsysim_validate_plot.png";
  std::remove(png.c_str());
  EXPECT_EQ(run("validate --category decode --plot " + png).code, 1);
  EXPECT_FALSE(std::ifstream(png).good());
}

TEST(Cli, ValidateWorstListsTheLargestErrorsFirst) {
  const Result r = run("validate --category prefill --worst 4");
  ASSERT_EQ(r.code, 0);
  std::istringstream lines(r.out);
  std::string line;
  std::getline(lines, line);  // header
  std::vector<double> errors;
  while (std::getline(lines, line) && !line.empty()) {
    const auto pct = line.find('%');
    ASSERT_NE(pct, std::string::npos) << line;
    const auto start = line.rfind(' ', pct) + 1;
    errors.push_back(std::fabs(std::stod(line.substr(start, pct - start))));
  }
  ASSERT_EQ(errors.size(), 4u);
  EXPECT_TRUE(std::is_sorted(errors.rbegin(), errors.rend()));
  // And the worst is the largest |error| of the whole category.
  const auto all = nlohmann::json::parse(run("validate --category prefill --format json").out);
  double largest = 0;
  for (const auto& p : all["points"])
    if (p["status"] == "ok" && !p["used_for_calibration"].get<bool>() && p["confidence"] != "low")
      largest = std::max(largest, std::fabs(p["error"].get<double>()));
  EXPECT_NEAR(errors.front(), 100 * largest, 0.06);
}

TEST(Cli, PcieH100PairAllReducesOverItsNvlinkBridge) {
  // Two H100 PCIe cards share one NVLink 4 bridge set: 300 GB/s per direction x 0.82 (NCCL's usable
  // share of a Hopper link). For 2 ranks a ring all-reduce moves S/2 each way per step, 2 steps:
  // t = 2 x (1/2) x S / (0.82 x 300 GB/s) + 2 alpha, and busbw = algbw = S / t.
  const double S = 4294967296.0;
  const Result r = run("collective --op allreduce --bytes 4294967296 --gpus 2 --hardware h100-pcie --format json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  const double expected_t = S / (0.82 * 300e9) + 2 * 0.5e-6;
  EXPECT_NEAR(j["time_s"].get<double>(), expected_t, 1e-6);
  EXPECT_NEAR(j["busbw_bytes_per_s"].get<double>(), S / expected_t, 1e8);
}

TEST(Cli, SolveShowsTheHeldOutErrorOfItsKindOfPrediction) {
  // The error bar: the median and p90 |error| of the held-out decode points of the same device and
  // runtime group, recomputed here from `validate`'s per-point errors.
  const Result v = run("validate --category decode --format json");
  ASSERT_EQ(v.code, 0);
  const auto validation = nlohmann::json::parse(v.out);
  std::vector<double> eager_errors;
  for (const auto& p : validation["points"]) {
    if (p["status"] != "ok" || p["used_for_calibration"].get<bool>() || p["confidence"] == "low") continue;
    const std::string command = p["command"].get<std::string>();
    if (command.find("--runtime eager") != std::string::npos &&
        command.find("--hardware h100 ") != std::string::npos)
      eager_errors.push_back(std::fabs(p["error"].get<double>()));
  }
  ASSERT_GE(eager_errors.size(), 3u);
  std::sort(eager_errors.begin(), eager_errors.end());
  const size_t n = eager_errors.size();
  const double median = n % 2 ? eager_errors[n / 2] : (eager_errors[n / 2 - 1] + eager_errors[n / 2]) / 2;

  const Result r = run("solve --model llama3-8b --hardware h100 --runtime eager --accuracy --format json");
  ASSERT_EQ(r.code, 0);
  const auto a = nlohmann::json::parse(r.out)["accuracy"];
  EXPECT_EQ(a["category"], "decode");
  EXPECT_EQ(a["runtime"], "eager");
  EXPECT_EQ(a["hardware"], "h100");
  EXPECT_EQ(a["points"].get<size_t>(), n);
  EXPECT_NEAR(a["median_abs_error"].get<double>(), median, 1e-12);
  EXPECT_LE(a["median_abs_error"].get<double>(), a["p90_abs_error"].get<double>());
  // JSON without --accuracy keeps its contract; the table always carries the line.
  const Result plain = run("solve --model llama3-8b --hardware h100 --format json");
  EXPECT_FALSE(nlohmann::json::parse(plain.out).contains("accuracy"));
  const Result table = run("solve --model llama3-8b --hardware h100 --phase prefill --seq-len 512");
  EXPECT_NE(table.out.find("Held-out error of prefill predictions on h100 (graph/engine)"), std::string::npos);
  // A device with no validation point of its own says so rather than borrowing others' figure quietly.
  const Result unvalidated = run("solve --model llama3-8b --hardware b200");
  EXPECT_NE(unvalidated.out.find("Held-out error of decode predictions (graph/engine)"), std::string::npos);
  EXPECT_NE(unvalidated.out.find("No held-out decode point (graph/engine) is on b200"), std::string::npos);
  // A device with enough points of its own gets its own figure, which can differ a lot from the
  // category's (the MI300X's rates are published microbenchmarks, its software stacks younger).
  const Result mi300x = run("serve --model llama3-8b --hardware mi300x --seq-len 512 --batch-size 8");
  EXPECT_NE(mi300x.out.find("Held-out error of serving predictions on mi300x (graph/engine)"), std::string::npos)
      << mi300x.out;
  // The textbook model (--efficiency) has no validation record of its own: no line.
  EXPECT_EQ(run("solve --model llama3-8b --hardware h100 --efficiency 0.5").out.find("Held-out"),
            std::string::npos);
}

TEST(Cli, CalibrateWritesAFileTheEngineLoads) {
  const std::string measurements =
      std::string(MLSYSIM_SOURCE_DIR) + "/catalog/calibration/measurements/H100_SXM5_80GB.json";
  const std::string out = "/tmp/mlsysim_test_h100_calibration.toml";
  ASSERT_EQ(run("calibrate --from " + measurements + " --hardware h100 --output " + out).code, 0);
  // The built-in H100 calibration was produced the same way: same prediction.
  const auto builtin = nlohmann::json::parse(run("solve -m llama3-8b -H h100 --format json").out);
  const auto loaded =
      nlohmann::json::parse(run("--calibration " + out + " solve -m llama3-8b -H h100 --format json").out);
  EXPECT_NEAR(loaded["latency_s"].get<double>(), builtin["latency_s"].get<double>(), 1e-9);
  // A slower memory system in the calibration file makes memory-bound decode slower.
  {
    std::FILE* f = std::fopen("/tmp/mlsysim_test_slow.toml", "w");
    std::fputs("[[calibration]]\ndevice = \"h100\"\nmemory_efficiency = 0.5\n", f);
    std::fclose(f);
  }
  const auto slow = nlohmann::json::parse(
      run("--calibration /tmp/mlsysim_test_slow.toml solve -m llama3-8b -H h100 --format json").out);
  EXPECT_GT(slow["memory_time_s"].get<double>(), 1.7 * builtin["memory_time_s"].get<double>());
  EXPECT_EQ(run("calibrate --from /nonexistent.json --hardware h100").code, 1);
}

TEST(Cli, CalibrateFitsAFabricFromAnNcclTestsLog) {
  const std::string log =
      std::string(MLSYSIM_SOURCE_DIR) + "/catalog/calibration/measurements/gcp-a3-mega-16gpu-all_reduce_perf.log";
  std::system("mkdir -p /tmp/mlsysim_test_fabric /tmp/mlsysim_test_fabric_slow");
  ASSERT_EQ(run("calibrate --nccl-tests " + log + " --cluster gcp-a3-mega --output /tmp/mlsysim_test_fabric/f.toml")
                .code,
            0);
  const std::string at_1gib = " collective --op allreduce --bytes 1073741824 --gpus 16 --cluster gcp-a3-mega --format json";
  // The built-in TCPXO fabric is this same fit: the same prediction (to the file's 4 digits).
  const double builtin = nlohmann::json::parse(run(at_1gib).out)["time_s"].get<double>();
  const double loaded =
      nlohmann::json::parse(run("--catalog /tmp/mlsysim_test_fabric" + at_1gib).out)["time_s"].get<double>();
  EXPECT_NEAR(loaded, builtin, 1e-3 * builtin);
  EXPECT_NEAR(builtin, 6.759e-3, 0.02 * 6.759e-3);  // the measured 1 GiB row of the log
  // A network twice as slow at every size (each time doubled) calibrates to twice the time.
  {
    std::ifstream in(log);
    std::ofstream out("/tmp/mlsysim_test_fabric_slow.log");
    out << "all_reduce_perf\n";
    for (int r = 0; r < 16; ++r) out << "#  Rank " << r << " Group 0\n";
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream words(line);
      std::vector<std::string> t;
      for (std::string w; words >> w;) t.push_back(w);
      if (t.size() != 13 || t[0] == "#") continue;
      const double us = 2 * std::stod(t[5]);
      out << t[0] << " " << t[1] << " float sum -1 " << us << " 0 0 0 " << us << " 0 0 0\n";
    }
  }
  ASSERT_EQ(run("calibrate --nccl-tests /tmp/mlsysim_test_fabric_slow.log --cluster gcp-a3-mega --output "
                "/tmp/mlsysim_test_fabric_slow/f.toml")
                .code,
            0);
  const double slow =
      nlohmann::json::parse(run("--catalog /tmp/mlsysim_test_fabric_slow" + at_1gib).out)["time_s"].get<double>();
  EXPECT_NEAR(slow, 2 * 6.759e-3, 0.03 * 2 * 6.759e-3);
  // The fleet listing shows the small-message protocol where a fabric has one: for the built-in
  // TCPXO fabric, the figure the fit above wrote.
  double fitted_small_efficiency = -1;
  {
    std::ifstream fitted("/tmp/mlsysim_test_fabric/f.toml");
    for (std::string line; std::getline(fitted, line);)
      if (line.rfind("small_message_efficiency = ", 0) == 0) fitted_small_efficiency = std::stod(line.substr(27));
  }
  ASSERT_GT(fitted_small_efficiency, 0);
  const auto list = nlohmann::json::parse(run("collective --list --format json").out);
  for (const auto& f : list["fabrics"]) {
    if (f["id"] == "tcpxo-200g")
      EXPECT_NEAR(f["small_message_efficiency"].get<double>(), fitted_small_efficiency, 1e-4);
    if (f["id"] == "ib-ndr") EXPECT_FALSE(f.contains("small_message_efficiency"));  // not calibrated
  }
  // Exactly one source; a missing log is a clear error.
  EXPECT_EQ(run("calibrate").code, 1);
  EXPECT_EQ(run("calibrate --from x.json --nccl-tests y.log").code, 1);
  EXPECT_EQ(run("calibrate --nccl-tests /nonexistent.log --cluster gcp-a3-mega").code, 1);
}

TEST(Cli, EveryAnswerCarriesTheHeldOutErrorOfItsCategory) {
  // train, serve, collective and attention kernels end their tables with their category's error bar,
  // the median |error| `validate` reports for that category (graph/engine group).
  const auto summary = nlohmann::json::parse(run("validate --format json").out)["summary"];
  auto median_of = [&](const std::string& category) {
    const auto& c = summary["by_category"];
    return c.contains(category) ? c[category]["mlsysim"]["median_abs_error"].get<double>() : -1.0;
  };
  auto fmt_percent = [](double fraction) {  // as the line prints it: one decimal
    char buf[32];
    std::snprintf(buf, sizeof buf, "median %.1f%%", 100 * fraction);
    return std::string(buf);
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"train --model llama3-70b --cluster Research_256 --gpus 64 --tp 8 --global-batch-size 512 --seq-len 4096",
       "training"},
      {"serve --model llama3-8b --hardware h100 --seq-len 1024 --batch-size 8", "serving"},
      // serve's "max concurrent" rows rest on the KV pool: its capacity error bar too.
      {"serve --model llama3-8b --hardware h100 --seq-len 1024 --batch-size 8", "capacity"},
      {"collective --op allreduce --bytes 1e9 --gpus 8 --hardware h100", "collective"},
      {"kernel --op attention-fwd --hardware h100 --heads 16 --head-dim 128 --seq-len 16384 --causal", "kernel"}};
  for (const auto& [command, category] : cases) {
    const Result r = run(command);
    ASSERT_EQ(r.code, 0) << command;
    const std::string line = "Held-out error of " + category + " predictions";
    ASSERT_NE(r.out.find(line), std::string::npos) << command;
    if (category == "collective" || category == "kernel" || category == "capacity") {  // all graph/engine
      const double median = median_of(category);
      ASSERT_GE(median, 0) << category;
      EXPECT_NE(r.out.find(fmt_percent(median)), std::string::npos) << command << "\n" << r.out;
    }
    // JSON output keeps its contract (and does not re-run the validation set).
    EXPECT_EQ(run(command + " --format json").out.find("Held-out"), std::string::npos) << command;
  }
  // A GEMM's error bar is the calibration fit, not the attention kernels' validation: no line.
  EXPECT_EQ(run("kernel --op gemm --hardware h100 --m 4096 --n 4096 --k 4096").out.find("Held-out"),
            std::string::npos);
}

// serve says it serves only when the runtime's KV pool admits a request: llama3-8b's 16.1 GB of
// weights plus vLLM's ~1 GB start-up reserve leave nothing in 24 GB x 0.7 on an L4, although the
// one request's own ledger (weights + its KV) fits. Exit 2, feasible false, the shortfall named.
// Power per busy GPU: the replica's energy over its GPU-seconds, so with tensor parallelism the
// per-token energy is that power x GPUs x time per token; between the idle floor and the TDP.
TEST(Cli, ServeReportsTheMeanPowerOfABusyGpu) {
  const auto j = nlohmann::json::parse(
      run("serve -m llama3.1-70b -H h100 --tp 4 -s 634 --output-len 717 -b 64 --format json").out);
  const double watts = j["average_power_per_gpu_w"].get<double>();
  EXPECT_GT(watts, 0.18 * 700);
  EXPECT_LE(watts, 700.0);
  const double busy_seconds = j["ttft_s"].get<double>() + j["itl_s"].get<double>() * 716;
  EXPECT_NEAR(j["energy_per_token_j"].get<double>(), watts * 4 * busy_seconds / (64.0 * 717),
              1e-9 * j["energy_per_token_j"].get<double>());
  EXPECT_NE(run("serve -m llama3.1-70b -H h100 --tp 4 -s 634 --output-len 717 -b 64").out.find("power / GPU"),
            std::string::npos);
}

// simulate runs the textbook single-efficiency model too (validate's side-by-side column): its
// compute-bound prefills take longer at a lower efficiency, so the same load runs slower.
TEST(Cli, SimulateRunsTheTextbookModel) {
  const std::string base = "simulate -m llama3-8b -H h100 --rate 1e6 -n 200 --max-batch 32 --format json";
  const auto tokens_per_s = [&](const std::string& extra) {
    return nlohmann::json::parse(run(base + extra).out)["tokens_per_s"].get<double>();
  };
  const double calibrated = tokens_per_s(""), half = tokens_per_s(" --efficiency 0.5");
  EXPECT_NE(half, calibrated);
  EXPECT_LT(tokens_per_s(" --efficiency 0.1"), half);
  EXPECT_NE(run(base + " --efficiency 0 2>&1; true").out.find("--efficiency: must be in [0.01, 1]"),
            std::string::npos);
}

// `hardware show` lists the board power the engine charges: the published defaults times the TDP,
// or a device's own fractions from a calibration file.
TEST(Cli, HardwareShowsTheBoardPowerItCharges) {
  const auto j = nlohmann::json::parse(run("hardware show h100 --format json").out)["board_power_w"];
  EXPECT_DOUBLE_EQ(j["idle"].get<double>(), 0.18 * 700);
  EXPECT_DOUBLE_EQ(j["memory_bound"].get<double>(), 0.70 * 700);
  EXPECT_DOUBLE_EQ(j["compute_bound"].get<double>(), 700.0);
  EXPECT_FALSE(j["calibrated"].get<bool>());
  const std::string path = ::testing::TempDir() + "/mlsysim_power_calibration.toml";
  std::ofstream(path) << "[[calibration]]\ndevice = \"h100\"\npower_idle_fraction = 0.15\n"
                         "power_memory_fraction = 0.5\npower_compute_fraction = 0.85\n";
  const auto own = nlohmann::json::parse(
      run("--calibration " + path + " hardware show h100 --format json").out)["board_power_w"];
  EXPECT_DOUBLE_EQ(own["idle"].get<double>(), 0.15 * 700);
  EXPECT_DOUBLE_EQ(own["memory_bound"].get<double>(), 0.65 * 700);
  EXPECT_TRUE(own["calibrated"].get<bool>());
}

// A CSV table keeps every row's fields even when rows differ: in this sweep the first rate leaves
// no steady state between its ramps and the second has one, whose figures must reach the file.
TEST(Cli, CsvKeepsFieldsOnlyLaterRowsHave) {
  const std::string csv =
      run("simulate -m llama3-8b -H h100 --sweep-rate 0.0001,1000 -n 20 --max-batch 16 --format csv").out;
  std::vector<std::vector<std::string>> lines;
  std::istringstream in(csv);
  for (std::string line; std::getline(in, line);) {
    lines.emplace_back();
    std::istringstream fields(line);
    for (std::string f; std::getline(fields, f, ',');) lines.back().push_back(f);
  }
  ASSERT_EQ(lines.size(), 3u) << csv;
  const auto column = std::find(lines[0].begin(), lines[0].end(), "steady_state_tokens_per_s");
  ASSERT_NE(column, lines[0].end()) << csv;
  const size_t i = static_cast<size_t>(column - lines[0].begin());
  ASSERT_GT(lines[2].size(), i) << csv;
  EXPECT_GT(std::stod(lines[2][i]), 0.0) << csv;  // the second rate's steady state, not dropped
}

TEST(Cli, ServeIsInfeasibleWhenTheKvPoolHoldsNoRequest) {
  const auto r = run("serve -m llama3-8b -H l4 -s 2048 --memory-utilization 0.7 --format json");
  EXPECT_EQ(r.code, 2);
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_FALSE(j["feasible"].get<bool>());
  EXPECT_EQ(j["continuous_batching"]["kv_budget_bytes"].get<double>(), 0.0);
  EXPECT_GT(j["continuous_batching"]["kv_shortfall_bytes"].get<double>(), 0.0);
  EXPECT_EQ(run("serve -m llama3-8b -H l4 -s 2048 --memory-utilization 0.9").code, 0);
}

// Disaggregated, the running requests' KV caches live on the decode GPUs: their pool sets the
// concurrency, the same as serving on those GPUs alone at that TP.
TEST(Cli, DisaggregatedConcurrencyIsTheDecodeGpusPool) {
  const auto disaggregated = nlohmann::json::parse(
      run("serve -m llama3-70b -H h100 -s 2048 --decode-hardware h200 --decode-tp 2 --format json").out);
  const auto on_h200 = nlohmann::json::parse(run("serve -m llama3-70b -H h200 -s 2048 --tp 2 --format json").out);
  EXPECT_EQ(disaggregated["max_concurrent_requests"]["paged"], on_h200["max_concurrent_requests"]["paged"]);
  EXPECT_GT(disaggregated["max_concurrent_requests"]["paged"].get<int>(), 100);
}


// Flags that only mean something together, or that contradict each other, are refused with the
// reason rather than one of them silently winning.
TEST(Cli, ContradictoryTrainingFlagsAreRefused) {
  EXPECT_EQ(run("train -m llama3-8b -H h100 -n 8 --straggler-value 3").code, 1);
  EXPECT_EQ(run("train -m llama3-8b -H h100 -n 8 --straggler factor --straggler-value 1.1").code, 0);
  EXPECT_EQ(run("train -m llama3-8b -H h100 -n 8 --no-overlap --overlap-efficiency 1").code, 1);
  EXPECT_EQ(run("optimize parallelism -m llama3-8b -H h100 -n 8 -B 64 --threads -3").code, 1);
  EXPECT_EQ(run("serve -m llama3-8b -H h100 -s 1024 --draft-tokens 8").code, 1);
  EXPECT_EQ(run("simulate -m llama3-8b -H h100 --rate 5 --sweep-rate 1,2").code, 1);
  EXPECT_EQ(run("simulate -m llama3-8b -H h100 --rate 5 --find-max-rate").code, 1);
}

// --find-max-rate answers with the rate and the simulation at it, in the JSON fields scripts read.
TEST(Cli, SimulateFindsTheMaxRateWithinTheSlos) {
  const Result r = run("simulate -m llama3-8b -H h100 --find-max-rate -n 500 --ttft-slo-ms 1000 --itl-slo-ms 60 "
                       "--format json");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_DOUBLE_EQ(j["rate_rps"].get<double>(), j["max_rate_rps"].get<double>());
  EXPECT_GT(j["failing_rate_rps"].get<double>(), j["max_rate_rps"].get<double>());
  EXPECT_LE(j["ttft_s"]["p99"].get<double>(), j["slo"]["ttft_p99_s"].get<double>());
  EXPECT_LE(j["tpot_s"]["p99"].get<double>(), j["slo"]["tpot_p99_s"].get<double>());
  EXPECT_DOUBLE_EQ(j["slo"]["tpot_p99_s"].get<double>(), 0.060);
  // CSV carries the search's fields too, flattened, with the same rate.
  const Result csv = run("simulate -m llama3-8b -H h100 --find-max-rate -n 500 --ttft-slo-ms 1000 --itl-slo-ms 60 "
                         "--format csv");
  ASSERT_EQ(csv.code, 0) << csv.out;
  const std::string header = csv.out.substr(0, csv.out.find('\n'));
  for (const char* column : {"max_rate_rps", "failing_rate_rps", "slo_ttft_p99_s", "slo_tpot_p99_s", "tpot_s_p99"})
    EXPECT_NE(header.find(column), std::string::npos) << column << " in " << header;
  EXPECT_NE(csv.out.find(std::to_string(j["search_requests"].get<int>())), std::string::npos);
}

// The engine reads efficiency 0 as "not given": typed on the command line it is refused, not
// silently replaced by the calibrated model.
TEST(Cli, AnExplicitZeroEfficiencyIsRefused) {
  for (const char* c : {"solve -m llama3-8b -H h100 --efficiency 0", "serve -m llama3-8b -H h100 -s 128 --efficiency 0",
                        "compress -m llama3-8b -H h100 --target int8 --no-fleet --efficiency 0"})
    EXPECT_EQ(run(c).code, 1) << c;
  EXPECT_EQ(run("solve -m llama3-8b -H h100 --efficiency 0.5").code, 0);
}

// The error a command reports in JSON mode (stdout, exit 1), parse errors of the flags included.
std::string json_error(const std::string& args) {
  const Result r = run("--format json " + args);
  EXPECT_EQ(r.code, 1) << args;
  const auto j = nlohmann::json::parse(r.out, nullptr, false);
  return j.is_object() && j.contains("error") ? j["error"].get<std::string>() : "(no JSON error: " + r.out + ")";
}

// Command lines a fuzzing campaign found crashing, overflowing to inf or negative numbers, or
// misread: each is refused with what was wrong and what is valid, in JSON too.
TEST(Cli, FuzzedCommandLinesAreRefusedWithTheirRange) {
  const std::vector<mlsysim::testing::RefusedInput> cases = {
      // The flag parser's own errors, in the project's words.
      {"solve -m llama3-8b -H h100 -b 1.5", "--batch-size takes a whole number"},
      {"solve -m llama3-8b -H h100 -b 2147483648", "at most 2147483647"},
      {"solve -m llama3-8b -H h100 -b 010", "plain decimal"},  // CLI11 would read octal 8
      {"solve -m llama3-8b -H h100 --batch-size=0x10", "plain decimal"},  // ... and hexadecimal 16
      {"solve -m llama3-8b -H h100 --batchsize 3", "did you mean --batch-size?"},
      {"solv -m llama3-8b", "unknown command 'solv' (did you mean 'solve'?)"},
      {"solve -m llama3-8b", "--hardware is required; `mlsysim solve --help`"},
      // Near-misses suggest the nearest name, not merely one that starts the same.
      {"solve -m llama3-8b -H h10", "did you mean 'h100'?"},
      {"solve -m llama3 -H h100", "did you mean 'llama3-8b'?"},
      // Thread creation used to abort the process (std::terminate) on this one.
      {"sweep -m all -H all --threads 100000", "--threads must be in [1, 1024]"},
      {"sweep -m llama3-8b -H h100 -b 0", "none of the sweep's 1 configurations"},
      {"train -m llama3-8b --cluster research-256 --gpu-mtbf-hours 1e-300", "--gpu-mtbf-hours must be in [1, 1e+09]"},
      {"train -m llama3-8b --cluster research-256 --straggler factor --straggler-value 1e308",
       "--straggler-value with --straggler factor"},
      {"optimize parallelism -m llama3-8b --cluster research-256 -B 256 --tokens inf", "--tokens must be in (0, 1e+18]"},
      {"simulate -m gpt2 -H h100 -n 50", "simulate needs its arrivals: --rate R"},
      // Widths near 2^31 split over tensor-parallel ranks used to wrap to negative TTFTs that "fit";
      // an infinite budget and a 1e308-byte message printed inf.
      {"amdahl --profile a=0.6,b=0.4 --budget-weeks inf", "--budget-weeks must be a finite number >= 0"},
      {"collective --bytes 1e308 -n 16", "--bytes must be in [0, 1e+15]"},
      // A missing compute path names the device's paths and the nearest one (not merely the first).
      {"kernel --op gemm -H l4 --precision fp4 --m 1024 --n 1024 --k 1024",
       "l4 has no fp4 compute path; it supports fp32, tf32, fp16, bf16, fp8, int8: use --precision fp8"},
      {"solve -m llama3-8b -H h100 --compute-precision int4", "use --compute-precision int8"},
      // An empty layout search says which constraint left nothing to search.
      {"optimize parallelism -m bert-base --cluster llama3-16k -B 1",
       "the fewest replicas any split has here is 32 (TP <= 8, PP <= 12): use a --global-batch-size that is a "
       "multiple of 32"},
      // A format an output cannot take is refused, not answered with TOML (or, in CSV, blank lines).
      {"calibrate --from catalog/calibration/measurements/H100_SXM5_80GB.json", "--format json does not apply"},
  };
  mlsysim::testing::expect_each_refused(cases, json_error);
  const Result several_tables = run("--format csv collective --list");
  EXPECT_EQ(several_tables.code, 1);
  EXPECT_EQ(several_tables.out, "");
  EXPECT_EQ(run("solve -m llama3-8b -H h100 -b 10 --context 1000").code, 0);  // plain decimals still read
}

// `calibrate --nccl-tests` states where the log's ranks sit as `collective` places them: 12 ranks
// on 8-GPU nodes are 8 + 4, not "8 per node x 2 nodes" (the fullest node's count times the nodes).
TEST(Cli, CalibrateStatesTheRealPlacementOfAnUnevenRankCount) {
  const std::string log =
      std::string(MLSYSIM_SOURCE_DIR) + "/catalog/calibration/measurements/gcp-a3-mega-16gpu-all_reduce_perf.log";
  // The same sizes with 12 '#  Rank' lines: a 12-rank run on the 2 x 8-GPU A3 Mega cluster.
  {
    std::ifstream in(log);
    std::ofstream out("/tmp/mlsysim_test_fabric_12ranks.log");
    out << "all_reduce_perf\n";
    for (int r = 0; r < 12; ++r) out << "#  Rank " << r << " Group 0\n";
    for (std::string line; std::getline(in, line);)
      if (line.rfind("#", 0) != 0 && line.find("Rank") == std::string::npos) out << line << "\n";
  }
  // The placement `collective` reports for the same 12 GPUs of the same cluster.
  const auto collective = nlohmann::json::parse(
      run("collective --op allreduce --bytes 1e6 --gpus 12 --cluster gcp-a3-mega --format json").out);
  const std::string placement = collective["placement"].get<std::string>();
  ASSERT_EQ(collective["nodes"].get<int>(), 2);
  // stderr carries the explanation: read it through a pipe of its own.
  const std::string cmd = std::string(MLSYSIM_BINARY) +
                          " calibrate --nccl-tests /tmp/mlsysim_test_fabric_12ranks.log --cluster gcp-a3-mega "
                          "--output /tmp/mlsysim_test_fabric_12ranks.toml 2>&1 >/dev/null";
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string err;
  std::array<char, 4096> buf{};
  for (size_t n; (n = fread(buf.data(), 1, buf.size(), pipe)) > 0;) err.append(buf.data(), n);
  const int status = pclose(pipe);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << err;
  EXPECT_NE(err.find("over 12 ranks of gcp-a3-mega (" + placement + ")"), std::string::npos)
      << "collective places them as '" << placement << "'\n" << err;
  // 8 on the first node, 4 on the second: the uneven split is stated, not 8 x 2 = 16 GPUs.
  EXPECT_NE(placement.find("of 8"), std::string::npos) << placement;
  EXPECT_NE(placement.find("of 4"), std::string::npos) << placement;
  EXPECT_EQ(err.find("8 per node"), std::string::npos) << err;
}

// Text names the device as its vendor does: a TPU pod trains on chips, a DGX on GPUs; flags and
// JSON keys keep "gpu" for every device (scripts depend on them).
TEST(Cli, TrainingTextNamesTheDeviceItRunsOn) {
  const Result tpu = run("train --model llama3-8b --hardware tpu-v5p --gpus 64 --tp 4 --global-batch-size 64 "
                         "--micro-batch-size 1 --seq-len 4096");
  ASSERT_EQ(tpu.code, 0) << tpu.out;
  for (const char* said : {"(64 chips of tpu-v5p)", "memory per chip", "chip-hours", "single chip", "per-chip MTBF"})
    EXPECT_NE(tpu.out.find(said), std::string::npos) << said << "\n" << tpu.out;
  EXPECT_EQ(tpu.out.find("64 GPUs"), std::string::npos) << tpu.out;
  const Result gpu = run("train --model llama3-8b --hardware h100 --gpus 16 --global-batch-size 64 --seq-len 4096");
  ASSERT_EQ(gpu.code, 0) << gpu.out;
  EXPECT_NE(gpu.out.find("(16 GPUs of h100)"), std::string::npos) << gpu.out;
  EXPECT_NE(gpu.out.find("memory per GPU"), std::string::npos) << gpu.out;
  const auto j = nlohmann::json::parse(run("train --model llama3-8b --hardware tpu-v5p --gpus 64 --tp 4 "
                                           "--global-batch-size 64 --micro-batch-size 1 --seq-len 4096 "
                                           "--format json").out);
  EXPECT_TRUE(j.contains("gpu_hours")) << j.dump().substr(0, 400);
}
