// Physical invariants, checked on random workloads with RapidCheck.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/solvers/engine.hpp"

using namespace mlsysim;

namespace {

const std::vector<std::string> kModels = {"llama3-8b", "llama3-70b", "mixtral-8x7b", "deepseek-v3",
                                          "gemma2-9b", "gpt2", "bert-base", "vit-b16",
                                          "whisper-large-v3", "resnet50", "mobilenetv2", "dlrm"};
const std::vector<std::string> kHardware = {"h100", "h200", "a100-80gb", "mi300x", "gaudi3",
                                            "l4", "tpu-v5p", "jetson-agx-orin", "rtx-4090"};

struct Case {
  const ModelSpec* model;
  const HardwareSpec* hw;
  SolveRequest request;
};

rc::Gen<Case> cases() {
  return rc::gen::map(
      rc::gen::tuple(rc::gen::elementOf(kModels), rc::gen::elementOf(kHardware),
                     rc::gen::inRange(1, 257), rc::gen::inRange(0, 4096), rc::gen::inRange(0, 4),
                     rc::gen::inRange(1, 1025), rc::gen::arbitrary<bool>()),
      [](const auto& t) {
        const auto& [m, h, batch, context, phase_pick, seq, eager] = t;
        Case c{&Catalog::builtin().model(m), &Catalog::builtin().hardware(h), {}};
        c.request.batch = batch;
        // Both execution models: graph replay, and eager dispatch through the launch queue.
        c.request.runtime = eager ? Runtime::Eager : Runtime::Graph;
        const bool lm = c.model->is_language_model();
        const Phase phases[] = {Phase::Decode, Phase::Prefill, Phase::Train, Phase::Inference};
        Phase phase = phases[phase_pick];
        if (!lm && (phase == Phase::Decode || phase == Phase::Prefill)) phase = Phase::Inference;
        c.request.phase = phase;
        const int max_seq = c.model->is_transformer() && c.model->tf.max_seq > 0
                                ? c.model->tf.max_seq : 1 << 20;
        if (phase == Phase::Decode) c.request.context = std::min(context, max_seq - 1);
        else if (c.model->is_transformer() && c.model->tf.default_seq == 0)
          c.request.seq_len = std::min(seq, max_seq);
        return c;
      });
}

HardwareSpec scaled(const HardwareSpec& hw, double flops_factor, double bandwidth_factor) {
  HardwareSpec s = hw;
  for (auto& p : s.dense_peak) p = p * flops_factor;
  s.memory_bandwidth = s.memory_bandwidth * bandwidth_factor;
  return s;
}

}  // namespace

RC_GTEST_PROP(Invariants, TimeFractionsSumToOne, ()) {
  const Case c = *cases();
  const Profile p = solve(*c.model, *c.hw, c.request);
  const double sum = (p.compute_time + p.memory_time + p.overhead_time).si();
  RC_ASSERT(std::fabs(sum - p.latency.si()) <= 1e-12 * p.latency.si());
  RC_ASSERT(p.latency.si() > 0);
  RC_ASSERT(std::isfinite(p.latency.si()));
  RC_ASSERT(p.mfu >= 0 && p.mfu <= 1);
  RC_ASSERT(p.hfu >= p.mfu);
  RC_ASSERT(p.energy.si() > 0);
}

RC_GTEST_PROP(Invariants, LatencyNeverFallsWhenBatchGrows, ()) {
  Case c = *cases();
  const int extra = *rc::gen::inRange(1, 64);
  const Profile small = solve(*c.model, *c.hw, c.request);
  c.request.batch += extra;
  const Profile large = solve(*c.model, *c.hw, c.request);
  RC_ASSERT(large.latency.si() >= small.latency.si() * (1 - 1e-12));
  RC_ASSERT(large.memory.total() >= small.memory.total());
}

RC_GTEST_PROP(Invariants, MoreBandwidthOrFlopsIsNeverSlower, ()) {
  const Case c = *cases();
  const double more = 1.0 + *rc::gen::inRange(0, 400) / 100.0;
  const Profile base = solve(*c.model, *c.hw, c.request);
  const HardwareSpec faster_memory = scaled(*c.hw, 1.0, more);
  const HardwareSpec faster_compute = scaled(*c.hw, more, 1.0);
  RC_ASSERT(solve(*c.model, faster_memory, c.request).latency.si() <= base.latency.si() * (1 + 1e-12));
  RC_ASSERT(solve(*c.model, faster_compute, c.request).latency.si() <= base.latency.si() * (1 + 1e-12));
}

RC_GTEST_PROP(Invariants, LongerContextNeverMakesDecodeFaster, ()) {
  const std::string m = *rc::gen::elementOf(std::vector<std::string>{"llama3-8b", "gemma2-9b",
                                                                     "deepseek-v3", "mistral-7b"});
  const auto& model = Catalog::builtin().model(m);
  const auto& hw = Catalog::builtin().hardware(*rc::gen::elementOf(kHardware));
  SolveRequest r;
  r.batch = *rc::gen::inRange(1, 64);
  r.context = *rc::gen::inRange(0, 4000);
  const Profile shorter = solve(model, hw, r);
  r.context = *r.context + *rc::gen::inRange(1, 4000);
  const Profile longer = solve(model, hw, r);
  RC_ASSERT(longer.latency.si() >= shorter.latency.si());
  RC_ASSERT(longer.memory.kv_cache >= shorter.memory.kv_cache);
}

RC_GTEST_PROP(Invariants, FinerKernelDecompositionIsNeverFaster, ()) {
  // fused (compiled) <= unfused (one kernel per op) <= hf (Hugging Face module code), same runtime.
  Case c = *cases();
  c.request.runtime = *rc::gen::elementOf(std::vector<Runtime>{Runtime::Graph, Runtime::Eager});
  double previous = 0;
  for (Fusion f : {Fusion::Fused, Fusion::Unfused, Fusion::Hf}) {
    c.request.fusion = f;
    const Profile p = solve(*c.model, *c.hw, c.request);
    RC_ASSERT(std::isfinite(p.latency.si()));
    RC_ASSERT(p.latency.si() >= previous * (1 - 1e-12));
    previous = p.latency.si();
  }
}

RC_GTEST_PROP(Invariants, QuantizingTheHeadTooIsNeverSlowerOrLarger, ()) {
  // A head stored and run in the quantized format instead of 16 bits moves fewer bytes: never a
  // slower step, never more memory; and the stored weights lie between all-quantized and all-16-bit.
  Case c = *cases();
  c.request.precision = *rc::gen::elementOf(std::vector<Precision>{Precision::FP8, Precision::INT8, Precision::INT4});
  Profile kept;
  try {
    kept = solve(*c.model, *c.hw, c.request);
  } catch (const BadInput&) {
    RC_DISCARD("precision or shape not valid on this device");
  }
  c.request.quantize_head = true;
  const Profile quantized = solve(*c.model, *c.hw, c.request);
  RC_ASSERT(quantized.latency.si() <= kept.latency.si() * (1 + 1e-12));
  RC_ASSERT(quantized.memory.total() <= kept.memory.total());
  const double pw = bytes_per_element(kept.precision);
  RC_ASSERT(kept.weight_bytes.si() >= kept.parameters * pw * (1 - 1e-12));
  RC_ASSERT(kept.weight_bytes.si() <= kept.parameters * std::max(pw, 2.0) * (1 + 1e-12));
}
