// Parallelism optimizer: the tutorial's exercise, ranking invariants and search speed.
#include <gtest/gtest.h>

#include <limits>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/catalog/fleet.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/solvers/parallelism_optimizer.hpp"

using namespace mlsysim;

namespace {
// The tutorial's exercise: Llama-3 70B on 64 H100s at global batch 512 x 4096 tokens.
OptimizerRequest llama70b_on_64_h100() {
  OptimizerRequest q;
  q.gpus = 64;
  q.global_batch = 512;
  q.seq_len = 4096;
  return q;
}
const Cluster& h100_x64() {
  static const Cluster cluster = FleetCatalog::builtin().standard_cluster("h100", 64);
  return cluster;
}
OptimizerResult optimize_llama70b(const OptimizerRequest& q) {
  const auto& c = Catalog::builtin();
  return optimize_parallelism(c.model("llama3-70b"), c.hardware("h100"), h100_x64(), q);
}
}  // namespace

TEST(Optimizer, Llama70bOn64H100) {
  const auto& c = Catalog::builtin();
  const Cluster& cl = h100_x64();
  const auto r = optimize_llama70b(llama70b_on_64_h100());
  EXPECT_GT(r.searched, 3000);
  // Search speed is measured in bench/bench_engine.cpp, not asserted here (timed tests flake under load).
  const auto& w = r.best();
  EXPECT_TRUE(w.feasible);
  EXPECT_LE(w.layout.tp, 8);  // TP never crosses the node
  EXPECT_EQ(w.layout.tp * w.layout.pp * w.layout.dp * w.layout.cp * w.layout.ep, 64);
  for (size_t i = 1; i < r.top.size(); ++i) EXPECT_LE(w.step_time, r.top[i].step_time);
  // The winner is at least as fast as the tutorial's candidates A (8/1/8), B (4/2/8), C (2/4/8)
  // evaluated directly with the same batch, wherever those fit.
  for (auto [tp, pp] : {std::pair{8, 1}, {4, 2}, {2, 4}}) {
    for (int z : {0, 1, 2, 3}) {
      TrainingRequest t;
      t.gpus = 64;
      t.layout.tp = tp;
      t.layout.pp = pp;
      t.global_batch = 512;
      t.seq_len = 4096;
      t.zero_stage = z;
      t.recompute = Recompute::Full;
      const auto x = train(c.model("llama3-70b"), c.hardware("h100"), cl, t);
      if (x.feasible) EXPECT_LE(w.step_time.si(), x.step_time.si() * (1 + 1e-9)) << tp << "/" << pp;
    }
  }
  EXPECT_FALSE(r.explanation.empty());
}

TEST(Optimizer, NothingFitsThrowsDoesNotFit) {
  const auto& c = Catalog::builtin();
  OptimizerRequest q;
  q.gpus = 2;
  q.global_batch = 2;
  q.seq_len = 4096;
  EXPECT_THROW(optimize_parallelism(c.model("llama3-70b"), c.hardware("h100"),
                                    FleetCatalog::builtin().standard_cluster("h100", 2), q),
               DoesNotFit);
}

TEST(Optimizer, MissingBatchIsBadInput) {
  const auto& c = Catalog::builtin();
  OptimizerRequest q;
  q.gpus = 8;
  EXPECT_THROW(optimize_parallelism(c.model("llama3-8b"), c.hardware("h100"),
                                    FleetCatalog::builtin().standard_cluster("h100", 8), q),
               BadInput);
}

TEST(Optimizer, OutOfRangeBoundsNameTheFlagNotAnEmptySearch) {
  // A bound that empties the search space is the user's input, and the error says which.
  const auto& c = Catalog::builtin();
  const Cluster cluster = FleetCatalog::builtin().standard_cluster("h100", 8);
  const auto error_of = [&](OptimizerRequest q) -> std::string {
    q.gpus = 8;
    q.global_batch = 64;
    try {
      optimize_parallelism(c.model("llama3-8b"), c.hardware("h100"), cluster, q);
    } catch (const BadInput& e) {
      return e.what();
    }
    return "";
  };
  OptimizerRequest q;
  q.max_tp = 0;
  EXPECT_NE(error_of(q).find("--max-tp must be >= 1"), std::string::npos);
  q = {};
  q.max_pp = -1;
  EXPECT_NE(error_of(q).find("--max-pp must be >= 1"), std::string::npos);
  q = {};
  q.seq_len = 0;
  EXPECT_NE(error_of(q).find("--seq-len must be >= 1"), std::string::npos);
  q = {};
  q.top = 0;
  EXPECT_NE(error_of(q).find("--top must be >= 1"), std::string::npos);
  q = {};
  q.tokens = -5;
  EXPECT_NE(error_of(q).find("--tokens must be in (0, 1e+18]"), std::string::npos);
  // Infinite tokens would make time to train, energy and cost infinite: refused as well.
  q = {};
  q.tokens = std::numeric_limits<double>::infinity();
  EXPECT_NE(error_of(q).find("--tokens must be in (0, 1e+18]"), std::string::npos);
  q = {};
  q.threads = 5000;
  EXPECT_NE(error_of(q).find("--threads must be in [1, 1024]"), std::string::npos);
}

TEST(Optimizer, SearchesTensOfThousandsOfLayouts) {
  const auto& cat = mlsysim::Catalog::builtin();
  const auto& model = cat.model("llama3-70b");
  const auto& h100 = cat.hardware("h100");
  mlsysim::OptimizerRequest req;
  req.gpus = 64;
  req.global_batch = 512;
  req.seq_len = 4096;
  const auto cluster = mlsysim::FleetCatalog::builtin().standard_cluster("h100", 64);
  const auto r = mlsysim::optimize_parallelism(model, h100, cluster, req);
  // TP {1,2,4,8} x PP x CP x micro-batch {1..32} x interleaving {1..8} x sequence parallel x
  // recompute x ZeRO: more than ten thousand layouts, every one counted exactly once.
  EXPECT_GE(r.searched, 10000);
  EXPECT_EQ(r.searched, r.rejected + r.did_not_fit + r.feasible);
  EXPECT_GT(r.feasible, 0);
}

// With the runtime's communication overlap, every layout is timed with it, the winner included
// (it is re-evaluated for its trace from the same fields): the ranking holds, and hiding
// communication can only make the best layout faster.
TEST(Optimizer, CommunicationOverlapAppliesToEveryLayoutAndTheWinner) {
  OptimizerRequest q = llama70b_on_64_h100();
  const auto plain = optimize_llama70b(q);
  q.tp_comm_overlap = q.pp_comm_overlap = true;
  const auto hidden = optimize_llama70b(q);
  const auto& w = hidden.best();
  EXPECT_EQ(w.tp_comm_overlap, w.layout.tp > 1);
  EXPECT_EQ(w.pp_comm_overlap, w.layout.pp > 1);
  for (size_t i = 1; i < hidden.top.size(); ++i) EXPECT_LE(w.step_time, hidden.top[i].step_time);
  EXPECT_LE(w.step_time, plain.best().step_time);
}

// Block recomputation widens the search: recomputing a quarter of each stage's layers where that is
// enough to fit beats recomputing all of them, so the wider search is never slower and, for
// Llama-3 70B at 8192 tokens on 32 H100s, strictly faster, with a partly recomputed winner.
TEST(Optimizer, BlockRecomputationFindsTheLeastRecomputationThatFits) {
  const auto& c = Catalog::builtin();
  const Cluster cluster = FleetCatalog::builtin().standard_cluster("h100", 32);
  OptimizerRequest q;
  q.gpus = 32;
  q.global_batch = 64;
  q.seq_len = 8192;
  q.threads = 1;
  const OptimizerResult wide = optimize_parallelism(c.model("llama3-70b"), c.hardware("h100"), cluster, q);
  q.search_block_recompute = false;
  const OptimizerResult narrow = optimize_parallelism(c.model("llama3-70b"), c.hardware("h100"), cluster, q);
  EXPECT_LT(wide.best().step_time.si(), narrow.best().step_time.si());
  EXPECT_EQ(wide.best().recompute, Recompute::Full);
  EXPECT_LT(wide.best().recompute_layers, wide.best().stage_layers);
  EXPECT_GT(wide.best().recompute_layers, 0);
  EXPECT_TRUE(wide.best().feasible);
}
