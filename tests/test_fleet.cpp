// Fleet catalog, topology-aware collectives, and nccl-tests cross-checks.
#include <gtest/gtest.h>

#include <algorithm>

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
  for (const auto& n : f.nodes()) EXPECT_NO_THROW((void)Catalog::builtin().hardware(n.accelerator)) << n.id;
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

TEST(Fleet, StandardClusterStopsAtAThreeLevelFatTree) {
  // k^3/4 hosts for a k-ary fat tree (Al-Fares et al. 2008) with k = 128 ports.
  const int most = 128 * 128 * 128 / 4;
  EXPECT_EQ(FleetCatalog::builtin().standard_cluster("h100", most).total_gpus(), most);
  EXPECT_THROW((void)FleetCatalog::builtin().standard_cluster("h100", most + 1), BadInput);
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
  EXPECT_GT(in_gbps(e.busbw), 300.0);  // Voltage Park 4x DGX H100 nccl-tests: 331 GB/s
}

TEST(Topology, MultiNodeRingSpreadsChannelsOverTheNodesNics) {
  // A flat ring over 2 DGX H100: each of the 8 channels leaves the node through its own NIC, so the
  // slowest hop is min(NVLink ring bandwidth, 8 NICs x 50 GB/s x efficiency), not one 50 GB/s NIC.
  const auto& f = FleetCatalog::builtin();
  const Cluster c = f.standard_cluster("h100", 16);
  const auto ring = collective_time(CollectiveOp::AllReduce, gigabytes(8), place_group(16, 1, 8), c,
                                    Algorithm::Ring);
  const double nvlink = 450e9 * f.fabric("nvlink4").collective_efficiency;
  const double nics = 8 * 50e9 * f.fabric("ib-ndr").collective_efficiency;
  const double hop = std::min(nvlink, nics);
  const double expected = 2.0 * 15 * 5e-6 + 2.0 * 15 / 16 * 8e9 / hop;
  EXPECT_NEAR(ring.time.si(), expected, 1e-9);
}

TEST(Topology, TreeMovesTwiceTheMessageExceptBetweenTwoRanks) {
  // Double binary tree: an interior rank receives from two children and sends to its parent (and
  // back down), 2 x M each way; two ranks exchange M once. Latency: 2 ceil(log2 N) steps.
  const LinkCost link{gigabytes_per_second(50), microseconds(5)};
  EXPECT_NEAR(tree_allreduce_time(gigabytes(1), 2, link).si(), 2 * 5e-6 + 1e9 / 50e9, 1e-12);
  EXPECT_NEAR(tree_allreduce_time(gigabytes(1), 16, link).si(), 8 * 5e-6 + 2e9 / 50e9, 1e-12);
  // Rings win for large messages, trees for small ones (NCCL's crossover).
  EXPECT_LT(ring_allreduce_time(gigabytes(1), 16, link), tree_allreduce_time(gigabytes(1), 16, link));
  EXPECT_LT(tree_allreduce_time(bytes(1024), 16, link), ring_allreduce_time(bytes(1024), 16, link));
  // Inside one node NCCL's tree is a chain: 2(N-1) steps and 2 x M per rank, never ahead of the ring.
  EXPECT_NEAR(chain_allreduce_time(gigabytes(1), 8, link).si(), 14 * 5e-6 + 2e9 / 50e9, 1e-12);
  for (double m : {8.0, 1e6, 1e9})
    EXPECT_GE(chain_allreduce_time(bytes(m), 8, link), ring_allreduce_time(bytes(m), 8, link));
}

TEST(Topology, NvlsTreeIsBoundByItsSlowerPipelinedStage) {
  // 2 x A3 Mega (8 H100 + 8 x 200 Gb/s TCPXO): NVLS inside the node runs at 450 x 0.60 = 270 GB/s;
  // each rail exchanges 1/8 of the message with the other node at 25 GB/s x TCPXO's efficiency
  // (0.918, calibrated from nccl-tests). NCCL pipelines the stages, so the rails bind:
  // algbw ~ 8 x 22.95 = 184 GB/s; the two-node tree pays 2 alphas of TCPXO's bulk protocol. At 8 GiB
  // the small-message protocol (11.5% of the line rate) is far slower, so it is not chosen.
  const auto& f = FleetCatalog::builtin();
  const Cluster c = f.cluster("gcp-a3-mega");
  const auto e = collective_time(CollectiveOp::AllReduce, gigabytes(8), place_group(16, 1, 8), c,
                                 Algorithm::InNetwork);
  const double rail = 25e9 * f.fabric("tcpxo-200g").collective_efficiency;
  const double local = 450e9 * f.fabric("nvlink4").in_network_efficiency;
  const double transfer = std::max(8e9 / local, 8e9 / 8 / rail);
  // NVLS inside the node (reduce, then broadcast) pays its measured fixed cost twice.
  const double nvls_fixed = f.fabric("nvlink4").in_network_latency.si();
  ASSERT_GT(nvls_fixed, 0) << "nvlink4's NVLS fixed cost is a measured catalog figure";
  const double latency = 2 * nvls_fixed + 2 * f.fabric("tcpxo-200g").latency.si();
  EXPECT_NEAR(e.time.si(), transfer + latency, 1e-9);
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
