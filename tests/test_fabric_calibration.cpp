// Fabric calibration from nccl-tests logs, and the two NCCL protocol regimes it fits.
#include <gtest/gtest.h>
#include <rapidcheck/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "mlsysim/catalog/fleet.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/physics/fabric_calibration.hpp"

using namespace mlsysim;

namespace {

std::string read_source_file(const std::string& relative) {
  std::ifstream in(std::string(MLSYSIM_SOURCE_DIR) + "/" + relative);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A cluster like A3 Mega whose network has known alpha-beta figures for both protocols.
Cluster cluster_with_known_network() {
  Cluster c = FleetCatalog::builtin().cluster("gcp-a3-mega");
  c.scale_out.latency = microseconds(40);
  c.scale_out.collective_efficiency = 0.70;
  c.scale_out.small_message_latency = microseconds(8);
  c.scale_out.small_message_efficiency = 0.20;
  return c;
}

// One 8x H100 node (DGX H100, NVLink 4 + NVSwitch), the placement of its 8 ranks, and the fit of one
// of the published Together AI sweeps on it.
const Cluster& h100_node() {
  static const Cluster node = FleetCatalog::builtin().standard_cluster("h100", 8);
  return node;
}
const GroupPlacement kNode8 = place_group(8, 1, 8);

// The fit of a published single-node all-reduce sweep (8 ranks, `rows` sizes) on `node`.
FabricFit fit_published_node_sweep(const std::string& log_name, size_t rows, const Cluster& node,
                                   Algorithm algorithm = Algorithm::Auto) {
  const std::string path = "catalog/calibration/measurements/" + log_name;
  const NcclTestsLog log = parse_nccl_tests(read_source_file(path), path);
  EXPECT_EQ(log.ranks, 8);
  EXPECT_EQ(log.samples.size(), rows);
  return fit_fabric(log.samples, CollectiveOp::AllReduce, kNode8, node, algorithm);
}
FabricFit fit_together_h100_sweep(const std::string& log_name, Algorithm algorithm) {
  return fit_published_node_sweep(log_name, 31, h100_node(), algorithm);
}

// A built-in scale-up fabric is what its published sweep fits to: both protocol regimes' alpha and
// efficiency.
void expect_fit_is_scale_up_fabric(const FabricFit& fit, const Fabric& fabric) {
  EXPECT_FALSE(fit.scale_out);
  EXPECT_NEAR(in_us(fit.latency), in_us(fabric.latency), 0.01);
  EXPECT_NEAR(fit.efficiency, fabric.collective_efficiency, 5e-4);
  EXPECT_NEAR(in_us(fit.small_message_latency), in_us(fabric.small_message_latency), 0.01);
  EXPECT_NEAR(fit.small_message_efficiency, fabric.small_message_efficiency, 5e-4);
}

}  // namespace

TEST(FabricCalibration, ReadsTheOutOfPlaceTimeOfEachRow) {
  const std::string log =
      "mpirun -np 2 ./build/all_gather_perf -b 1M -e 4M -f 2 -g 1\n"
      "#  Rank  0 Group  0 Pid   11 on node-a device  0 [0x1b] NVIDIA H100 80GB HBM3\n"
      "#  Rank  1 Group  0 Pid   12 on node-a device  1 [0x2b] NVIDIA H100 80GB HBM3\n"
      "#       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong\n"
      "     1048576        131072     float    none      -1    20.50   51.15   25.58      0    19.90   52.69   26.35      0\n"
      "     2097152        262144     float    none      -1    35.00   59.92   29.96    N/A    34.10   61.50   30.75    N/A\n"
      // An older nccl-tests prints no root column: the out-of-place time is the fifth number.
      "     4194304       1048576     float     sum    61.25   68.48  128.40  0e+00    60.10   69.79  130.85  0e+00\n"
      "# Avg bus bandwidth    : 28.000\n";
  const NcclTestsLog parsed = parse_nccl_tests(log, "log");
  ASSERT_TRUE(parsed.op.has_value());
  EXPECT_EQ(*parsed.op, CollectiveOp::AllGather);
  EXPECT_EQ(parsed.ranks, 2);
  ASSERT_EQ(parsed.samples.size(), 3u);
  EXPECT_DOUBLE_EQ(parsed.samples[0].message.si(), 1048576);
  EXPECT_NEAR(parsed.samples[0].time.si(), 20.50e-6, 1e-15);
  EXPECT_NEAR(parsed.samples[1].time.si(), 35.00e-6, 1e-15);
  EXPECT_DOUBLE_EQ(parsed.samples[2].message.si(), 4194304);
  EXPECT_NEAR(parsed.samples[2].time.si(), 61.25e-6, 1e-15);
}

// A result row whose time is nan or negative (a failed size) is refused with its line: dropping it
// silently would fit the fabric on one row fewer than the log shows.
TEST(FabricCalibration, RejectsAResultRowWithoutAPositiveTime) {
  const std::string rows =
      "     1048576        262144     float     sum      -1    20.50   51.15   89.51      0    19.90   52.69   92.21      0\n"
      "     4194304       1048576     float     sum      -1    {}   78.57  137.49      0    56.71   73.95  129.42      0\n";
  for (const char* time : {"nan", "-3.5", "0"}) {
    std::string log = rows;
    log.replace(log.find("{}"), 2, time);
    try {
      parse_nccl_tests(log, "bad.log");
      ADD_FAILURE() << "accepted time " << time;
    } catch (const BadInput& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("bad.log line 2: the out-of-place time of the 4194304-byte row"), std::string::npos) << what;
    }
  }
}

TEST(FabricCalibration, RejectsALogWithoutResultRows) {
  try {
    parse_nccl_tests("# nThread 1 nGpus 1\n# Avg bus bandwidth : 0\n", "empty.log");
    FAIL() << "expected BadInput";
  } catch (const BadInput& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("empty.log"), std::string::npos) << what;
    EXPECT_NE(what.find("all_reduce_perf -b 8 -e 8G"), std::string::npos) << what;
  }
}

TEST(FabricCalibration, RecoversTheAlphaAndEfficiencyThatMadeTheData) {
  // Times generated by the engine itself on a network of known figures, 8 B .. 8 GiB; the fit starts
  // from the built-in A3 Mega figures and must find the generating ones again.
  const Cluster truth = cluster_with_known_network();
  const GroupPlacement group = place_group(16, 1, 8);
  std::vector<CollectiveSample> samples;
  for (double s = 8; s <= 8.6e9; s *= 4)
    samples.push_back({bytes(s), collective_time(CollectiveOp::AllReduce, bytes(s), group, truth).time});
  const Cluster start = FleetCatalog::builtin().cluster("gcp-a3-mega");
  const FabricFit fit = fit_fabric(samples, CollectiveOp::AllReduce, group, start);
  EXPECT_TRUE(fit.scale_out);
  // Stage 1 fits the bulk pair while the small-message pair is still the starting one, and rows
  // near the regime boundary run on whichever protocol is faster: alpha lands within a few percent.
  EXPECT_NEAR(in_us(fit.latency), 40, 0.05 * 40);
  EXPECT_NEAR(fit.efficiency, 0.70, 0.005);
  EXPECT_NEAR(in_us(fit.small_message_latency), 8, 0.05 * 8);
  EXPECT_NEAR(fit.small_message_efficiency, 0.20, 0.01);
  EXPECT_LT(fit.max_abs_error, 0.02);
}

TEST(FabricCalibration, BuiltInTcpxoFabricIsTheFitOfItsPublishedSweep) {
  const std::string path = "catalog/calibration/measurements/gcp-a3-mega-16gpu-all_reduce_perf.log";
  const NcclTestsLog log = parse_nccl_tests(read_source_file(path), path);
  EXPECT_EQ(log.ranks, 16);
  EXPECT_EQ(log.samples.size(), 31u);
  const auto& fleet = FleetCatalog::builtin();
  const Cluster cluster = fleet.cluster("gcp-a3-mega");
  const FabricFit fit = fit_fabric(log.samples, CollectiveOp::AllReduce, place_group(16, 1, 8), cluster);
  const Fabric& tcpxo = fleet.fabric("tcpxo-200g");
  EXPECT_NEAR(in_us(fit.latency), in_us(tcpxo.latency), 0.1);
  EXPECT_NEAR(fit.efficiency, tcpxo.collective_efficiency, 5e-4);
  EXPECT_NEAR(in_us(fit.small_message_latency), in_us(tcpxo.small_message_latency), 0.01);
  EXPECT_NEAR(fit.small_message_efficiency, tcpxo.small_message_efficiency, 5e-5);
  // The fitted model reproduces the whole 8 B .. 8 GiB sweep within the figure its source states.
  EXPECT_LT(fit.median_abs_error, 0.05);
  EXPECT_LT(fit.max_abs_error, 0.14);
}

TEST(FabricCalibration, BuiltInNvlink4RingIsTheFitOfItsPublishedRingSweep) {
  // An NCCL_ALGO=RING sweep fits the ring with --algorithm ring; NVLS keeps its own efficiency.
  const FabricFit fit = fit_together_h100_sweep("together-h100-8gpu-all_reduce_ring.log", Algorithm::Ring);
  const Fabric& nvlink4 = FleetCatalog::builtin().fabric("nvlink4");
  expect_fit_is_scale_up_fabric(fit, nvlink4);
  EXPECT_DOUBLE_EQ(fit.in_network_efficiency, nvlink4.in_network_efficiency);
  EXPECT_LT(fit.median_abs_error, 0.02);
  // The ring model reproduces a size the fit used: 8 MiB in 81.3 us (busbw 180.6 GB/s).
  const double t =
      collective_time(CollectiveOp::AllReduce, bytes(8388608), kNode8, h100_node(), Algorithm::Ring).time.si();
  EXPECT_NEAR(t, 81.28e-6, 0.1 * 81.28e-6);
}

TEST(FabricCalibration, BuiltInMi300xMeshIsTheFitOfAmdsPublishedSweep) {
  // AMD's rccl-tests all-reduce sweep on one 8x MI300X node (ROCm blog, 2025), 8 B .. 16 GiB.
  const auto& fleet = FleetCatalog::builtin();
  const Cluster node = fleet.standard_cluster("mi300x", 8);
  const FabricFit fit = fit_published_node_sweep("amd-blog-mi300x-8gpu-all_reduce_perf.log", 32, node);
  expect_fit_is_scale_up_fabric(fit, fleet.fabric("infinity-fabric-mi300x"));
  EXPECT_LT(fit.median_abs_error, 0.08);
  // A published row: 1 GiB in 5970.6 us (busbw 314.7 GB/s, the slowest xGMI link's cap).
  const double t = collective_time(CollectiveOp::AllReduce, bytes(1073741824), kNode8, node).time.si();
  EXPECT_NEAR(t, 5970.6e-6, 0.05 * 5970.6e-6);
}

TEST(FabricCalibration, BuiltInNvlsIsTheFitOfItsPublishedNvlsSweep) {
  const FabricFit fit = fit_together_h100_sweep("together-h100-8gpu-all_reduce_nvls.log", Algorithm::InNetwork);
  const auto& fleet = FleetCatalog::builtin();
  const Fabric& nvlink4 = fleet.fabric("nvlink4");
  EXPECT_TRUE(fit.in_network_fit);
  EXPECT_NEAR(in_us(fit.in_network_latency), in_us(nvlink4.in_network_latency), 0.01);
  EXPECT_NEAR(fit.in_network_efficiency, nvlink4.in_network_efficiency, 5e-4);
  // The ring's figures are not what an NVLS run measures: they stay.
  EXPECT_DOUBLE_EQ(in_us(fit.latency), in_us(nvlink4.latency));
  EXPECT_DOUBLE_EQ(fit.efficiency, nvlink4.collective_efficiency);
  EXPECT_LT(fit.max_abs_error, 0.05);
  // 8 GiB in-network: 78 us + 8 GiB / (450 GB/s x 0.597) against the measured 31.37 ms.
  const double t = collective_time(CollectiveOp::AllReduce, bytes(8589934592.0), kNode8, h100_node()).time.si();
  EXPECT_NEAR(t, 78.07e-6 + 8589934592.0 / (450e9 * nvlink4.in_network_efficiency), 1e-9);
  EXPECT_NEAR(t, 31.37e-3, 0.03 * 31.37e-3);
  // NVLS runs on the Simple protocol only: a 64 KiB all-reduce goes to the ring's low-latency
  // protocol (~37 us measured in both sweeps), not to NVLS's 78 us.
  const auto small = collective_time(CollectiveOp::AllReduce, bytes(65536), kNode8, h100_node());
  EXPECT_EQ(small.algorithm, Algorithm::Ring);
  EXPECT_NEAR(small.time.si(), 35.66e-6, 0.15 * 35.66e-6);
  // A fabric without in-network reduction has nothing for this fit.
  const std::vector<CollectiveSample> rows = {{bytes(1e9), milliseconds(5)}, {bytes(2e9), milliseconds(10)}};
  EXPECT_THROW(fit_fabric(rows, CollectiveOp::AllReduce, kNode8, fleet.standard_cluster("a100-80gb", 8),
                          Algorithm::InNetwork),
               BadInput);
}

TEST(FabricCalibration, EachSizeRunsOnTheFasterProtocol) {
  const Cluster both = cluster_with_known_network();
  Cluster bulk_only = both;
  bulk_only.scale_out.small_message_efficiency = 0;
  Cluster small_only = both;
  small_only.scale_out.latency = both.scale_out.small_message_latency;
  small_only.scale_out.collective_efficiency = both.scale_out.small_message_efficiency;
  small_only.scale_out.small_message_efficiency = 0;
  // One rank per node over 4 nodes: a flat ring on the network, by hand:
  // t = 2(n-1) alpha + 2(n-1)/n S / (NIC share x efficiency x ring fraction).
  const GroupPlacement flat = place_group(4, 8, 8);
  auto ring_by_hand = [&](double s, double alpha, double efficiency) {
    const double bw = both.nic_bandwidth_per_gpu().si() * efficiency * both.topology.ring_fraction;
    return 6 * alpha + 1.5 * s / bw;
  };
  for (double s : {1e3, 1e6, 1e9}) {
    const double t_both = collective_time(CollectiveOp::AllReduce, bytes(s), flat, both, Algorithm::Ring).time.si();
    const double t_bulk = ring_by_hand(s, 40e-6, 0.70);
    const double t_small = ring_by_hand(s, 8e-6, 0.20);
    EXPECT_NEAR(t_both, std::min(t_bulk, t_small), 1e-12 + 1e-9 * t_both) << s;
    EXPECT_NEAR(collective_time(CollectiveOp::AllReduce, bytes(s), flat, bulk_only, Algorithm::Ring).time.si(),
                t_bulk, 1e-9 * t_bulk);
    EXPECT_NEAR(collective_time(CollectiveOp::AllReduce, bytes(s), flat, small_only, Algorithm::Ring).time.si(),
                t_small, 1e-9 * t_small);
  }
  // Small messages take the low-latency protocol, large ones the bulk protocol.
  EXPECT_LT(ring_by_hand(1e3, 8e-6, 0.20), ring_by_hand(1e3, 40e-6, 0.70));
  EXPECT_GT(ring_by_hand(1e9, 8e-6, 0.20), ring_by_hand(1e9, 40e-6, 0.70));
}

TEST(FabricCalibration, SmallMessageFiguresComeInPairs) {
  FleetCatalog f = FleetCatalog::builtin();
  try {
    f.add_toml("[[fabric]]\nid = \"half\"\nkind = \"ethernet\"\nper_direction_gbps_bytes = 25\nlatency_us = 5\n"
               "small_message_latency_us = 2\nsource = \"test\"\n",
               "half.toml");
    FAIL() << "expected BadInput";
  } catch (const BadInput& e) {
    EXPECT_NE(std::string(e.what()).find("small_message_efficiency"), std::string::npos) << e.what();
  }
}

// Any text either parses into positive sizes and times or is rejected as bad input: no crash, no
// NaN, whatever a user pipes in (rows of random tokens, numbers in any column).
RC_GTEST_PROP(FabricCalibration, AnyLogParsesOrIsRejected, ()) {
  const auto rows = *rc::gen::container<std::vector<std::vector<std::string>>>(
      rc::gen::container<std::vector<std::string>>(rc::gen::oneOf(
          rc::gen::map(rc::gen::inRange(-1000, 100000), [](int v) { return std::to_string(v); }),
          rc::gen::element<std::string>("float", "sum", "none", "#", "N/A", "-1", "1e400", "nan", "12.5",
                                        "Rank", "all_reduce_perf", ""))));
  std::string text;
  for (const auto& r : rows) {
    for (const auto& t : r) text += t + " ";
    text += "\n";
  }
  try {
    const NcclTestsLog log = parse_nccl_tests(text, "random.log");
    RC_ASSERT(log.samples.size() >= 2u);
    for (const auto& s : log.samples) {
      RC_ASSERT(std::isfinite(s.message.si()) && s.message.si() > 0);
      RC_ASSERT(std::isfinite(s.time.si()) && s.time.si() > 0);
    }
  } catch (const BadInput&) {
    RC_SUCCEED("rejected");
  }
}
