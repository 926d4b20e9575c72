// Fleet catalog, topology-aware collectives, and nccl-tests cross-checks.
#include <gtest/gtest.h>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/catalog/fleet.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/physics/topology.hpp"

using namespace mlsysim;

TEST(Fleet, TutorialClustersResolveByAliasAndEveryEntryHasASource) {
  const auto& f = FleetCatalog::builtin();
  const Cluster r = f.cluster("Research_256");
  EXPECT_EQ(r.id, "research-256");
  EXPECT_EQ(r.total_gpus(), 256);
  EXPECT_EQ(f.cluster("Frontier_8K").total_gpus(), 8192);
  EXPECT_EQ(f.cluster("llama3-16k").total_gpus(), 16384);
  EXPECT_EQ(f.cluster("Training_512_H100").total_gpus(), 512);
  for (const auto& x : f.fabrics()) EXPECT_FALSE(x.source.empty()) << x.id;
  for (const auto& x : f.nodes()) EXPECT_FALSE(x.source.empty()) << x.id;
  for (const auto& x : f.clusters()) EXPECT_FALSE(x.source.empty()) << x.id;
  for (const auto& x : f.topologies()) EXPECT_FALSE(x.source.empty()) << x.id;
  // Every node's accelerator is a catalog device.
  for (const auto& n : f.nodes()) EXPECT_NO_THROW(Catalog::builtin().hardware(n.accelerator)) << n.id;
}

TEST(Fleet, NvlinkIsStoredPerDirection) {
  // H100 datasheet: 900 GB/s bidirectional per GPU -> 450 GB/s each way; NDR: 400 Gb/s = 50 GB/s.
  const auto& f = FleetCatalog::builtin();
  EXPECT_DOUBLE_EQ(f.fabric("nvlink4").per_direction.si(), 450e9);
  EXPECT_DOUBLE_EQ(f.fabric("nvlink5").per_direction.si(), 900e9);
  EXPECT_DOUBLE_EQ(f.fabric("ib-ndr").per_direction.si(), 50e9);
  EXPECT_DOUBLE_EQ(f.cluster("research-256").nic_bandwidth_per_gpu().si(), 50e9);
}

TEST(Fleet, UnknownNamesSuggestTheClosest) {
  try {
    (void)FleetCatalog::builtin().cluster("frontier-8");
    FAIL();
  } catch (const BadInput& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)FleetCatalog::builtin().standard_cluster("l4", 8), BadInput);
}

TEST(Fleet, StandardClusterOfH100IsDgxNodes) {
  const Cluster c = FleetCatalog::builtin().standard_cluster("h100", 64);
  EXPECT_EQ(c.node.id, "dgx-h100");
  EXPECT_EQ(c.nodes, 8);
  EXPECT_EQ(c.scale_out.id, "ib-ndr");
}

TEST(Topology, DgxH100AllReduceBusBandwidthMatchesNcclTests) {
  // nccl-tests all_reduce_perf on one DGX H100, large messages: ~360-480 GB/s bus bandwidth
  // (ring ~370, NVLS ~470-480).
  const Cluster c = FleetCatalog::builtin().standard_cluster("h100", 8);
  const auto g = place_group(8, 1, 8);
  const auto best = collective_time(CollectiveOp::AllReduce, gigabytes(8), g, c);
  EXPECT_GE(in_gbps(best.busbw), 360);
  EXPECT_LE(in_gbps(best.busbw), 480);
  const auto ring = collective_time(CollectiveOp::AllReduce, gigabytes(8), g, c, Algorithm::Ring);
  EXPECT_GE(in_gbps(ring.busbw), 340);
  EXPECT_LE(in_gbps(ring.busbw), 400);
  EXPECT_EQ(best.algorithm, Algorithm::InNetwork);
}

TEST(Topology, MultiNodeAllReduceIsBoundByNodeInjectionBandwidth) {
  // Hierarchical all-reduce over 4 DGX H100: busbw ~ 8 NICs x 50 GB/s x efficiency (<= 400 GB/s).
  const Cluster c = FleetCatalog::builtin().standard_cluster("h100", 32);
  const auto e = collective_time(CollectiveOp::AllReduce, gigabytes(8), place_group(32, 1, 8), c);
  EXPECT_LT(in_gbps(e.busbw), 400.0);
  EXPECT_GT(in_gbps(e.busbw), 200.0);  // serial intra + inter phases: ~246 (NCCL pipelines them: ~350)
}

TEST(Topology, GroupPlacementFollowsMegatronRankOrder) {
  auto tp = place_group(8, 1, 8);
  EXPECT_EQ(tp.nodes, 1);
  auto dp = place_group(8, 8, 8);  // DP ranks one per node
  EXPECT_EQ(dp.per_node, 1);
  EXPECT_EQ(dp.nodes, 8);
  auto mixed = place_group(8, 4, 8);  // 2 per node
  EXPECT_EQ(mixed.per_node, 2);
  EXPECT_EQ(mixed.nodes, 4);
}

TEST(Topology, CommTimeGrowsWithMessageSize) {
  const Cluster c = FleetCatalog::builtin().cluster("frontier-8k");
  for (auto op : {CollectiveOp::AllReduce, CollectiveOp::AllGather, CollectiveOp::AllToAll}) {
    Seconds prev{};
    for (double s = 1e3; s < 1e11; s *= 10) {
      const auto e = collective_time(op, bytes(s), place_group(64, 8, 8), c);
      EXPECT_GT(e.time, prev) << to_string(op) << " " << s;
      prev = e.time;
    }
  }
}

TEST(Topology, OversubscriptionSlowsCrossingTraffic) {
  Cluster c = FleetCatalog::builtin().cluster("frontier-8k");
  const auto g = place_group(16, 8, 8);
  const auto full = collective_time(CollectiveOp::AllReduce, gigabytes(1), g, c, Algorithm::Ring);
  c.oversubscription = 2.0;
  const auto half = collective_time(CollectiveOp::AllReduce, gigabytes(1), g, c, Algorithm::Ring);
  EXPECT_GT(half.time.si(), 1.9 * full.time.si() - 1e-3);
  EXPECT_DOUBLE_EQ(oversubscription_slowdown(0.5, 3.0), 2.0);
}

TEST(Topology, InNetworkRequestedWhereUnsupportedIsRejected) {
  const Cluster c = FleetCatalog::builtin().standard_cluster("a100-80gb", 8);  // NVLink 3: no NVLS
  EXPECT_THROW(collective_time(CollectiveOp::AllReduce, gigabytes(1), place_group(8, 1, 8), c,
                               Algorithm::InNetwork),
               BadInput);
}
