// Collectives on a real cluster: which links a group of ranks uses, the bandwidth each rank sees
// (NIC share, topology, oversubscription, achieved efficiency), in-network reduction (NVLS/SHARP)
// and the algorithm choice NCCL makes by message size (ring vs double binary tree vs in-network vs
// hierarchical). Builds on the alpha-beta formulas of physics/collectives.hpp.
#pragma once

#include <string>
#include <vector>

#include "mlsysim/catalog/fleet.hpp"
#include "mlsysim/physics/collectives.hpp"

namespace mlsysim {

enum class CollectiveOp { AllReduce, AllGather, ReduceScatter, AllToAll, PointToPoint };
const char* to_string(CollectiveOp op);

enum class Algorithm { Auto, Ring, Tree, InNetwork, Hierarchical, Pairwise, Direct };
const char* to_string(Algorithm a);

// Where a group's ranks sit. Megatron orders ranks tp -> cp -> ep -> dp -> pp (inner to outer), so
// the members of a group of `size` ranks `stride` apart are global ranks 0, stride, 2 stride, ...,
// and member i sits on node floor(i x stride / g) of g GPUs. The nodes need not hold the same
// number of members: 9 ranks at stride 1 on 8-GPU nodes are 8 + 1, 8 ranks at stride 3 are 3, 3, 2.
// The fullest node bounds the scale-up phases; the emptiest one bounds the scale-out phases, since
// its few NICs carry the same cross-node bytes that a full node spreads over all of its NICs.
struct GroupPlacement {
  int size = 1;
  int per_node = 1;      // members on the fullest node
  int min_per_node = 1;  // members on the emptiest node the group touches (the lone rank's node)
  int nodes = 1;         // nodes the group spans
  int stride = 1;        // global-rank distance between consecutive members
  int gpus_per_node = 1;
  bool rail_aligned = true;  // members on different nodes share a local rank (same rail)
  [[nodiscard]] bool balanced() const { return per_node == min_per_node; }
};
GroupPlacement place_group(int size, int stride, int gpus_per_node);
// The same on a cluster, checked: the stride implies a world of size x stride ranks (the group is
// one of `stride` interleaved groups), which the cluster must hold. BadInput names the cluster's
// GPU count and the largest stride that fits.
GroupPlacement place_group_on(const Cluster& c, int size, int stride);
// Members of the group on its `node`-th node (0-based, in [0, g.nodes)).
int members_on_node(const GroupPlacement& g, int node);
// "8 per node x 2 nodes" when balanced, else the real counts: "2 nodes of 3 + 1 node of 2".
std::string describe_placement(const GroupPlacement& g);

// Per-rank link costs (achieved bandwidth = line rate x efficiency x topology / oversubscription).
LinkCost scale_up_link(const Cluster& c);
// The scale-out link one GPU sees: its NIC share x collective efficiency x topology fraction
// (ring or all-to-all), divided by the oversubscription ratio where the topology applies it
// (a rail-optimized fabric keeps rail-aligned traffic below the spine).
LinkCost scale_out_link(const Cluster& c, bool all_to_all, bool rail_aligned);

// In-network all-reduce (NVLink SHARP / InfiniBand SHARP; Graham et al. 2016, "Scalable
// Hierarchical Aggregation Protocol"): each rank sends its buffer up once and receives the reduced
// result once, both directions in parallel: t = fixed cost + M / (beta x efficiency), the fixed
// cost from in_network_fixed_cost below.
Seconds in_network_allreduce_time(Bytes message, int ranks, BytesPerSecond per_direction,
                                  double efficiency, Seconds fixed_cost);
// That fixed cost on the cluster's scale-up fabric (NVLS: up to one NVSwitch and back, 2 steps of
// alpha) or its scale-out fabric (SHARP: up and down the fat tree, topology.hops steps), unless an
// nccl-tests sweep measured it (Fabric::in_network_latency).
Seconds in_network_fixed_cost(const Cluster& c, bool scale_out);
// Hierarchical reduce-scatter / all-gather: within the node over g ranks, then across n nodes on
// 1/g of the data (one ring per local rank in parallel).
Seconds hierarchical_reduce_scatter_time(Bytes message, int gpus_per_node, int nodes, LinkCost intra,
                                         LinkCost inter);

struct CollectiveEstimate {
  CollectiveOp op = CollectiveOp::AllReduce;
  Algorithm algorithm = Algorithm::Ring;
  Seconds time{};
  Bytes message{};
  int ranks = 1;
  BytesPerSecond algbw{}, busbw{};  // nccl-tests conventions (busbw: all-reduce x 2(N-1)/N, ...)
  std::string links;  // "NVLink 4 ..." / "2 nodes over ib-ndr" (for the trace)
};

// nccl-tests' bus-bandwidth factor (its PERFORMANCE.md): busbw = algbw x this; all-reduce
// 2(N-1)/N, all-gather / reduce-scatter / all-to-all (N-1)/N, point-to-point 1.
double bus_bandwidth_factor(CollectiveOp op, int ranks);

// Time of one collective on `message` bytes (all-reduce/reduce-scatter/all-gather: the full buffer;
// all-to-all: each rank's send buffer; p2p: the payload) for a placed group. Algorithm::Auto picks
// the fastest candidate (NCCL's tuner does the same from its own cost model); a specific algorithm
// that does not apply (in-network without NVLS/SHARP) throws BadInput naming the ones that do.
CollectiveEstimate collective_time(CollectiveOp op, Bytes message, const GroupPlacement& g,
                                   const Cluster& c, Algorithm algorithm = Algorithm::Auto);
// Every applicable algorithm for the op, fastest first.
std::vector<CollectiveEstimate> collective_candidates(CollectiveOp op, Bytes message,
                                                      const GroupPlacement& g, const Cluster& c);

// Effective per-GPU scale-out bandwidth under oversubscription for a traffic fraction f that
// crosses the oversubscribed tier (original mlsysim calc_oversubscription_effect):
// slowdown = (1 - f) + f x ratio.
double oversubscription_slowdown(double crossing_fraction, double ratio);

// The most devices one server holds when the catalog has no standard node for them: 8, the common
// 8-GPU PCIe server (AWS p3.16xlarge 8 x V100, g6e.48xlarge 8 x L40S; Google Cloud g2-standard-96
// 8 x L4). Larger jobs on such devices need a --cluster that names their network.
inline constexpr int kMaxServerDevices = 8;
// The cluster a job on `gpus` devices of `hw` runs on when none is named: the device's standard
// node (FleetCatalog::standard_cluster) where the catalog has one; otherwise one server of `gpus`
// devices (at most kMaxServerDevices) whose collectives ride the device's own link where it joins
// them all (an NVLink bridge joins 2), else its host link (PCIe through the server's switch) at
// kPcieAchievedShare of its line rate, as serving's tensor parallelism does on such devices. One
// device needs no link: a workstation GPU, a laptop or a board trains alone.
Cluster default_cluster(const FleetCatalog& fleet, const HardwareSpec& hw, int gpus);
// The link the collectives of `gpus` devices in one such server ride: the device's own where it
// joins them all (an NVLink bridge joins 2), else its host link at the share a collective reaches
// over it (physics/collectives.hpp, host_link_collective_share). `gpus` 1 with no link at all: an
// empty fabric; more with none: BadInput.
Fabric server_link(const HardwareSpec& hw, int gpus);

// ---- compute-communication contention ------------------------------------------------------------
// NCCL (and RCCL, its port) runs each channel of a collective as one thread block that takes a
// whole SM (CU) while the collective runs: the block holds every register, so no compute block
// shares that SM (NVIDIA/nccl issue #689, the maintainer's answer). NCCL takes the fewest channels
// that reach the fabric's peak: 16 SMs on a DGX with 8 NICs (the same answer), and 16 channels for
// NVLink SHARP collectives on Hopper (NCCL src/transport/nvls.cc, the NVLS_NCHANNELS default).
inline constexpr double kCollectiveChannels = 16;
// The share of a device's compute units a collective holds while it runs beside compute, so the
// compute it hides under runs on the rest: kCollectiveChannels / SMs (16 of 132 = 12% on an H100).
// Zero where collectives run on DMA or network engines of their own (TPU ICI, Gaudi's on-chip
// RoCE, Trainium's collective engines: every kind but "gpu") or the compute units are unknown.
double collective_compute_share(const HardwareSpec& hw);

}  // namespace mlsysim
