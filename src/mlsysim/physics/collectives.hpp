// Collective-communication costs with the alpha-beta model (Hockney 1994; Thakur, Rabenseifner &
// Gropp 2005, "Optimization of Collective Communication Operations in MPICH"):
//   time = steps x alpha + bytes_on_the_wire_per_rank / beta
// `beta` is the per-direction bandwidth of one rank's link; `alpha` the per-step latency.
#pragma once

#include "mlsysim/units/quantity.hpp"

namespace mlsysim {

using namespace units;  // NOLINT

// Bulk transfers over PCIe reach ~86% of the per-direction line rate (128b/130b encoding, packet
// headers and flow-control credits): 55.2 and 55.4 GB/s pinned host-to-device of 64 GB/s on H100
// and H200 (PCIe Gen5 x16; bench/gpu/microbench.py, catalog/calibration/measurements/*.json).
// Collectives over a host link (GPUs with no GPU-GPU interconnect) see this share of it.
inline constexpr double kPcieAchievedShare = 0.86;
// Without peer-to-peer (GeForce drivers refuse it; NCCL also avoids it across CPU sockets), NCCL
// stages every transfer through pinned host memory (its SHM transport): a copy into host memory and
// one out of it per step. An nccl-tests all-reduce between two V100 PCIe cards on that path (PCIe
// Gen3 x16, 16 GB/s per direction; NCCL 2.21.5 logging "via SHM/direct/direct") reaches 7.09 GB/s
// bus bandwidth at 128 MiB, 0.443 of the link (Enizaksoy/lab-baremetal-gpu-cluster,
// SETUP_GUIDE_STEP_BY_STEP.md @ 02ee25e4afff2e7729d1c1b21ad01e0c35206256, "Step 8").
inline constexpr double kPcieHostStagedShare = 7.09 / 16.0;
// The same log's 8-byte all-reduce takes 10.09 us: two ring steps of a 2-rank ring, 5.0 us each,
// the per-step latency of a transfer staged through host memory (a device-to-host and a
// host-to-device copy, each with its launch and synchronization).
inline constexpr Seconds kPcieHostStagedStepLatency = units::microseconds(10.09 / 2.0);
// What a collective ring over a host link reaches: its share of the line rate, and its latency per
// step (the catalog's, or the staged path's where the link has no peer-to-peer).
inline constexpr double host_link_collective_share(bool peer_to_peer) {
  return peer_to_peer ? kPcieAchievedShare : kPcieHostStagedShare;
}
inline constexpr Seconds host_link_step_latency(bool peer_to_peer, Seconds listed) {
  return peer_to_peer || listed.si() > kPcieHostStagedStepLatency.si() ? listed : kPcieHostStagedStepLatency;
}

struct LinkCost {
  BytesPerSecond bandwidth{};  // per direction, per rank
  Seconds latency{};           // per step
};

// Ring all-reduce: reduce-scatter + all-gather, 2(N-1) steps, each rank sends 2(N-1)/N x M.
Seconds ring_allreduce_time(Bytes message, int ranks, LinkCost link);
// The tutorial's formula name and argument order (mlsysim.core.formulas.calc_ring_allreduce_time).
inline Seconds calc_ring_allreduce_time(Bytes message_bytes, int n_gpus, BytesPerSecond bandwidth,
                                        Seconds latency) {
  return ring_allreduce_time(message_bytes, n_gpus, {bandwidth, latency});
}
// Double binary tree all-reduce (NCCL >= 2.4, Sanders et al. 2009): 2 log2(N) latency steps;
// an interior rank moves 2 x M each way (M once for N = 2): pipelined, latency-optimal, not
// bandwidth-optimal, so rings win for large messages and trees for small ones.
Seconds tree_allreduce_time(Bytes message, int ranks, LinkCost link);
// NCCL's tree inside one node: its double binary trees span nodes, and the GPUs of a node form a
// chain (Jeaugey, "Massively Scale Your Deep Learning Training with NCCL 2.4", NVIDIA blog 2019):
// reduce down the chain and broadcast back, 2(N-1) latency steps, the message pipelined once each
// way (2 x M per rank). Never faster than the ring inside a node.
Seconds chain_allreduce_time(Bytes message, int ranks, LinkCost link);
// Reduce-scatter or all-gather on a ring: N-1 steps, (N-1)/N x M per rank (M = full buffer).
Seconds ring_reduce_scatter_time(Bytes message, int ranks, LinkCost link);
Seconds ring_allgather_time(Bytes message, int ranks, LinkCost link);
// All-to-all (pairwise exchange): N-1 steps, (N-1)/N x M per rank (M = each rank's send buffer).
Seconds all_to_all_time(Bytes message, int ranks, LinkCost link);
// Point-to-point: one step.
Seconds point_to_point_time(Bytes message, LinkCost link);
// Hierarchical all-reduce: reduce-scatter inside each node, all-reduce of 1/g of the data across
// nodes (one ring per local rank, all in parallel over that rank's NIC), all-gather inside.
Seconds hierarchical_allreduce_time(Bytes message, int gpus_per_node, int nodes, LinkCost intra,
                                    LinkCost inter);
// Bus bandwidth as nccl-tests reports it for all-reduce: algbw x 2(N-1)/N.
BytesPerSecond allreduce_bus_bandwidth(Bytes message, int ranks, Seconds time);

}  // namespace mlsysim
