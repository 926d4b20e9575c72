// Training-model invariants on random layouts (RapidCheck): every memory component is a
// non-negative size and times are finite, whatever the recomputation, ZeRO stage or pipeline.
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <cmath>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/catalog/fleet.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/solvers/training.hpp"

using namespace mlsysim;

RC_GTEST_PROP(TrainingInvariants, LedgerIsNonNegativeAndTimesFinite, ()) {
  const std::string m = *rc::gen::elementOf(std::vector<std::string>{"llama3-8b", "llama3-70b",
                                                                     "mixtral-8x7b", "gpt2", "llama3.1-405b"});
  const int gpus = *rc::gen::elementOf(std::vector<int>{8, 16, 64, 256});
  TrainingRequest q;
  q.gpus = gpus;
  q.layout.tp = *rc::gen::elementOf(std::vector<int>{1, 2, 4, 8});
  q.layout.pp = *rc::gen::elementOf(std::vector<int>{1, 2, 4, 8, 16});
  q.layout.vpp = *rc::gen::elementOf(std::vector<int>{1, 2, 4});
  q.micro_batch = *rc::gen::inRange(1, 5);
  q.seq_len = *rc::gen::elementOf(std::vector<int>{1024, 2048, 4096});
  q.recompute = *rc::gen::elementOf(std::vector<Recompute>{Recompute::None, Recompute::Selective, Recompute::Full});
  q.zero_stage = *rc::gen::inRange(0, 4);
  q.sequence_parallel = *rc::gen::arbitrary<bool>();
  const auto& model = Catalog::builtin().model(m);
  const auto& h100 = Catalog::builtin().hardware("h100");
  const Cluster cluster = FleetCatalog::builtin().standard_cluster("h100", gpus);
  TrainingResult r;
  try {
    r = train(model, h100, cluster, q);
  } catch (const BadInput&) {
    RC_SUCCEED("layout rejected with a reason");
  }
  RC_CLASSIFY(true, "evaluated");
  for (Bytes b : {r.memory.weights, r.memory.gradients, r.memory.optimizer_states, r.memory.activations,
                  r.memory.buffers})
    RC_ASSERT(b.si() >= 0);
  RC_ASSERT(r.memory.total().si() > 0);
  RC_ASSERT(std::isfinite(r.step_time.si()) && r.step_time.si() > 0);
  RC_ASSERT(r.mfu > 0 && r.mfu <= 1);
  RC_ASSERT(r.bubble_fraction >= 0 && r.bubble_fraction < 1);
}
