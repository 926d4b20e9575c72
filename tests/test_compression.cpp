// CompressionModel: the tutorial's Part 3 examples (INT4 still memory-bound, unstructured pruning
// gives no speedup, 2:4 only with sparse tensor cores, the Llama-3 70B fleet table), asserted from
// the formulas and the engine, plus bad inputs.
#include <gtest/gtest.h>

#include <cmath>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/catalog/compression_literature.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/physics/compression.hpp"
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
  EXPECT_DOUBLE_EQ(c.compressed_size.si(), params * 0.5);  // 8B x 0.5 B = 4 GB
  EXPECT_DOUBLE_EQ(c.original_size.si(), params * 2.0);    // 16 GB
  EXPECT_DOUBLE_EQ(c.compression_ratio, 4.0);
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
  EXPECT_EQ(c.fleet[0].gpus_per_replica, 4);
  EXPECT_EQ(c.fleet[1].gpus_per_replica, 2);
  EXPECT_EQ(c.fleet[2].gpus_per_replica, 1);
  for (const auto& f : c.fleet)  // cost = GPUs x $98.32/8 per hour x 8760 h
    EXPECT_NEAR(f.annual_cost.si(), f.total_gpus * 98.32 / 8 * 8760, 1e-6);
  EXPECT_NEAR(c.fleet[0].annual_cost.si() / c.fleet[2].annual_cost.si(), 4.0, 1e-12);
  // The slide's note: INT4 cuts the electricity bill too. A year of each fleet's GPUs at their
  // serving power x PUE 1.58, at 0.390 kg CO2/kWh; each GPU between static power and its TDP.
  for (const auto& f : c.fleet) {
    const double gpu_w = f.annual_energy.si() / 1.58 / (8760 * 3600.0) / f.total_gpus;
    EXPECT_GT(gpu_w, 0.3 * 700 - 1e-6);
    EXPECT_LE(gpu_w, 700.0);
    EXPECT_NEAR(f.annual_emissions.si(), f.annual_energy.si() * kUsGridIntensity.si(), 1e-6);
  }
  EXPECT_LT(c.fleet[2].annual_energy.si(), c.fleet[1].annual_energy.si());
  EXPECT_LT(c.fleet[1].annual_energy.si(), c.fleet[0].annual_energy.si());
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
  EXPECT_EQ(c.fleet[2].gpus_per_replica, 2);
  EXPECT_EQ(c.fleet[0].gpus_per_replica, 4);  // fp16 still 4: more requests, same tp
}

TEST(CompressionPart3, ReplicasForTargetQps) {
  CompressionRequest r;
  r.target = Precision::INT8;
  r.qps = 50;
  const CompressionResult c = compress(model("llama3-70b"), hw("h100"), r);
  for (const auto& f : c.fleet) {
    ASSERT_TRUE(f.feasible);
    EXPECT_EQ(f.replicas, static_cast<int>(std::ceil(50 / f.replica_qps)));
    EXPECT_GE(f.replicas * f.replica_qps, 50 - 1e-9);
    EXPECT_EQ(f.total_gpus, f.replicas * f.gpus_per_replica);
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
  q.costs.gpu_hour_usd = 0;
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
  // bf16; --quantize-head (gpt-fast) quantizes the head too. The napkin stored size is P x 0.5 either way.
  const double P = 70553706496.0, vh = 128256.0 * 8192;
  CompressionRequest r;
  r.target = Precision::INT4;
  r.fleet = false;
  const CompressionResult keep = compress(model("llama3-70b"), hw("h100"), r);
  r.quantize_head = true;
  const CompressionResult all = compress(model("llama3-70b"), hw("h100"), r);
  EXPECT_DOUBLE_EQ(keep.runtime_weight_bytes.si(), (P - 2 * vh) * 0.5 + 2 * vh * 2);
  EXPECT_DOUBLE_EQ(all.runtime_weight_bytes.si(), (P - vh) * 0.5 + vh * 2);
  EXPECT_DOUBLE_EQ(all.compressed_size.si(), keep.compressed_size.si());
  EXPECT_GE(all.inference_speedup, keep.inference_speedup);  // fewer bytes per decode step
}
