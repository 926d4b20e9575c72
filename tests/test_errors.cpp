// Bad input gets a clear error (what, valid range, suggestion); a workload that does not fit says
// how much it needs, how much there is, and what to do.
#include <gtest/gtest.h>

#include <cmath>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/solvers/engine.hpp"

using namespace mlsysim;

namespace {
const ModelSpec& model(const char* id) { return Catalog::builtin().model(id); }
const HardwareSpec& hw(const char* id) { return Catalog::builtin().hardware(id); }

// Runs `f`, expects BadInput, and returns its message.
template <class F>
std::string bad_input_message(F f) {
  try {
    f();
  } catch (const BadInput& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected BadInput";
  return {};
}
bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}
}  // namespace

TEST(Errors, BatchSizeOutOfRange) {
  SolveRequest r;
  r.batch = 0;
  const auto msg = bad_input_message([&] { solve(model("llama3-8b"), hw("h100"), r); });
  EXPECT_TRUE(contains(msg, "--batch-size must be in [1,")) << msg;
  EXPECT_TRUE(contains(msg, "got 0")) << msg;
}

TEST(Errors, NegativeContextAndSequence) {
  SolveRequest r;
  r.context = -5;
  EXPECT_TRUE(contains(bad_input_message([&] { solve(model("llama3-8b"), hw("h100"), r); }),
                       "--context must be >= 0"));
  SolveRequest s;
  s.phase = Phase::Prefill;
  s.seq_len = 0;
  EXPECT_TRUE(contains(bad_input_message([&] { solve(model("llama3-8b"), hw("h100"), s); }),
                       "--seq-len must be >= 1"));
}

TEST(Errors, SequenceBeyondTheModelsWindow) {
  SolveRequest r;
  r.phase = Phase::Prefill;
  r.seq_len = 10000;
  const auto msg = bad_input_message([&] { solve(model("llama3-8b"), hw("h100"), r); });
  EXPECT_TRUE(contains(msg, "at most 8192 tokens")) << msg;
}

// A field the step does not use is refused with the field that was meant, not dropped: the answer
// would otherwise be for a different question (a decode step at the default 1024-token context
// when the user asked about 4096 tokens).
TEST(Errors, FieldsTheStepDoesNotUse) {
  SolveRequest decode;
  decode.seq_len = 4096;  // default phase of a decoder: decode
  const auto seq = bad_input_message([&] { solve(model("llama3-8b"), hw("h100"), decode); });
  EXPECT_TRUE(contains(seq, "--seq-len does not apply to a decode step")) << seq;
  EXPECT_TRUE(contains(seq, "--context 4096")) << seq;
  EXPECT_TRUE(contains(seq, "--phase prefill")) << seq;

  SolveRequest cnn;
  cnn.seq_len = 128;
  const auto image = bad_input_message([&] { solve(model("resnet50"), hw("h100"), cnn); });
  EXPECT_TRUE(contains(image, "resnet50: a cnn model takes fixed-size inputs")) << image;

  SolveRequest encoder_pass;
  encoder_pass.phase = Phase::Inference;
  encoder_pass.seq_len = 100;
  const auto whisper = bad_input_message([&] { solve(model("whisper-small"), hw("h100"), encoder_pass); });
  EXPECT_TRUE(contains(whisper, "encoder pass")) << whisper;

  for (const auto& [id, phase] : {std::pair{"llama3-8b", Phase::Train}, std::pair{"bert-base", Phase::Inference},
                                  std::pair{"whisper-small", Phase::Inference}}) {
    SolveRequest cached;
    cached.phase = phase;
    cached.context = 512;
    const auto msg = bad_input_message([&] { solve(model(id), hw("h100"), cached); });
    EXPECT_TRUE(contains(msg, "--context (tokens already in the KV cache) does not apply")) << msg;
    cached.context = 0;  // nothing cached: the same step, accepted
    EXPECT_NO_THROW(solve(model(id), hw("h200"), cached)) << id;
  }
  // Where the fields apply they are taken: a prefill behind a cached prefix costs more than
  // without one (its attention reads the prefix).
  SolveRequest prefill;
  prefill.phase = Phase::Prefill;
  prefill.seq_len = 512;
  const double fresh = solve(model("llama3-8b"), hw("h100"), prefill).latency.si();
  prefill.context = 4096;
  EXPECT_GT(solve(model("llama3-8b"), hw("h100"), prefill).latency.si(), fresh);
}

// The textbook factor lives in [0.01, 1]: above 1 beats the datasheet, and a vanishing one
// (5e-324 is > 0) would make every time infinite.
TEST(Errors, EfficiencyOutsideUnitInterval) {
  for (const double bad : {1.5, 0.005, 5e-324}) {
    SolveRequest r;
    r.efficiency = bad;
    const std::string msg = bad_input_message([&] { solve(model("llama3-8b"), hw("h100"), r); });
    EXPECT_TRUE(contains(msg, "--efficiency must be in [0.01, 1]")) << bad << ": " << msg;
  }
  SolveRequest lowest;
  lowest.efficiency = 0.01;
  EXPECT_TRUE(std::isfinite(solve(model("llama3-8b"), hw("h100"), lowest).latency.si()));
}

TEST(Errors, PhaseThatTheModelDoesNotHave) {
  SolveRequest r;
  r.phase = Phase::Decode;
  const auto msg = bad_input_message([&] { solve(model("resnet50"), hw("h100"), r); });
  EXPECT_TRUE(contains(msg, "use --phase inference or train")) << msg;
  EXPECT_TRUE(contains(msg, "resnet50 is a cnn model")) << msg;
  const auto encoder = bad_input_message([&] { solve(model("bert-base"), hw("h100"), r); });
  EXPECT_TRUE(contains(encoder, "bert-base is an encoder model")) << encoder;
}

TEST(Errors, PrecisionTheDeviceLacksIsAnErrorOrAReportedFallback) {
  // Coral runs int8 only: fp32 is an error that names what it supports.
  SolveRequest r;
  r.precision = Precision::FP32;
  const auto msg = bad_input_message([&] { solve(model("mobilenetv1-025"), hw("coral-edge-tpu"), r); });
  EXPECT_TRUE(contains(msg, "no fp32 compute path")) << msg;
  EXPECT_TRUE(contains(msg, "int8")) << msg;
  // V100 has no bf16: fp16 math is used and reported.
  SolveRequest b;
  b.precision = Precision::BF16;
  const Profile p = solve(model("llama3-8b"), hw("v100"), b);
  EXPECT_TRUE(p.precision_fallback);
  EXPECT_EQ(p.compute_precision, Precision::FP16);
  // A100 has no fp8: fp8 weights are dequantized into 16-bit math.
  SolveRequest f;
  f.precision = Precision::FP8;
  const Profile q = solve(model("llama3-8b"), hw("a100-80gb"), f);
  EXPECT_TRUE(q.precision_fallback);
  EXPECT_EQ(q.compute_precision, Precision::BF16);
}

TEST(Errors, SeventyBillionParametersDoNotFitOneH100) {
  SolveRequest r;
  const Profile p = solve(model("llama3-70b"), hw("h100"), r);
  EXPECT_FALSE(p.feasible);
  // 70.55e9 params x 2 B = 141 GB of weights alone vs 80 GB.
  EXPECT_NEAR(p.memory.weights.si(), 70.553706496e9 * 2, 1);
  const std::string msg = does_not_fit_message(p);
  // The CUDA-visible 79.19 GiB = 85.03e9 B beside the datasheet's 80 GB.
  EXPECT_TRUE(contains(msg, "h100 has 85.0 GB usable (80.0 GB on the datasheet)")) << msg;
  EXPECT_TRUE(contains(msg, "tp_size >= 2")) << msg;
  EXPECT_TRUE(contains(msg, "--precision fp8")) << msg;  // 70.6 GB of weights then fit
}

TEST(Errors, TrainingOutOfMemorySuggestsRecomputation) {
  SolveRequest r;
  r.phase = Phase::Train;
  r.batch = 8;
  r.seq_len = 4096;
  const Profile p = solve(model("llama3-8b"), hw("h100"), r);
  EXPECT_FALSE(p.feasible);
  EXPECT_TRUE(contains(does_not_fit_message(p), "--recompute full"));
  EXPECT_TRUE(does_not_fit_message(solve(model("gpt2"), hw("h100"), SolveRequest{})).empty());
}

TEST(Errors, IsolatedRuntimeIsForOneKernelOnly) {
  try {
    parse_runtime("isolated", "--runtime");
    FAIL() << "expected BadInput";
  } catch (const BadInput& e) {
    EXPECT_NE(std::string(e.what()).find("mlsysim kernel"), std::string::npos) << e.what();
  }
  EXPECT_EQ(parse_kernel_runtime("isolated", "--runtime"), Runtime::Isolated);
}

TEST(Errors, FitsAgainstUsableMemoryNotTheLabel) {
  // The H100's label says 80 GB; CUDA exposes 79.19 GiB = 85.03e9 B. The first decode batch whose
  // footprint passes 80e9 B (each sequence adds 4097 x 131,072 B of KV) still fits.
  SolveRequest r;
  r.phase = Phase::Decode;
  r.context = 4096;
  const auto& m = Catalog::builtin().model("llama3-8b");
  const auto& h = Catalog::builtin().hardware("h100");
  for (r.batch = 1; r.batch < 512; ++r.batch) {
    const Profile p = solve(m, h, r);
    if (p.memory.total().si() <= 80e9) continue;
    EXPECT_LT(p.memory.total().si(), 80e9 + 4097 * 131072.0 + 1e6);
    EXPECT_TRUE(p.feasible);
    EXPECT_DOUBLE_EQ(p.memory_capacity.si(), 79.19 * 1024 * 1024 * 1024);
    return;
  }
  FAIL() << "no batch passed 80 GB";
}

// Fields that only a training step or a KV cache uses are refused elsewhere, not echoed unused.
TEST(Errors, RecomputationAndKvPrecisionOnlyWhereTheyApply) {
  SolveRequest prefill;
  prefill.phase = Phase::Prefill;
  prefill.recompute = Recompute::Full;
  EXPECT_TRUE(contains(bad_input_message([&] { solve(model("llama3-8b"), hw("h100"), prefill); }),
                       "--recompute does not apply"));
  SolveRequest encoder;
  encoder.kv_precision = Precision::FP8;
  EXPECT_TRUE(contains(bad_input_message([&] { solve(model("bert-base"), hw("h100"), encoder); }),
                       "--kv-precision does not apply"));
  SolveRequest decode;
  decode.kv_precision = Precision::FP8;  // where there is a KV cache it halves its bytes
  const Profile fp8 = solve(model("llama3-8b"), hw("h100"), decode);
  decode.kv_precision = Precision::BF16;
  EXPECT_NEAR(fp8.memory.kv_cache.si() * 2, solve(model("llama3-8b"), hw("h100"), decode).memory.kv_cache.si(), 1.0);
}
