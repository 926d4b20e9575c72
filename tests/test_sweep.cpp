// Parallel sweeps: every configuration of the product is evaluated exactly once, with the same
// answer as a single solve; invalid combinations are counted as skipped, and values of a field the
// step does not use as repeats.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <tuple>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/solvers/sweep.hpp"

using namespace mlsysim;

TEST(Sweep, CoversTheProductAndMatchesSingleSolves) {
  const Catalog& c = Catalog::builtin();
  SweepSpace s;
  s.models = {&c.model("llama3-8b"), &c.model("resnet50")};
  s.hardware = {&c.hardware("h100"), &c.hardware("mi300x"), &c.hardware("l4")};
  s.phases = {Phase::Decode, Phase::Inference};
  s.batches = {1, 8, 64};
  s.contexts = {512, 2048};
  EXPECT_EQ(s.size(), 2u * 3 * 2 * 3 * 2);
  const SweepResult r = run_sweep(s, 2);
  // resnet50 reads no KV cache, so its second context repeats the first (3 devices x 3 batches x
  // 2 phases repeats); it has no decode phase, so the first is skipped (3 x 3), and its inference
  // runs once. llama3-8b's "inference" is its prefill, which reads a cached prefix: it runs at
  // both contexts.
  EXPECT_EQ(r.skipped, 3u * 3);
  EXPECT_EQ(r.repeats, 3u * 3 * 2);
  EXPECT_EQ(r.evaluated + r.skipped + r.repeats, s.size());
  for (const auto& p : r.points) {
    SolveRequest q;
    q.phase = p.phase;
    q.batch = p.batch;
    q.context = p.phase == Phase::Decode ? std::optional<int>(p.context) : std::optional<int>(2048);
    if (p.phase != Phase::Decode) q.context.reset();
    const Profile single = solve(*p.model, *p.hardware, q);
    if (p.phase == Phase::Decode) EXPECT_DOUBLE_EQ(single.latency.si(), p.latency.si());
    EXPECT_GT(p.latency.si(), 0);
  }
  SweepSpace empty;
  EXPECT_THROW(run_sweep(empty), BadInput);
}

// A decode step has no prompt length and a CNN neither a prompt nor a KV cache: sweeping
// --seq-len over them evaluates each configuration once (seq_len reported as the step's own),
// while a prefill sweep varies it. No point appears twice.
TEST(Sweep, FieldsAStepDoesNotUseAreSweptOnce) {
  const Catalog& c = Catalog::builtin();
  SweepSpace s;
  s.models = {&c.model("llama3-8b"), &c.model("resnet50")};
  s.hardware = {&c.hardware("h100")};
  s.batches = {1, 4};
  s.seq_lens = {128, 512, 2048};
  s.contexts = {256, 1024};
  const SweepResult r = run_sweep(s, 2);
  // llama3-8b decodes (its default phase): 2 batches x 2 contexts, seq_len unused (x3 -> x1).
  // resnet50 infers: 2 batches, neither field used (x6 -> x1).
  EXPECT_EQ(r.evaluated, 2u * 2 + 2u);
  EXPECT_EQ(r.skipped, 0u);
  EXPECT_EQ(r.repeats, s.size() - r.evaluated);
  std::set<std::tuple<std::string, int, int, int>> seen;
  for (const auto& p : r.points) {
    EXPECT_TRUE(seen.insert({p.model->id, p.batch, p.seq_len, p.context}).second) << p.model->id;
    if (p.model->id == "resnet50") {
      EXPECT_EQ(p.seq_len, 0);
      EXPECT_EQ(p.context, 0);
    } else {
      EXPECT_EQ(p.seq_len, 1);  // one new token per sequence
    }
  }
  s.models = {&c.model("llama3-8b")};
  s.phases = {Phase::Prefill};
  EXPECT_EQ(run_sweep(s, 2).evaluated, 2u * 3 * 2);  // a prefill uses both
}
