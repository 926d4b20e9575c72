// Parallel sweeps: every configuration of the product is evaluated exactly once, with the same
// answer as a single solve, and invalid combinations are counted as skipped.
#include <gtest/gtest.h>

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
  // resnet50 has no decode phase: 3 devices x 3 batches x 2 contexts skipped; llama3-8b's
  // "inference" is its prefill, so it runs.
  EXPECT_EQ(r.skipped, 3u * 3 * 2);
  EXPECT_EQ(r.evaluated + r.skipped, s.size());
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
