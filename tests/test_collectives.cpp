// Collectives (alpha-beta model) and model sharding.
#include <gtest/gtest.h>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/physics/collectives.hpp"
#include "mlsysim/physics/sharding.hpp"
#include "mlsysim/physics/transformer.hpp"

using namespace mlsysim;

TEST(Collectives, TutorialRingAllReduceExample) {
  // Slide 4.3b: 16 GB of gradients, 8 GPUs, 900 GB/s, 500 ns:
  // 2 x 7/8 x 16e9 / 900e9 + 2 x 7 x 500e-9 = 31.11 ms + 7 us (the slide rounds to "~35 ms").
  const Seconds t = calc_ring_allreduce_time(bytes(16e9), 8, bytes_per_second(900e9),
                                             nanoseconds(500));
  EXPECT_NEAR(t.si(), 2.0 * 7 / 8 * 16e9 / 900e9 + 14 * 500e-9, 1e-12);
  // Slide 4.4: 1 GB over 256 GPUs at 50 GB/s: 2 x 255/256 x 1/50 s = 39.8 ms.
  const Seconds ib = calc_ring_allreduce_time(gigabytes(1), 256, gigabytes_per_second(50), Seconds(0));
  EXPECT_NEAR(in_ms(ib), 2.0 * 255 / 256 / 50 * 1e3, 1e-9);
}

TEST(Collectives, SingleRankIsFreeAndBadInputIsRejected) {
  const LinkCost link{gigabytes_per_second(100), microseconds(5)};
  EXPECT_EQ(ring_allreduce_time(gigabytes(1), 1, link).si(), 0);
  EXPECT_THROW(ring_allreduce_time(gigabytes(1), 0, link), BadInput);
  EXPECT_THROW(ring_allreduce_time(bytes(-1), 4, link), BadInput);
  EXPECT_THROW(ring_allreduce_time(gigabytes(1), 4, {BytesPerSecond(0), Seconds(0)}), BadInput);
}

TEST(Collectives, BusBandwidthOfAnIdealRingIsTheLinkBandwidth) {
  // nccl-tests busbw = algbw x 2(N-1)/N: for a latency-free ring it equals the link bandwidth.
  const LinkCost link{gigabytes_per_second(450), Seconds(0)};
  const Seconds t = ring_allreduce_time(gigabytes(8), 8, link);
  EXPECT_NEAR(allreduce_bus_bandwidth(gigabytes(8), 8, t).si(), 450e9, 1);
}

TEST(Collectives, HierarchicalBeatsAFlatRingOverTheSlowFabric) {
  const LinkCost nvlink{gigabytes_per_second(450), nanoseconds(500)};
  const LinkCost ib{gigabytes_per_second(50), microseconds(5)};
  const Seconds flat = ring_allreduce_time(gigabytes(1), 64, ib);
  const Seconds hier = hierarchical_allreduce_time(gigabytes(1), 8, 8, nvlink, ib);
  EXPECT_LT(hier, flat);
  // Communication time grows with message size.
  EXPECT_LT(ring_allreduce_time(gigabytes(1), 8, ib), ring_allreduce_time(gigabytes(2), 8, ib));
}

TEST(Sharding, TensorParallelSplitsHeadsAndFfn) {
  const auto& m = Catalog::builtin().model("llama3-70b");
  const ModelSpec s = shard_transformer(m, {8, 1, 1});
  EXPECT_EQ(s.tf.heads, 8);
  EXPECT_EQ(s.tf.kv_heads, 1);
  EXPECT_EQ(s.tf.ffn, 28672 / 8);
  // Layer weights split exactly 8 ways (norms are replicated and tiny).
  const double full = transformer_params(m.tf, m.kind).attention + transformer_params(m.tf, m.kind).ffn;
  const double shard = transformer_params(s.tf, s.kind).attention + transformer_params(s.tf, s.kind).ffn;
  EXPECT_NEAR(shard * 8 / full, 1.0, 1e-9);
  EXPECT_THROW(shard_transformer(m, {3, 1, 1}), BadInput);   // 64 heads not divisible by 3
  EXPECT_THROW(shard_transformer(m, {1, 81, 1}), BadInput);  // more stages than 80 layers
  EXPECT_EQ(shard_transformer(m, {1, 4, 1}).tf.layers, 20);
}
