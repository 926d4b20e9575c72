// Collectives (alpha-beta model) and model sharding.
#include <gtest/gtest.h>

#include "cli_run.hpp"

#include <array>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <sys/wait.h>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/catalog/fleet.hpp"
#include "mlsysim/errors.hpp"
#include "mlsysim/physics/collectives.hpp"
#include "mlsysim/physics/topology.hpp"
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

namespace {

// Members per node by walking the ranks (member i at global rank i x stride, on node rank / g):
// an independent count to check place_group's closed form against.
std::vector<int> walk_members_per_node(int size, int stride, int g) {
  std::map<long long, int> per_node;
  for (long long i = 0; i < size; ++i) ++per_node[i * stride / g];
  std::vector<int> out;
  for (const auto& [node, members] : per_node) out.push_back(members);
  return out;
}

const std::vector<CollectiveOp> kAllOps = {CollectiveOp::AllReduce, CollectiveOp::AllGather,
                                           CollectiveOp::ReduceScatter, CollectiveOp::AllToAll,
                                           CollectiveOp::PointToPoint};

// GPU clusters whose NICs are slower than their scale-up fabric (every catalog cluster but the TPU
// torus, whose scale-out is ICI itself).
std::vector<Cluster> nic_clusters() {
  const auto& f = FleetCatalog::builtin();
  std::vector<Cluster> out{f.standard_cluster("h100", 64)};
  for (const char* id : {"research-256", "mi300x-1k", "a100-1k", "gcp-a3-mega", "llama3-16k", "nvl72-576"})
    out.push_back(f.cluster(id));
  return out;
}

// The line rate of one GPU's NIC share, from the catalog's figures: port rate x NICs / GPUs.
double nic_line_rate(const Cluster& c) {
  return c.scale_out.per_direction.si() * c.node.nics_per_node / c.node.gpus_per_node;
}

// What a rank alone on its node must move through its NIC for the op, whatever the algorithm:
// all-reduce: every element's result depends on both sides of the node boundary, so M in and M out;
// all-gather / reduce-scatter: the other N-1 ranks' shares of the buffer in / its contributions to
// them out; all-to-all: its N-1 blocks of M/N out and theirs in; point-to-point: the payload.
double lone_rank_bytes(CollectiveOp op, double m, int n) {
  switch (op) {
    case CollectiveOp::AllReduce:
    case CollectiveOp::PointToPoint: return m;
    default: return m * (n - 1) / n;
  }
}

using mlsysim::testing::CliResult;
using mlsysim::testing::run_cli;

nlohmann::json cli_json(const std::string& args, int expected_code = 0) {
  const CliResult r = run_cli(args + " --format json");
  EXPECT_EQ(r.code, expected_code) << args << "\n" << r.out;
  return nlohmann::json::parse(r.out, nullptr, false);
}

std::string cli_error(const std::string& args) {
  const auto j = cli_json(args, 1);
  return j.is_object() && j.contains("error") ? j["error"].get<std::string>() : std::string();
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST(CollectivePlacement, UnevenGroupsCountTheRealMembersOfEachNode) {
  // 9 ranks on 8-GPU nodes: 8 + 1. 8 ranks at stride 3: ranks 0,3,6 | 9,12,15 | 18,21 -> 3, 3, 2.
  const auto nine = place_group(9, 1, 8);
  EXPECT_EQ(nine.nodes, 2);
  EXPECT_EQ(nine.per_node, 8);
  EXPECT_EQ(nine.min_per_node, 1);
  const auto three = place_group(8, 3, 8);
  EXPECT_EQ(three.nodes, 3);
  EXPECT_EQ(three.per_node, 3);
  EXPECT_EQ(three.min_per_node, 2);
  EXPECT_EQ(describe_placement(three), "2 nodes of 3 + 1 node of 2");
  EXPECT_EQ(describe_placement(nine), "1 node of 8 + 1 node of 1");
  EXPECT_EQ(describe_placement(place_group(16, 1, 8)), "8 per node x 2 nodes");
  // Against a walk over the ranks, for every small size, stride and node width.
  for (int g : {2, 4, 8, 72})
    for (int stride = 1; stride <= 2 * g + 1; ++stride)
      for (int size = 1; size <= 3 * g + 2; ++size) {
        const auto walked = walk_members_per_node(size, stride, g);
        const auto p = place_group(size, stride, g);
        ASSERT_EQ(p.nodes, static_cast<int>(walked.size())) << size << "/" << stride << "/" << g;
        int total = 0;
        for (int j = 0; j < p.nodes; ++j) {
          EXPECT_EQ(members_on_node(p, j), walked[j]) << size << "/" << stride << "/" << g << " node " << j;
          total += members_on_node(p, j);
        }
        EXPECT_EQ(total, size);
        EXPECT_EQ(p.per_node, *std::max_element(walked.begin(), walked.end()));
        EXPECT_EQ(p.min_per_node, *std::min_element(walked.begin(), walked.end()));
      }
}

TEST(CollectivePlacement, LoneRemoteRankIsBoundByItsNic) {
  // N = g k + 1 ranks: one rank alone on the last node. Whatever the op and algorithm, its bytes
  // must cross its own NIC, so the time is at least those bytes over the NIC's line rate.
  // (h100 all-gather of 1 GB over 9 ranks: 8/9 GB through 50 GB/s >= 17.8 ms.)
  for (const Cluster& c : nic_clusters()) {
    const int g = c.gpus_per_node();
    for (int k : {1, 2, 3}) {
      const int n = g * k + 1;
      if (n > c.total_gpus()) continue;
      const auto p = place_group(n, 1, g);
      for (CollectiveOp op : kAllOps)
        for (double m = 1e3; m <= 1.7e10; m *= 8) {
          const double bound = lone_rank_bytes(op, m, n) / nic_line_rate(c);
          for (const auto& e : collective_candidates(op, bytes(m), p, c))
            EXPECT_GE(e.time.si(), bound * (1 - 1e-12))
                << c.id << " " << to_string(op) << " " << to_string(e.algorithm) << " n=" << n << " M=" << m;
        }
    }
  }
  const Cluster h100 = FleetCatalog::builtin().standard_cluster("h100", 9);
  EXPECT_GE(collective_time(CollectiveOp::AllGather, gigabytes(1), place_group(9, 1, 8), h100).time.si(),
            8.0 / 9 * 1e9 / 50e9);
}

// The cluster with every per-step and fixed latency set to zero: only bytes over links remain.
Cluster without_latency(Cluster c) {
  for (Fabric* f : {&c.scale_up, &c.scale_out}) {
    f->latency = Seconds(0);
    f->small_message_latency = Seconds(0);
    f->in_network_latency = Seconds(0);
  }
  return c;
}

TEST(CollectivePlacement, CrossingNodesIsNeverFasterThanStayingInOne) {
  // For the same ranks and bytes, leaving the node only adds slower links. Checked on the bytes
  // alone (alphas zeroed): in the latency regime the comparison is between the catalog's per-step
  // alphas (a calibrated NCCL NVLink step vs a datasheet network step) and the step counts of
  // different algorithms, not between placements.
  for (const Cluster& real : nic_clusters()) {
    const Cluster c = without_latency(real);
    const int g = c.gpus_per_node();
    for (CollectiveOp op : kAllOps)
      for (double m = 1e3; m <= 1.7e10; m *= 8) {
        const Bytes msg = bytes(m);
        // The same ranks in one node (stride 1) or spread over several (any larger stride).
        for (int n : {2, 3, 4, g / 2 + 1, g}) {
          if (n < 2 || n > g) continue;
          const Seconds inside = collective_time(op, msg, place_group(n, 1, g), c).time;
          for (int stride = 2; stride <= g; ++stride) {
            const auto spread = place_group(n, stride, g);
            if (spread.nodes == 1 || static_cast<long long>(n) * stride > c.total_gpus()) continue;
            EXPECT_GE(collective_time(op, msg, spread, c).time.si(), inside.si() * (1 - 1e-12))
                << c.id << " " << to_string(op) << " n=" << n << " stride " << stride << " M=" << m;
          }
        }
        // One rank more than a node holds moves (N-1)/N of the bytes instead of (g-1)/g, some of them
        // through a NIC: never faster than the full node.
        const Seconds full = collective_time(op, msg, place_group(g, 1, g), c).time;
        EXPECT_GE(collective_time(op, msg, place_group(g + 1, 1, g), c).time.si(), full.si() * (1 - 1e-12))
            << c.id << " " << to_string(op) << " M=" << m;
      }
  }
  // The reported case with the catalog's real alphas: a 1 GB all-to-all over 9 MI300X (2 nodes over
  // RoCE) was faster than over 8 (one Infinity Fabric node).
  const Cluster mi300x = FleetCatalog::builtin().cluster("mi300x-1k");
  EXPECT_GT(collective_time(CollectiveOp::AllToAll, gigabytes(1), place_group(9, 1, 8), mi300x).time,
            collective_time(CollectiveOp::AllToAll, gigabytes(1), place_group(8, 1, 8), mi300x).time);
}

TEST(CollectivePlacement, UnevenAllToAllSendsTheSmallNodesShareThroughItsNics) {
  // 12 ranks on 2 DGX H100: 8 + 4. Each of the 4 sends 8/12 of its buffer off the node through its
  // own NIC: >= (8/12) x 1 GB / 50 GB/s = 13.3 ms (a balanced model would give half of that).
  const Cluster c = FleetCatalog::builtin().standard_cluster("h100", 12);
  const auto e = collective_time(CollectiveOp::AllToAll, gigabytes(1), place_group(12, 1, 8), c);
  EXPECT_GE(e.time.si(), 8.0 / 12 * 1e9 / 50e9);
}

TEST(CollectivePlacement, StrideMustFitTheCluster) {
  // A group of N at stride s is one of s interleaved groups: N x s GPUs.
  const Cluster c = FleetCatalog::builtin().cluster("research-256");
  EXPECT_NO_THROW(place_group_on(c, 64, 4));  // 256 GPUs
  try {
    place_group_on(c, 64, 8);
    ADD_FAILURE() << "64 x 8 = 512 GPUs on 256";
  } catch (const BadInput& e) {
    EXPECT_TRUE(contains(e.what(), "512")) << e.what();
    EXPECT_TRUE(contains(e.what(), "256 GPUs")) << e.what();
    EXPECT_TRUE(contains(e.what(), "largest stride that fits 64 ranks is 4")) << e.what();
  }
  EXPECT_THROW(place_group_on(c, 8, 1000), BadInput);
  EXPECT_THROW(place_group_on(c, 8, 0), BadInput);
  EXPECT_THROW(place_group_on(c, 257, 1), BadInput);
  // The CLI: the same refusals; without --cluster the standard cluster grows to hold the stride.
  EXPECT_TRUE(contains(cli_error("collective --cluster research-256 -n 64 --stride 8 --bytes 1e9"), "is 4"));
  EXPECT_TRUE(contains(cli_error("collective --cluster research-256 -n 8 --stride 1000 --bytes 1e9"), "is 32"));
  const auto dp = cli_json("collective -n 8 --stride 8 --bytes 1e9");
  EXPECT_EQ(dp["cluster"], "dgx-h100-x8");
  EXPECT_EQ(dp["nodes"], 8);
  const CliResult three = run_cli("collective -n 8 --stride 3 --bytes 1e9");
  EXPECT_TRUE(contains(three.out, "2 nodes of 3 + 1 node of 2")) << three.out;
}

TEST(CollectiveCli, FormulaModeBusBandwidthUsesNcclTestsFactors) {
  // nccl-tests PERFORMANCE.md: busbw = algbw x 2(n-1)/n (all-reduce), x (n-1)/n (all-gather,
  // reduce-scatter, all-to-all), x 1 (point-to-point). On a latency-free link each equals the link's
  // bandwidth: the formulas move exactly those bytes per rank.
  for (const char* op : {"allreduce", "allgather", "reducescatter", "alltoall", "p2p"}) {
    const auto j = cli_json(std::string("collective --bandwidth 100 --latency-us 0 --bytes 1e9 -n 8 --op ") + op);
    EXPECT_NEAR(j["busbw_bytes_per_s"].get<double>(), 100e9, 1e-3) << op;
  }
  // The algorithm named is the formula used: pairwise exchange, a direct send; ring is refused there.
  EXPECT_EQ(cli_json("collective --bandwidth 100 --bytes 1e9 -n 8 --op alltoall")["algorithm"], "pairwise");
  EXPECT_EQ(cli_json("collective --bandwidth 100 --bytes 1e9 -n 8 --op p2p")["algorithm"], "direct");
  EXPECT_EQ(cli_json("collective --bandwidth 100 --bytes 1e9 -n 8 --op allgather")["algorithm"], "ring");
  EXPECT_TRUE(contains(cli_error("collective --bandwidth 100 --bytes 1e9 --op alltoall --algorithm ring"),
                       "does not apply"));
  EXPECT_TRUE(contains(cli_error("collective --bandwidth 100 --bytes 1e9 --op p2p --algorithm ring"),
                       "does not apply"));
}

TEST(CollectiveCli, FlagsOfTheOtherModeAreRefused) {
  for (const char* flag : {"--cluster research-256", "-H h100", "--stride 8", "--stride 1"})
    EXPECT_TRUE(contains(cli_error(std::string("collective --bandwidth 100 --bytes 1e9 ") + flag),
                         "cluster-mode flag")) << flag;
  EXPECT_TRUE(contains(cli_error("collective --latency-us 3 --bytes 1e9"), "needs --bandwidth"));
  // --hardware must be the cluster's accelerator (as train requires).
  EXPECT_TRUE(contains(cli_error("collective -H a100-80gb --cluster research-256 --bytes 1e9"), "does not match"));
  EXPECT_EQ(run_cli("collective -H h100 --cluster research-256 --bytes 1e9 --format json").code, 0);
  // Non-finite numbers, values past any real link (1e300 GB/s overflowed to a 0 ms, 0 GB/s row),
  // and unknown devices.
  EXPECT_TRUE(contains(cli_error("collective --bandwidth inf --bytes 1e9"), "--bandwidth must be in (0, 1e+06] GB/s"));
  EXPECT_TRUE(contains(cli_error("collective --bandwidth 1e300 --bytes 1e9"), "--bandwidth must be in (0, 1e+06] GB/s"));
  EXPECT_TRUE(contains(cli_error("collective --bandwidth 100 --latency-us inf --bytes 1e9"),
                       "--latency-us must be in [0, 1e6]"));
  EXPECT_TRUE(contains(cli_error("collective --bytes inf"), "finite"));
  EXPECT_TRUE(contains(cli_error("collective -H foo --bytes 1e9"), "unknown hardware 'foo'"));
  EXPECT_TRUE(contains(cli_error("collective -H h10 --bytes 1e9"), "did you mean"));
}
