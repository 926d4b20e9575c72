// Fleet catalog, topology-aware collectives, and nccl-tests cross-checks.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "input_errors.hpp"
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
  EXPECT_THROW((void)FleetCatalog::builtin().standard_cluster("l4", 8), BadInput);  // default_cluster below
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

// ---- What a user's fleet tables may not say ----------------------------------------------------

namespace {

// One valid entry of each fleet table; the tests change one thing at a time.
const std::string kFabric =
    "[[fabric]]\nid = \"my-fabric\"\nkind = \"ethernet\"\nper_direction_gbps_bytes = 25\nlatency_us = 5\n"
    "collective_efficiency = 0.8\nin_network_reduction = false\nsource = \"test\"\n";
const std::string kTopology =
    "[[topology]]\nid = \"my-topology\"\nring_fraction = 1\nall_to_all_fraction = 0.5\n"
    "oversubscription_applies = true\nhops = 3\nsource = \"test\"\n";
const std::string kNode =
    "[[node]]\nid = \"my-node\"\naccelerator = \"h100\"\ngpus_per_node = 8\nnics_per_node = 8\n"
    "scale_up_fabric = \"nvlink4\"\nscale_out_fabric = \"my-fabric\"\nsource = \"test\"\n";
const std::string kCluster =
    "[[cluster]]\nid = \"my-cluster\"\nnode = \"my-node\"\nfabric = \"my-fabric\"\ntopology = \"my-topology\"\n"
    "nodes = 4\noversubscription = 1\nsource = \"test\"\n";
const std::string kFleet = kFabric + kTopology + kNode + kCluster;

using mlsysim::testing::expect_each_refused;
using mlsysim::testing::mentions;
using mlsysim::testing::RefusedInput;
using mlsysim::testing::with;

// The BadInput message of adding `toml` to a copy of the built-in fleet, or "" when it is accepted.
std::string fleet_error(const std::string& toml) {
  return mlsysim::testing::bad_input_of([&] {
    FleetCatalog f = FleetCatalog::builtin();
    f.add_toml(toml, "user.toml");
    f.validate();
  });
}

}  // namespace

TEST(FleetInput, TheTestEntriesAreValid) {
  EXPECT_EQ(fleet_error(kFleet), "");
  FleetCatalog f = FleetCatalog::builtin();
  f.add_toml(kFleet, "user.toml");
  const Cluster c = f.cluster("my-cluster");
  EXPECT_EQ(c.total_gpus(), 32);
  EXPECT_DOUBLE_EQ(c.scale_out.collective_efficiency, 0.8);
  EXPECT_EQ(c.topology.hops, 3);
}

// A misspelt key used to leave its field at the default without a word (a 'colective_efficiency'
// of 0.5 left the fabric at 1.0, twice as fast).
TEST(FleetInput, UnknownKeysAreRefusedWithTheClosestKnownKey) {
  const std::vector<RefusedInput> cases = {
      {with(kFleet, "collective_efficiency", "colective_efficiency"),
       "user.toml [my-fabric]: unknown key 'colective_efficiency' in [[fabric]]: did you mean "
       "'collective_efficiency'?"},
      {with(kFleet, "hops", "hop"), "user.toml [my-topology]: unknown key 'hop' in [[topology]]: did you mean 'hops'?"},
      {with(kFleet, "nics_per_node", "nic_per_node"),
       "user.toml [my-node]: unknown key 'nic_per_node' in [[node]]: did you mean 'nics_per_node'?"},
      {with(kFleet, "oversubscription = 1", "oversubscripton = 1"),
       "user.toml [my-cluster]: unknown key 'oversubscripton' in [[cluster]]: did you mean 'oversubscription'?"},
      {kFabric + "zzz = 1\n", "unknown key 'zzz' in [[fabric]] (known keys: id, name, aliases, kind, "
                              "per_direction_gbps_bytes"},
      {with(kFleet, "[[fabric]]", "[[fabrc]]"), "user.toml: unknown key 'fabrc'"},
      {with(kFleet, "[[fabric]]", "[[fabrc]]"), "did you mean 'fabric'?"},
      // One bracket pair defines a table, not an entry: it used to be skipped.
      {with(kFabric, "[[fabric]]", "[fabric]"), "write each entry under [[fabric]]"},
  };
  expect_each_refused(cases, fleet_error);
}

// Values of the wrong type are refused, not read as the field's default (in_network_reduction =
// "yes" used to read as false, 2.5 GPUs per node as 2); rates and fractions are checked.
TEST(FleetInput, FieldsOfTheWrongTypeOrRangeAreRefused) {
  const std::vector<RefusedInput> cases = {
      {with(kFleet, "in_network_reduction = false", "in_network_reduction = \"yes\""),
       "user.toml [my-fabric]: 'in_network_reduction' must be true or false, got \"yes\""},
      {with(kFleet, "oversubscription_applies = true", "oversubscription_applies = 1"),
       "'oversubscription_applies' must be true or false, got 1"},
      {with(kFleet, "collective_efficiency = 0.8", "collective_efficiency = \"0.8\""),
       "'collective_efficiency' must be a number, got \"0.8\""},
      {with(kFleet, "collective_efficiency = 0.8", "collective_efficiency = 1.5"),
       "'collective_efficiency' must be in (0, 1], got 1.5"},
      {with(kFleet, "all_to_all_fraction = 0.5", "all_to_all_fraction = 0"), "'all_to_all_fraction' must be in (0, 1]"},
      {with(kFleet, "gpus_per_node = 8", "gpus_per_node = 2.5"), "'gpus_per_node' must be a whole number >= 0, got 2.5"},
      {with(kFleet, "gpus_per_node = 8", "gpus_per_node = 0"), "'gpus_per_node' must be a whole number >= 1, got 0"},
      {with(kFleet, "hops = 3", "hops = 0"), "'hops' must be a whole number >= 1, got 0"},
      {with(kFleet, "nodes = 4", "nodes = \"4\""), "'nodes' must be a whole number >= 0, got \"4\""},
      {with(kFleet, "kind = \"ethernet\"", "kind = 3"), "'kind' must be a string, got 3"},
      {with(kFleet, "kind = \"ethernet\"", "kind = \"ethernt\""),
       "'kind' must be one of nvlink | xgmi | ici | infiniband | roce | ethernet | pcie, got \"ethernt\"; did you "
       "mean \"ethernet\"?"},
      {with(kFleet, "id = \"my-fabric\"", "id = \"my-fabric\"\naliases = \"mine\""),
       "'aliases' must be an array of strings"},
      {with(kFleet, "per_direction_gbps_bytes = 25", "per_direction_gbps_bytes = 25e9"),  // B/s written as GB/s
       "'per_direction_gbps_bytes' = 25000000000 GB/s is outside the plausible range"},
      {with(kFleet, "per_direction_gbps_bytes = 25", "per_direction_gbps_bytes = 0"),
       "'per_direction_gbps_bytes' must be a number > 0 GB/s"},
      {with(kFleet, "latency_us = 5", "latency_us = -5"), "'latency_us' must be a finite, non-negative number"},
  };
  expect_each_refused(cases, fleet_error);
}

// In a --catalog directory the messages name the file.
TEST(FleetInput, UserDirectoryErrorsNameTheFile) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "mlsysim_test_fleet_keys";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "fleet.toml") << with(kFleet, "collective_efficiency", "colective_efficiency");
  try {
    (void)FleetCatalog::with_user_dir(dir.string());
    ADD_FAILURE() << "expected BadInput";
  } catch (const BadInput& e) {
    EXPECT_TRUE(mentions(e.what(), (dir / "fleet.toml").string() + " [my-fabric]: unknown key 'colective_efficiency'"))
        << e.what();
  }
  std::ofstream(dir / "fleet.toml") << kFleet;
  EXPECT_EQ(FleetCatalog::with_user_dir(dir.string()).cluster("my-cluster").total_gpus(), 32);
}

// Fleet names follow the device and model rule (catalog/named_entries.hpp): an entry defined twice
// in the user's files, or an alias that another entry already answers to, used to replace it
// silently; reusing a built-in id is the one deliberate override.
TEST(FleetInput, ANameDefinedTwiceIsRefusedUnlessItOverridesABuiltIn) {
  const std::string twice = fleet_error(kFleet + kFabric);
  EXPECT_TRUE(mentions(twice, "the id 'my-fabric' is already the id of fabric 'my-fabric' (user.toml)")) << twice;
  const std::string alias =
      fleet_error(kFleet + with(kFabric, "id = \"my-fabric\"", "id = \"other\"\naliases = [\"my-fabric\"]"));
  EXPECT_TRUE(mentions(alias, "alias 'my-fabric'")) << alias;
  // Reusing a built-in fabric's id replaces it, and its built-in aliases still find the replacement.
  const Fabric& builtin = FleetCatalog::builtin().fabric("nvlink4");
  FleetCatalog f = FleetCatalog::builtin();
  f.add_toml(with(kFabric, "id = \"my-fabric\"", "id = \"nvlink4\""), "user.toml");
  EXPECT_DOUBLE_EQ(f.fabric("nvlink4").collective_efficiency, 0.8);
  for (const std::string& a : builtin.aliases) EXPECT_DOUBLE_EQ(f.fabric(a).collective_efficiency, 0.8);
  EXPECT_NE(builtin.collective_efficiency, 0.8);
}

// Devices with no standard node (catalog/fleet) still train and communicate: one device alone, or
// one server of up to kMaxServerDevices whose rings ride the device's own link where it joins them
// all, else its PCIe host link at kPcieAchievedShare.
TEST(Fleet, DevicesWithoutAStandardNodeGetOneServer) {
  const auto& fleet = FleetCatalog::builtin();
  const auto& catalog = Catalog::builtin();
  const HardwareSpec& l4 = catalog.hardware("l4");
  ASSERT_FALSE(fleet.has_standard_node("l4"));
  const Cluster one = default_cluster(fleet, l4, 1);
  EXPECT_EQ(one.total_gpus(), 1);
  EXPECT_EQ(one.nodes, 1);

  // 4 x L4 over PCIe Gen4 x16 (32 GB/s per direction, catalog) at 86%: a 1 GB ring all-reduce moves
  // 2 (n-1)/n x 1 GB = 1.5 GB through each GPU's link -> 1.5e9 / (32e9 x 0.86) s, plus 6 alphas.
  const Cluster four = default_cluster(fleet, l4, 4);
  EXPECT_EQ(four.total_gpus(), 4);
  EXPECT_EQ(four.nodes, 1);
  const double beta = l4.host_link->per_direction.si() * kPcieAchievedShare;
  EXPECT_DOUBLE_EQ(beta, 32e9 * 0.86);
  const auto est = collective_time(CollectiveOp::AllReduce, Bytes(1e9), place_group_on(four, 4, 1), four,
                                   Algorithm::Ring);
  EXPECT_NEAR(est.time.si(), 1.5e9 / beta + 6 * l4.host_link->latency.si(), 1e-9);

  // A GeForce card's driver refuses peer-to-peer: NCCL stages each transfer in host memory, at
  // 7.09 / 16 of the link (two V100 PCIe on that path, nccl-tests; physics/collectives.hpp).
  const HardwareSpec& geforce = catalog.hardware("rtx-4090");
  ASSERT_FALSE(geforce.host_link->peer_to_peer);
  EXPECT_DOUBLE_EQ(default_cluster(fleet, geforce, 4).scale_up.collective_efficiency, 7.09 / 16);
  // Its per-step latency is that path's: an 8-byte all-reduce of 2 ranks is two steps, 10.09 us.
  const Cluster pair = default_cluster(fleet, geforce, 2);
  EXPECT_NEAR(collective_time(CollectiveOp::AllReduce, Bytes(8), place_group_on(pair, 2, 1), pair, Algorithm::Ring)
                  .time.si(),
              10.09e-6 + 8.0 / (32e9 * 7.09 / 16), 1e-12);
  EXPECT_DOUBLE_EQ(four.scale_up.collective_efficiency, kPcieAchievedShare);

  // An NVLink bridge joins 2 GPUs: a pair rides it, a group of 4 falls back to PCIe.
  const HardwareSpec& a6000 = catalog.hardware("rtx-a6000");
  ASSERT_EQ(a6000.interconnect->reach, 2);
  const auto link_of = [&](int gpus) { return default_cluster(fleet, a6000, gpus).scale_up.per_direction.si(); };
  EXPECT_DOUBLE_EQ(link_of(2), a6000.interconnect->per_direction.si());
  EXPECT_DOUBLE_EQ(link_of(4), a6000.host_link->per_direction.si());

  // Devices with a standard node keep it; beyond one server, or with no link at all, a clear error.
  EXPECT_EQ(default_cluster(fleet, catalog.hardware("h100"), 16).node.id, "dgx-h100");
  using mlsysim::testing::bad_input_of, mlsysim::testing::mentions;
  const std::string too_many = bad_input_of([&] { (void)default_cluster(fleet, l4, kMaxServerDevices + 1); });
  EXPECT_TRUE(mentions(too_many, "one server") && mentions(too_many, "--cluster")) << too_many;
  const HardwareSpec& mcu = catalog.hardware("esp32-s3");
  ASSERT_FALSE(mcu.interconnect || mcu.host_link);
  EXPECT_EQ(default_cluster(fleet, mcu, 1).total_gpus(), 1);
  const std::string no_link = bad_input_of([&] { (void)default_cluster(fleet, mcu, 2); });
  EXPECT_TRUE(mentions(no_link, "no interconnect or host link") && mentions(no_link, "--gpus 1")) << no_link;
}

TEST(Fleet, NonNvidiaAcceleratorsHaveTheirVendorsStandardSystems) {
  const auto& fleet = FleetCatalog::builtin();
  // Intel's network configuration guide: each Gaudi card keeps 3 of its 24 RoCE ports for scale-out,
  // at 100 Gb/s on Gaudi 2 and 200 Gb/s on Gaudi 3: 37.5 and 75 GB/s per card in each direction.
  const Cluster gaudi2 = fleet.standard_cluster("gaudi2", 16);
  EXPECT_EQ(gaudi2.node.id, "hls-gaudi2");
  EXPECT_EQ(gaudi2.nodes, 2);
  EXPECT_DOUBLE_EQ(gaudi2.nic_bandwidth_per_gpu().si(), 3 * 100e9 / 8);
  EXPECT_DOUBLE_EQ(fleet.standard_cluster("gaudi3", 16).nic_bandwidth_per_gpu().si(), 3 * 200e9 / 8);
  // Inside the box the other 21 ports join the 7 peers: 21 x 200 Gb/s = 525 GB/s per Gaudi 3. The
  // fabric is fitted to Intel's hccl_demo all-reduce of 256 MiB over 8 cards (512.96 GB/s bus
  // bandwidth), which it must reproduce.
  const Cluster gaudi3 = fleet.standard_cluster("gaudi3", 8);
  EXPECT_DOUBLE_EQ(gaudi3.scale_up.per_direction.si(), 21 * 200e9 / 8);
  const auto hccl = collective_time(CollectiveOp::AllReduce, Bytes(268435456.0), place_group(8, 1, 8), gaudi3);
  EXPECT_NEAR(hccl.busbw.si() / 512.957298e9, 1.0, 0.01);
  // AWS trn2.48xlarge: 16 chips, 3,200 Gb/s of EFA = 25 GB/s per chip.
  const Cluster trn2 = fleet.standard_cluster("trainium2", 64);
  EXPECT_EQ(trn2.nodes, 4);
  EXPECT_DOUBLE_EQ(trn2.nic_bandwidth_per_gpu().si(), 3200e9 / 8 / 16);
  // DGX-1 (V100): four 100 Gb/s EDR NICs for 8 GPUs.
  EXPECT_DOUBLE_EQ(fleet.standard_cluster("v100", 16).nic_bandwidth_per_gpu().si(), 4 * 12.5e9 / 8);
  // TPU slices: the Pod is one ICI domain (so tensor parallelism of 8 stays on ICI, as MaxText runs
  // it); Pods join over the data-center network: v5e hosts carry 2 x 100 Gb/s for 8 chips
  // (3.125 GB/s per chip), v6e hosts 4 x 200 Gb/s (12.5 GB/s per chip).
  const Cluster v5e = fleet.standard_cluster("tpu-v5e", 512);
  EXPECT_EQ(v5e.gpus_per_node(), 256);
  EXPECT_EQ(v5e.nodes, 2);
  EXPECT_DOUBLE_EQ(v5e.nic_bandwidth_per_gpu().si(), 2 * 100e9 / 8 / 8);
  EXPECT_DOUBLE_EQ(fleet.standard_cluster("tpu-v6e", 512).nic_bandwidth_per_gpu().si(), 4 * 200e9 / 8 / 8);
  EXPECT_EQ(fleet.standard_cluster("tpu-v5p", 512).nodes, 1);
  EXPECT_EQ(fleet.standard_cluster("tpu-v4", 4096).nodes, 1);
  // Invariant: a group that spans Pods is never faster than one that stays on ICI.
  const auto in_pod = collective_time(CollectiveOp::AllReduce, gigabytes(1), place_group(256, 1, 256), v5e);
  const auto across = collective_time(CollectiveOp::AllReduce, gigabytes(1), place_group(512, 1, 256), v5e);
  EXPECT_GT(across.time.si(), in_pod.time.si());
}
