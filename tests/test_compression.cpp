// CompressionModel: the tutorial's Part 3 examples (INT4 still memory-bound, unstructured pruning
// gives no speedup, 2:4 only with sparse tensor cores, the Llama-3 70B fleet table), asserted from
// the formulas and the engine, plus bad inputs.
#include <gtest/gtest.h>

#include <algorithm>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <sys/wait.h>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/catalog/compression_literature.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/physics/compression.hpp"
#include "mlsysim/physics/memory.hpp"
#include "mlsysim/physics/transformer.hpp"
#include "mlsysim/solvers/compression.hpp"

using namespace mlsysim;

namespace {
const ModelSpec& model(const char* id) { return Catalog::builtin().model(id); }
const HardwareSpec& hw(const char* id) { return Catalog::builtin().hardware(id); }
CompressionRequest quant(Precision p) {
  CompressionRequest r;
  r.target = p;
  r.fleet = false;
  return r;
}
// BadInput from `r`, whose message names `flag` and none of `absent` (flags compress does not have).
void expect_bad_naming(const char* model_id, const char* hw_id, const CompressionRequest& r, const std::string& flag,
                       std::initializer_list<const char*> absent) {
  try {
    compress(model(model_id), hw(hw_id), r);
    ADD_FAILURE() << "expected BadInput naming " << flag;
  } catch (const BadInput& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(flag), std::string::npos) << what;
    for (const char* other : absent) EXPECT_EQ(what.find(other), std::string::npos) << other << " in: " << what;
  }
}
// The CLI's stdout and exit code (stderr dropped).
std::pair<int, std::string> cli(const std::string& args) {
  FILE* pipe = popen((std::string(MLSYSIM_BINARY) + " " + args + " 2>/dev/null").c_str(), "r");
  std::string out;
  std::array<char, 4096> buf{};
  for (size_t n; (n = fread(buf.data(), 1, buf.size(), pipe)) > 0;) out.append(buf.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}
CompressionRequest prune(SparsityType t, double s = 0.5) {
  CompressionRequest r;
  r.method = CompressionMethod::Pruning;
  r.sparsity_type = t;
  r.sparsity = s;
  r.fleet = false;
  return r;
}
}  // namespace

TEST(CompressionPart3, Int4IsStillMemoryBoundAndFasterByLessThan4x) {
  const CompressionResult c = compress(model("llama3-8b"), hw("h100"), quant(Precision::INT4));
  const double params = parameter_count(model("llama3-8b"));
  EXPECT_DOUBLE_EQ(c.original_size.si(), params * 2.0);    // 16 GB
  // 8B x 0.5 B = 4 GB, plus the 16-bit embedding table and head (2 x 128256 x 4096): < 4x smaller.
  const double vh = 128256.0 * 4096;
  EXPECT_DOUBLE_EQ(c.compressed_size.si(), (params - 2 * vh) * 0.5 + 2 * vh * 2);
  EXPECT_LT(c.compression_ratio, 4.0);
  EXPECT_EQ(c.baseline_decode_wall, Wall::Memory);
  // "Still memory-bound!": not compute-bound (at 4 GB the engine may find launch overhead
  // comparable to the byte time, but never the FLOPs).
  EXPECT_NE(c.compressed_decode_wall, Wall::Compute);
  // Speedup from bytes moved: > 2x, but < 4x (KV cache, activations and launches don't shrink).
  EXPECT_GT(c.inference_speedup, 2.0);
  EXPECT_LT(c.inference_speedup, 4.0);
  // H100 has no INT4 math: prefill runs 16-bit math, no faster.
  EXPECT_EQ(c.math_precision, "bf16");
  EXPECT_NEAR(c.prefill_speedup, 1.0, 0.05);
}

TEST(CompressionPart3, Int8WeightsActivationsSpeedsPrefillOnH100) {
  const CompressionResult c = compress(model("llama3-8b"), hw("h100"), quant(Precision::INT8));
  EXPECT_TRUE(c.hardware_supported);
  EXPECT_EQ(c.math_precision, "int8");
  EXPECT_GT(c.prefill_speedup, 1.3);  // int8 tensor cores: 2x dense peak
  EXPECT_GT(c.inference_speedup, 1.5);
  EXPECT_LT(c.inference_speedup, 2.0);
  EXPECT_LE(c.accuracy_delta, 0.0);
  EXPECT_GE(c.accuracy_delta, -0.01);  // SmoothQuant range
}

TEST(CompressionPart3, UnstructuredPruningGivesNoSpeedup) {
  const CompressionResult c = compress(model("llama3-8b"), hw("h100"), prune(SparsityType::Unstructured));
  EXPECT_DOUBLE_EQ(c.inference_speedup, 1.0);
  EXPECT_DOUBLE_EQ(c.prefill_speedup, 1.0);
  const double params = parameter_count(model("llama3-8b"));
  // Half the fp16 values + a 1-bit bitmap: 1.125 B per weight.
  EXPECT_DOUBLE_EQ(c.compressed_size.si(), params * 1.125);
  EXPECT_DOUBLE_EQ(c.runtime_weight_bytes.si(), params * 2.0);
}

TEST(CompressionPart3, StructuredPruningShrinksTheMatrices) {
  const CompressionResult c = compress(model("llama3-8b"), hw("h100"), prune(SparsityType::Structured));
  const ModelSpec p = prune_structured(model("llama3-8b"), 0.5);
  EXPECT_EQ(p.tf.ffn, 14336 / 2);
  EXPECT_EQ(p.tf.kv_heads, 4);
  EXPECT_EQ(p.tf.heads, 16);
  EXPECT_DOUBLE_EQ(c.compressed_size.si(), parameter_count(p) * 2.0);
  EXPECT_GT(c.inference_speedup, 1.4);
  EXPECT_GT(c.prefill_speedup, 1.4);
  EXPECT_LT(c.accuracy_delta, c.accuracy_delta_high + 1e-12);
}

TEST(CompressionPart3, TwoFourSparsityNeedsSparseTensorCores) {
  const CompressionResult h = compress(model("llama3-8b"), hw("h100"), prune(SparsityType::NM24));
  EXPECT_TRUE(h.hardware_supported);
  EXPECT_GT(h.prefill_speedup, 1.3);  // sparse peak 2x dense on compute-bound GEMMs
  const CompressionResult v = compress(model("llama3-8b"), hw("v100"), prune(SparsityType::NM24));
  EXPECT_FALSE(v.hardware_supported);  // V100 lists no sparse peak
  EXPECT_DOUBLE_EQ(v.prefill_speedup, 1.0);
  EXPECT_DOUBLE_EQ(v.inference_speedup, 1.0);
  // 0.5 x 2 B + 0.5 x 2 bits = 1.125 B per weight (Mishra et al. 2021).
  EXPECT_DOUBLE_EQ(sparse_storage_bytes_per_weight(2.0, 0.5, SparsityType::NM24), 1.125);
}

// Sparse tensor-core kernels read the compressed matrices: the block weights are stored (and
// streamed) at 1.125 B, the embedding table and the LM head stay dense at 2 B. A batch-1 decode is
// bandwidth-bound, so it gets faster by less than the block weights shrink (KV cache, dense head
// and embedding, fixed overheads), the way Neural Magic's ~30% lower latency from 2:4 on Hopper is.
TEST(CompressionPart3, TwoFourWeightsAreReadCompressed) {
  const ModelSpec& m = model("llama3-8b");
  const CompressionResult h = compress(m, hw("h100"), prune(SparsityType::NM24));
  const double params = parameter_count(m);
  const double tables = 2.0 * m.tf.vocab * m.tf.hidden;  // untied embedding + LM head
  const double expected = (params - tables) * 1.125 + tables * 2.0;
  EXPECT_NEAR(h.compressed_size.si(), expected, 1e-6 * expected);
  EXPECT_NEAR(h.runtime_weight_bytes.si(), expected, 1e-6 * expected);
  const double block_shrink = params * 2.0 / expected;
  EXPECT_GT(h.inference_speedup, 1.2);
  EXPECT_LT(h.inference_speedup, block_shrink);
  // Without sparse tensor cores the weights are decompressed for dense kernels.
  const CompressionResult v = compress(m, hw("v100"), prune(SparsityType::NM24));
  EXPECT_NEAR(v.compressed_size.si(), expected, 1e-6 * expected);
  EXPECT_DOUBLE_EQ(v.runtime_weight_bytes.si(), params * 2.0);
}

// The fleet table's comparison precisions are quantized with the target's scheme: under
// weight-only, int8 keeps 16-bit math and the baseline KV cache, exactly as `--target int8
// --scheme weight-only` would.
TEST(CompressionPart3, FleetComparisonRowsUseTheRequestedScheme) {
  CompressionRequest r;
  r.target = Precision::INT4;
  r.scheme = QuantScheme::WeightOnly;
  r.fleet = true;
  const CompressionResult c = compress(model("llama3-8b"), hw("h100"), r);
  CompressionRequest as_int8 = r;
  as_int8.target = Precision::INT8;
  const CompressionResult i8 = compress(model("llama3-8b"), hw("h100"), as_int8);
  const auto row = std::find_if(c.fleet.begin(), c.fleet.end(), [](const FleetRow& f) { return f.label == "int8"; });
  ASSERT_NE(row, c.fleet.end());
  const auto target_row = std::find_if(i8.fleet.begin(), i8.fleet.end(),
                                       [](const FleetRow& f) { return f.label == "int8"; });
  ASSERT_NE(target_row, i8.fleet.end());
  ASSERT_TRUE(row->replica && target_row->replica);
  EXPECT_DOUBLE_EQ(row->replica->itl.si(), target_row->replica->itl.si());
  EXPECT_DOUBLE_EQ(row->model_size.si(), target_row->model_size.si());
}

TEST(CompressionPart3, Llama70BFleetTable) {
  CompressionRequest r;
  r.target = Precision::INT4;
  r.fleet = true;
  const CompressionResult c = compress(model("llama3-70b"), hw("h100"), r);
  ASSERT_EQ(c.fleet.size(), 3u);
  EXPECT_EQ(c.fleet[0].label, "fp16");
  EXPECT_EQ(c.fleet[1].label, "int8");
  EXPECT_EQ(c.fleet[2].label, "int4");
  // Slide 3.7b: 4 (TP=4) / 2 (TP=2) / 1 GPUs per replica on 80 GB parts.
  for (const auto& f : c.fleet) ASSERT_TRUE(f.feasible()) << f.label;
  EXPECT_EQ(c.fleet[0].replica->gpus_per_replica, 4);
  EXPECT_EQ(c.fleet[1].replica->gpus_per_replica, 2);
  EXPECT_EQ(c.fleet[2].replica->gpus_per_replica, 1);
  for (const auto& f : c.fleet)  // cost = GPUs x $55.04/8 per hour (AWS p5 on-demand) x 8760 h
    EXPECT_NEAR(f.replica->annual_cost.si(), f.replica->total_gpus * 55.04 / 8 * 8760, 1e-6);
  EXPECT_NEAR(c.fleet[0].replica->annual_cost.si() / c.fleet[2].replica->annual_cost.si(), 4.0, 1e-12);
  // The slide's note: INT4 cuts the electricity bill too. A year of each fleet's GPUs at their
  // serving power x PUE 1.58, at 0.390 kg CO2/kWh; each GPU between static power and its TDP.
  for (const auto& f : c.fleet) {
    const FleetReplica& r = *f.replica;
    const double gpu_w = r.annual_energy.si() / 1.58 / (8760 * 3600.0) / static_cast<double>(r.total_gpus);
    EXPECT_GT(gpu_w, 0.3 * 700 - 1e-6);
    EXPECT_LE(gpu_w, 700.0);
    EXPECT_NEAR(r.annual_emissions.si(), r.annual_energy.si() * kUsGridIntensity.si(), 1e-6);
  }
  EXPECT_LT(c.fleet[2].replica->annual_energy.si(), c.fleet[1].replica->annual_energy.si());
  EXPECT_LT(c.fleet[1].replica->annual_energy.si(), c.fleet[0].replica->annual_energy.si());
  // int4 keeps the embedding table and head (2 x 128256 x 8192 params) in 16 bits, as AWQ/GPTQ and
  // ModelOpt checkpoints do: 2 P / ((P - 2 V h) x 0.5 + 2 V h x 2), P = 70,553,706,496.
  const double P = 70553706496.0, vh = 2.0 * 128256 * 8192;
  EXPECT_NEAR(c.fleet[0].model_size.si() / c.fleet[2].model_size.si(),
              2 * P / ((P - vh) * 0.5 + vh * 2), 1e-3);  // tp shards round the vocab
}

TEST(CompressionPart3, DenserReplicasOfInt4SeventyBNeedTwoGpus) {
  // At 20 requests of 4096 + 256 tokens: 38.4 GB of int4 weights (16-bit embedding and head) +
  // 20 x 4352 x 327,680 B of bf16 KV (28.5 GB) + the batch prefill's activations (14.1 GB) = 81 GB
  // > 0.9 x 79.19 GiB (85.0 GB) = 76.5 GB usable.
  CompressionRequest r;
  r.target = Precision::INT4;
  r.fleet_batch = 20;
  const CompressionResult c = compress(model("llama3-70b"), hw("h100"), r);
  ASSERT_EQ(c.fleet.size(), 3u);
  ASSERT_TRUE(c.fleet[2].feasible() && c.fleet[0].feasible());
  EXPECT_EQ(c.fleet[2].replica->gpus_per_replica, 2);
  EXPECT_EQ(c.fleet[0].replica->gpus_per_replica, 4);  // fp16 still 4: more requests, same tp
}

TEST(CompressionPart3, ReplicasForTargetQps) {
  CompressionRequest r;
  r.target = Precision::INT8;
  r.qps = 50;
  const CompressionResult c = compress(model("llama3-70b"), hw("h100"), r);
  for (const auto& f : c.fleet) {
    ASSERT_TRUE(f.feasible());
    const FleetReplica& x = *f.replica;
    EXPECT_EQ(x.replicas, static_cast<std::int64_t>(std::ceil(50 / x.replica_qps)));
    EXPECT_GE(static_cast<double>(x.replicas) * x.replica_qps, 50 - 1e-9);
    EXPECT_EQ(x.total_gpus, x.replicas * x.gpus_per_replica);
  }
}

TEST(CompressionPart3, AccuracyComesFromCitedRanges) {
  for (const auto& a : kAccuracyLiterature) {
    EXPECT_LE(a.low, a.high) << a.key;
    EXPECT_LE(a.high, 0.0) << a.key;
    EXPECT_GT(std::string(a.source).size(), 20u) << a.key;
  }
  const CompressionResult c = compress(model("llama3-8b"), hw("h100"), quant(Precision::INT4));
  const AccuracyRange* r = accuracy_literature("int4-weight-only");
  ASSERT_NE(r, nullptr);
  EXPECT_DOUBLE_EQ(c.accuracy_delta, (r->low + r->high) / 2);
  EXPECT_EQ(c.accuracy_source, r->source);
  const CompressionResult same = compress(model("llama3-8b"), hw("h100"), quant(Precision::BF16));
  EXPECT_DOUBLE_EQ(same.accuracy_delta, 0.0);
  // Pruned past what the cited studies measured (80% unstructured, 50% structured), the range keeps
  // its high end but its low end is total loss, and its source says that is not a measured figure.
  const AccuracyRange* high = accuracy_literature("unstructured-high");
  const CompressionResult within = compress(model("llama3-8b"), hw("h100"), prune(SparsityType::Unstructured, 0.8));
  EXPECT_DOUBLE_EQ(within.accuracy_delta_low, high->low);
  const CompressionResult past = compress(model("llama3-8b"), hw("h100"), prune(SparsityType::Unstructured, 0.9));
  EXPECT_DOUBLE_EQ(past.accuracy_delta_low, -1.0);
  EXPECT_DOUBLE_EQ(past.accuracy_delta_high, high->high);
  const CompressionResult wide = compress(model("llama3-8b"), hw("h100"), prune(SparsityType::Structured, 0.7));
  EXPECT_DOUBLE_EQ(wide.accuracy_delta_low, -1.0);
  EXPECT_NE(wide.accuracy_source.find("is beyond the 50% these studies measured"), std::string::npos)
      << wide.accuracy_source;
}

TEST(CompressionErrors, BadInputsNameTheField) {
  auto expect_bad = [](CompressionRequest r, const char* needle) {
    try {
      compress(model("llama3-8b"), hw("h100"), r);
      ADD_FAILURE() << "expected BadInput mentioning " << needle;
    } catch (const BadInput& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_bad(prune(SparsityType::Unstructured, 1.0), "--sparsity");
  expect_bad(prune(SparsityType::Unstructured, 0.9999999999), "--sparsity must be in [0, 0.99]");
  expect_bad(prune(SparsityType::Unstructured, -0.1), "--sparsity");
  expect_bad(prune(SparsityType::NM24, 0.3), "n_m");
  CompressionRequest none;
  none.fleet = false;
  expect_bad(none, "--target");
  CompressionRequest wide = quant(Precision::FP32);
  expect_bad(wide, "wider");
  CompressionRequest q = quant(Precision::INT8);
  q.qps = -1;
  expect_bad(q, "--qps");
  q.qps = 0;
  q.costs.gpu_rate = units::usd_per_hour(0);
  expect_bad(q, "--gpu-hour-usd");
}

TEST(CompressionErrors, NonLanguageModelsArePointedAtSolve) {
  // The speedup is a decode/prefill step's and the accuracy ranges are LLM studies: a CNN or an
  // encoder gets an error naming the command that compares its precisions, not a decode-phase one.
  for (const char* id : {"resnet50", "bert-base"}) {
    try {
      compress(model(id), hw("h100"), quant(Precision::INT8));
      ADD_FAILURE() << id << ": expected BadInput";
    } catch (const BadInput& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(std::string("mlsysim solve --model ") + id + " --phase inference"),
                std::string::npos) << what;
      EXPECT_EQ(what.find("--phase decode"), std::string::npos) << what;
    }
  }
}

TEST(CompressionPart3, QuantizeHeadShrinksTheRuntimeWeights) {
  // Llama-3 70B int4: by default the embedding table and the LM head (V h = 128256 x 8192 each) stay
  // bf16; --quantize-head (gpt-fast) quantizes the head too. The stored checkpoint is those bytes.
  const double P = 70553706496.0, vh = 128256.0 * 8192;
  CompressionRequest r;
  r.target = Precision::INT4;
  r.fleet = false;
  const CompressionResult keep = compress(model("llama3-70b"), hw("h100"), r);
  r.quantize_head = true;
  const CompressionResult all = compress(model("llama3-70b"), hw("h100"), r);
  EXPECT_DOUBLE_EQ(keep.runtime_weight_bytes.si(), (P - 2 * vh) * 0.5 + 2 * vh * 2);
  EXPECT_DOUBLE_EQ(all.runtime_weight_bytes.si(), (P - vh) * 0.5 + vh * 2);
  EXPECT_DOUBLE_EQ(keep.compressed_size.si(), keep.runtime_weight_bytes.si());
  EXPECT_DOUBLE_EQ(all.compressed_size.si(), all.runtime_weight_bytes.si());
  EXPECT_GE(all.inference_speedup, keep.inference_speedup);  // fewer bytes per decode step
}

TEST(CompressionFleet, ReplicaCountsDoNotOverflowAtTheLargestAcceptedQps) {
  // At 1e9 requests/s, Llama-3 70B fp16 (4 GPUs per replica at ~1.2 req/s) needs ~3.3e9 GPUs: more
  // than a 32-bit int holds. Counts stay exact and positive, costs follow the counts.
  CompressionRequest r;
  r.target = Precision::INT4;
  r.qps = kMaxFleetQps;
  const CompressionResult c = compress(model("llama3-70b"), hw("h100"), r);
  bool past_int32 = false;
  for (const auto& f : c.fleet) {
    ASSERT_TRUE(f.feasible()) << f.label;
    const FleetReplica& x = *f.replica;
    const double needed = r.qps / x.replica_qps;
    EXPECT_GE(static_cast<double>(x.replicas), needed * (1 - 1e-12)) << f.label;
    EXPECT_LT(static_cast<double>(x.replicas) - 1, needed) << f.label;
    EXPECT_EQ(x.total_gpus, x.replicas * x.gpus_per_replica) << f.label;
    EXPECT_GT(x.annual_cost.si(), 0) << f.label;
    EXPECT_NEAR(x.annual_cost.si() / (static_cast<double>(x.total_gpus) * (55.04 / 8) * 8760), 1.0, 1e-12);
    EXPECT_GT(x.annual_energy.si(), 0) << f.label;
    past_int32 |= x.total_gpus > std::numeric_limits<std::int32_t>::max();
  }
  EXPECT_TRUE(past_int32);  // the case that wrapped to -2147483648
  r.qps = 1e12;             // beyond any service: rejected, with the range
  expect_bad_naming("llama3-70b", "h100", r, "--qps must be in [0, 1e+09]", {});
}

TEST(CompressionWindow, DefaultsFitTheModelsWindowAndErrorsNameCompressFlags) {
  // Llama-2 7B handles 4096 tokens: the default fleet prompt becomes 4096 - 256 + 1 = 3841, so that
  // prompt + output - 1 (the last token is not fed back) fills the window exactly.
  CompressionRequest r;
  r.target = Precision::INT4;
  const CompressionResult c = compress(model("llama2-7b"), hw("h100"), r);
  EXPECT_EQ(c.shapes.fleet_seq_len, 4096 - 256 + 1);
  EXPECT_EQ(c.shapes.fleet_seq_len + c.shapes.fleet_output_len - 1, model("llama2-7b").tf.max_seq);
  EXPECT_EQ(c.fleet.size(), 3u);
  bool said = false;
  for (const auto& line : c.trace) said |= line.find("3841 tokens by default") != std::string::npos;
  EXPECT_TRUE(said);
  // GPT-2 (1024 tokens): the decode context and prefill defaults shrink too.
  const CompressionResult g = compress(model("gpt2"), hw("h100"), quant(Precision::INT8));
  EXPECT_EQ(g.shapes.context, 1024 - 1);
  EXPECT_EQ(g.shapes.prefill_tokens, 1024);
  // Explicit values that do not fit name compress's flags, never serve's or solve's.
  r.fleet_seq_len = 4096;
  expect_bad_naming("llama2-7b", "h100", r, "--fleet-seq-len <= 3841", {"--seq-len", "--output-len "});
  CompressionRequest ctx = quant(Precision::INT4);
  ctx.context = 100000;
  expect_bad_naming("llama3-8b", "h100", ctx, "--context <= 8191", {"--seq-len"});
  CompressionRequest pre = quant(Precision::INT4);
  pre.prefill_tokens = 9000;
  expect_bad_naming("llama3-8b", "h100", pre, "--prefill-tokens <= 8192", {"--seq-len"});
  CompressionRequest big = quant(Precision::INT4);
  big.fleet = true;
  big.fleet_batch = 100000;
  expect_bad_naming("llama3-8b", "h100", big, "--fleet-batch", {"--batch-size"});
  // ESP32-S3 has no 16-bit math: the fp16 baseline is what to change.
  expect_bad_naming("llama3-8b", "esp32-s3", quant(Precision::INT4), "--baseline fp32", {"--precision"});
}

TEST(CompressionScheme, WeightOnlyKeepsSixteenBitMathForEveryTarget) {
  // Weight-only kernels dequantize into 16-bit math: the prefill (compute-bound at 2048 tokens) runs
  // as fast as the baseline's, while decode moves fewer weight bytes. Weights+activations at 8 bits
  // uses H100's fp8/int8 tensor cores (2x the 16-bit peak) and speeds the prefill up.
  for (Precision q : {Precision::FP8, Precision::INT8, Precision::INT4}) {
    CompressionRequest r = quant(q);
    r.scheme = QuantScheme::WeightOnly;
    r.fleet = true;
    const CompressionResult c = compress(model("llama3-8b"), hw("h100"), r);
    EXPECT_EQ(c.math_precision, "bf16") << to_string(q);
    EXPECT_NEAR(c.prefill_speedup, 1.0, 0.05) << to_string(q);
    EXPECT_GT(c.inference_speedup, 1.3) << to_string(q);
    // The fleet row of the target serves at 16-bit math too: no faster a prefill than the 16-bit
    // baseline row's beyond what fewer weight bytes buy.
    const FleetRow& base = c.fleet.front();
    const auto target = std::find_if(c.fleet.begin(), c.fleet.end(),
                                     [&](const FleetRow& f) { return f.label == to_string(q); });
    ASSERT_NE(target, c.fleet.end());
    ASSERT_TRUE(base.feasible() && target->feasible());
    EXPECT_NEAR(target->replica->ttft / base.replica->ttft, 1.0, 0.05) << to_string(q);
  }
  CompressionRequest wa = quant(Precision::FP8);
  wa.scheme = QuantScheme::WeightsActivations;
  const CompressionResult c = compress(model("llama3-8b"), hw("h100"), wa);
  EXPECT_EQ(c.math_precision, "fp8");
  EXPECT_GT(c.prefill_speedup, 1.3);
}

TEST(CompressionSize, StoredSizeIsTheCheckpointTheFleetServes) {
  // Llama-3 8B int4: P parameters, the embedding table and head (V h = 128256 x 4096 each) in bf16.
  const double P = parameter_count(model("llama3-8b")), vh = 128256.0 * 4096;
  CompressionRequest r;
  r.target = Precision::INT4;
  const CompressionResult keep = compress(model("llama3-8b"), hw("h100"), r);
  r.quantize_head = true;
  const CompressionResult all = compress(model("llama3-8b"), hw("h100"), r);
  EXPECT_DOUBLE_EQ(keep.compressed_size.si(), (P - 2 * vh) * 0.5 + 2 * vh * 2);  // 5.59 GB
  EXPECT_DOUBLE_EQ(all.compressed_size.si(), (P - vh) * 0.5 + vh * 2);
  for (const CompressionResult* c : {&keep, &all}) {
    // One GPU holds the 8B replica: the fleet's int4 weights are the stored bytes.
    EXPECT_EQ(c->fleet.back().label, "int4");
    EXPECT_DOUBLE_EQ(c->fleet.back().model_size.si(), c->compressed_size.si());
    EXPECT_DOUBLE_EQ(c->runtime_weight_bytes.si(), c->compressed_size.si());
  }
  EXPECT_LT(all.fleet.back().model_size.si(), keep.fleet.back().model_size.si());
  EXPECT_NEAR(keep.compression_ratio, 2 * P / keep.compressed_size.si(), 1e-12);
}

TEST(CompressionFleet, AVariantThatDoesNotFitHasNoReplicaToCountOrPrice) {
  // DeepSeek-V3 fp16 (1.34 TB) exceeds 8 x 85.0 GB; int4 (~342 GB) fits on 8.
  CompressionRequest r;
  r.target = Precision::FP8;
  const CompressionResult c = compress(model("deepseek-v3"), hw("h100"), r);
  ASSERT_EQ(c.fleet.front().label, "fp16");
  EXPECT_FALSE(c.fleet.front().feasible());
  EXPECT_GT(c.fleet.front().model_size.si(), 8 * hw("h100").memory_usable.si());
  EXPECT_TRUE(c.fleet.back().feasible());
  // The JSON says null, the table '-', never a zero cost or a replica.
  const auto [code, out] = cli("--format json compress -m deepseek-v3 -H h100 --target fp8");
  ASSERT_EQ(code, 0);
  const auto j = nlohmann::json::parse(out);
  const auto& row = j["fleet"][0];
  EXPECT_FALSE(row["feasible"].get<bool>());
  for (const char* k : {"gpus_per_replica", "ttft_s", "itl_s", "replica_qps", "replicas", "total_gpus",
                        "annual_cost_usd", "annual_energy_mwh", "annual_emissions_t_co2"})
    EXPECT_TRUE(row[k].is_null()) << k;
  const auto table = cli("compress -m deepseek-v3 -H h100 --target fp8").second;
  EXPECT_EQ(table.find("$0 "), std::string::npos) << table;
}

TEST(CompressionCli, CsvCarriesTheFleetTable) {
  // One record per fleet row, each with the summary and that row's fleet_* columns, matching JSON.
  const std::string args = "compress -m llama3-70b -H h100 --target int4 --qps 50";
  const auto json = nlohmann::json::parse(cli("--format json " + args).second);
  const auto [code, csv] = cli("--format csv " + args);
  ASSERT_EQ(code, 0);
  std::istringstream lines(csv);
  std::string header, line;
  std::getline(lines, header);
  const auto split = [](const std::string& l) {  // no quoted commas before the fleet_* columns' values
    std::vector<std::string> f(1);
    bool quoted = false;
    for (char ch : l) {
      if (ch == '"') quoted = !quoted;
      else if (ch == ',' && !quoted) f.emplace_back();
      else f.back() += ch;
    }
    return f;
  };
  const auto names = split(header);
  const auto col = [&](const std::string& n) {
    return static_cast<size_t>(std::find(names.begin(), names.end(), n) - names.begin());
  };
  ASSERT_LT(col("fleet_label"), names.size());
  ASSERT_LT(col("fleet_replicas"), names.size());
  ASSERT_LT(col("compressed_size_bytes"), names.size());
  size_t i = 0;
  for (; std::getline(lines, line); ++i) {
    const auto v = split(line);
    ASSERT_EQ(v.size(), names.size()) << line;
    ASSERT_LT(i, json["fleet"].size());
    EXPECT_EQ(v[col("fleet_label")], json["fleet"][i]["label"].get<std::string>());
    EXPECT_EQ(std::stoll(v[col("fleet_replicas")]), json["fleet"][i]["replicas"].get<long long>());
    EXPECT_DOUBLE_EQ(std::stod(v[col("compressed_size_bytes")]), json["compressed_size_bytes"].get<double>());
  }
  EXPECT_EQ(i, json["fleet"].size());
}

TEST(CompressionPruning, SparseFormatIsStoredOnlyWhereItPays) {
  // Unstructured fp16: (1 - s) x 2 B + 1/8 B of bitmap beats 2 B only above s = 1/16.
  const double P = parameter_count(model("llama3-8b"));
  const CompressionResult none = compress(model("llama3-8b"), hw("h100"), prune(SparsityType::Unstructured, 0.0));
  EXPECT_TRUE(none.stored_dense);
  EXPECT_DOUBLE_EQ(none.compressed_size.si(), none.original_size.si());
  EXPECT_DOUBLE_EQ(none.compression_ratio, 1.0);
  EXPECT_DOUBLE_EQ(none.accuracy_delta, 0.0);
  const CompressionResult some = compress(model("llama3-8b"), hw("h100"), prune(SparsityType::Unstructured, 0.1));
  EXPECT_FALSE(some.stored_dense);
  EXPECT_DOUBLE_EQ(some.compressed_size.si(), P * (0.9 * 2 + 0.125));
  for (double s : {0.0, 0.03, 0.0625, 0.2, 0.9}) {  // never larger than dense
    const CompressionResult c = compress(model("llama3-8b"), hw("h100"), prune(SparsityType::Unstructured, s));
    EXPECT_LE(c.compressed_size.si(), c.original_size.si()) << s;
  }
}

TEST(CompressionSteps, BatchIsSaidAndADecodeThatDoesNotFitIsReported) {
  // -b 4 prefills 4 prompts of 2048 tokens: the trace says so.
  CompressionRequest r = quant(Precision::INT4);
  r.batch = 4;
  const CompressionResult c = compress(model("llama3-8b"), hw("h100"), r);
  bool said = false;
  for (const auto& line : c.trace) said |= line.find("Prefill (batch 4 x 2048 tokens)") != std::string::npos;
  EXPECT_TRUE(said);
  EXPECT_TRUE(c.baseline_decode_fit.fits && c.compressed_decode_fit.fits);
  // 512 sequences x 8001 tokens x 131,072 B of fp16 KV (2 x 32 layers x 8 KV heads x 128 x 2 B)
  // = 537 GB: neither variant's decode step fits 85.0 GB, and the result says so.
  r.batch = 512;
  r.context = 8000;
  const CompressionResult big = compress(model("llama3-8b"), hw("h100"), r);
  const double kv = 512.0 * 8001 * 2 * 32 * 8 * 128 * 2;
  EXPECT_NEAR(big.compressed_decode_fit.memory.kv_cache.si() / kv, 1.0, 1e-9);
  EXPECT_FALSE(big.baseline_decode_fit.fits);
  EXPECT_FALSE(big.compressed_decode_fit.fits);
  EXPECT_GT(big.compressed_decode_fit.memory.total().si(), hw("h100").memory_usable.si());
  bool reported = false;
  for (const auto& line : big.trace) reported |= line.rfind("Does not fit on one h100", 0) == 0;
  EXPECT_TRUE(reported);
}
