// LRU stack-distance reuse of activations through the last-level cache (physics/cache_reuse.hpp),
// checked against hand-computed distances and against invariants of any cache.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/physics/cache_reuse.hpp"
#include "mlsysim/physics/operators.hpp"

using namespace mlsysim;

TEST(CacheReuse, HitFractionFollowsTheStackDistance) {
  // 48 MB cache, a 6.4 MB tensor just written (distance 0), 51.4 MB streaming in beside it: the
  // line at fraction x sits at 6.4 + 51.4 x, under 48 MB for x <= 41.6 / 51.4.
  EXPECT_NEAR(lru_hit_fraction(48e6, 6.4e6, 0, 51.4e6), 41.6 / 51.4, 1e-12);
  // Everything fits: S + D + N = 6.4 + 10 + 20 <= 48.
  EXPECT_DOUBLE_EQ(lru_hit_fraction(48e6, 6.4e6, 10e6, 20e6), 1.0);
  // The tensor and what came after it already overflow the cache: its first line is gone, and
  // every miss evicts the next line to be read.
  EXPECT_DOUBLE_EQ(lru_hit_fraction(48e6, 30e6, 20e6, 1e6), 0.0);
  EXPECT_DOUBLE_EQ(lru_hit_fraction(48e6, 60e6, 0, 0), 0.0);
  // No cache, no hits.
  EXPECT_DOUBLE_EQ(lru_hit_fraction(0, 1e6, 0, 0), 0.0);
}

TEST(CacheReuse, HistoryCountsDistinctBytesSinceTheLastTouch) {
  ReuseHistory h(100, 2);  // room for 2 tensors reserved: it grows past them
  const int a = h.add(10), b = h.add(5), c = h.add(20, false);
  EXPECT_DOUBLE_EQ(h.since(a), 25.0);
  EXPECT_DOUBLE_EQ(h.since(b), 20.0);
  EXPECT_DOUBLE_EQ(h.since(c), 0.0);
  h.touch(a);  // re-read: a is the most recent, b now has a and c after it
  EXPECT_DOUBLE_EQ(h.since(b), 30.0);
  EXPECT_DOUBLE_EQ(h.since(a), 0.0);
  EXPECT_TRUE(h.older(b, a));
  EXPECT_EQ(h.latest_of_size(5), b);
  EXPECT_EQ(h.latest_of_size(20), -1);  // c is not a layer output
  EXPECT_EQ(h.latest(), b);  // the most recently written layer output
  // 90 bytes more: b and c now have 120 and 100 bytes after them, no less than the 100-byte cache,
  // so they can never hit again and leave the history (a stays, 90 bytes back).
  const int d = h.add(90);
  EXPECT_TRUE(std::isinf(h.since(b)));
  EXPECT_TRUE(std::isinf(h.since(c)));
  EXPECT_DOUBLE_EQ(h.since(a), 90.0);
  EXPECT_DOUBLE_EQ(h.since(d), 0.0);
}

TEST(CacheReuse, OlderInputsCountAsTrafficForNewerOnes) {
  // skip (40 B) was touched before x (10 B); an operator reads both and writes 40 B, in an 80 B
  // cache. x: S 10, D 0, N = 40 written + 40 of skip (older) -> hit (80 - 10) / 80 = 0.875.
  // skip: S 40, D 10 (x after it), N = 40 written (x is newer, already in D) -> (80 - 50) / 40.
  ReuseHistory h(80, 8);
  const int skip = h.add(40), x = h.add(10);
  const std::vector<StreamedInput> both{{x, 10}, {skip, 40}};
  const double dram = dram_read_bytes(h, both, 40, 80);
  EXPECT_NEAR(dram, (1 - 0.875) * 10 + (1 - 30.0 / 40) * 40, 1e-12);
  // Both inputs were touched: they are the most recent entries now.
  EXPECT_DOUBLE_EQ(h.since(skip), 0.0);
  // A tensor never seen (an image from the host) always comes from DRAM.
  const std::vector<StreamedInput> image{{-1, 7}};
  EXPECT_DOUBLE_EQ(dram_read_bytes(h, image, 0, 80), 7.0);
}

// Any LRU cache: more capacity never adds DRAM traffic, for every CNN row shape (bottleneck
// blocks with projection shortcuts, inverted residuals, squeeze-excite), fused or not.
TEST(CacheReuse, ALargerCacheNeverMovesMoreBytes) {
  for (const char* id : {"resnet50", "resnet18", "mobilenetv2", "efficientnet-b0"}) {
    for (bool fused : {true, false}) {
      for (int batch : {1, 8, 32, 128}) {
        double previous = INFINITY;
        for (double cache : {0.0, 4e6, 16e6, 40e6, 48e6, 50e6, 96e6, 256e6, 1e12}) {
          LoweringInput in;
          in.phase = Phase::Inference;
          in.batch = batch;
          in.fused = fused;
          in.weight_precision = in.compute_precision = Precision::INT8;
          in.cache_bytes = cache;
          std::vector<Operator> ops;
          lower(Catalog::builtin().model(id), in, ops);
          double bytes = 0;
          for (const Operator& op : ops) bytes += op.bytes * op.count;
          EXPECT_LE(bytes, previous * (1 + 1e-12)) << id << " fused " << fused << " batch " << batch
                                                     << " cache " << cache;
          previous = bytes;
        }
      }
    }
  }
}
