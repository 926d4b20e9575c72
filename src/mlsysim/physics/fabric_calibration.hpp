// Calibrating a cluster's fabric from nccl-tests: the measured time of a collective at each message
// size pins down the two numbers of the alpha-beta (Hockney) model that a datasheet does not give,
// the per-step latency alpha and the achieved share of the line rate.
//
// The fit runs the engine's own collective model (physics/topology.hpp: ring, tree, NVLS,
// hierarchical, whichever is fastest) and moves only the calibrated fabric's alpha and efficiency,
// so a calibrated cluster keeps every other modelled effect (NIC sharing, topology, NVLS stages).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mlsysim/physics/topology.hpp"

namespace mlsysim {

struct CollectiveSample {
  Bytes message{};
  Seconds time{};
};

// What an nccl-tests run printed (github.com/NVIDIA/nccl-tests, `*_perf` binaries): the collective
// (from the binary's name when the log shows it), the rank count (from its "#  Rank" lines), and the
// out-of-place time of each message size.
struct NcclTestsLog {
  std::optional<CollectiveOp> op;
  int ranks = 0;
  std::vector<CollectiveSample> samples;
};
NcclTestsLog parse_nccl_tests(std::string_view text, const std::string& origin);

struct FabricFit {
  bool scale_out = true;       // which fabric was fitted: the network (true) or the node's scale-up links
  Seconds latency{};           // fitted alpha per collective step (NCCL's bulk protocol)
  double efficiency = 1.0;     // fitted collective_efficiency (in-network efficiency scaled alike)
  double in_network_efficiency = 0.0;
  Seconds in_network_latency{};  // fitted by an in-network sweep; 0: two steps of alpha
  bool in_network_fit = false;   // the run was in-network: only its fixed cost and efficiency were fitted
  // The small-message (low-latency protocol) pair, fitted on the rows below the bandwidth regime;
  // efficiency 0 when there were fewer than 2 such rows.
  Seconds small_message_latency{};
  double small_message_efficiency = 0.0;
  int samples_used = 0;        // the bandwidth-regime rows the bulk fit used
  int small_samples_used = 0;  // the latency-regime rows the small-message fit used
  Bytes smallest_used{};       // smallest message of the bandwidth regime
  double median_abs_error = 0, max_abs_error = 0;  // of the fitted model over every row
};

// Rows whose bus bandwidth reaches this share of the run's best fit the bulk protocol's alpha and
// efficiency; the rows below it fit the small-message pair. Half: on an alpha-beta line
// t = a + S/B, busbw >= B/2 exactly where S/B >= a, i.e. the rows whose time the bandwidth term
// dominates. NCCL runs small messages with its
// low-latency protocols (LL, LL128), which follow a different alpha-beta line (NCCL's tuning model,
// src/graph/tuning.cc, keeps per-protocol latencies and bandwidths for this reason).
inline constexpr double kBandwidthRegimeShare = 0.5;

// Least squares in log time, on a log grid of alpha (0 and 0.1 us .. 10 ms) times a grid of
// efficiency (0.01 .. 1), refined once around the best cell: first the bulk pair over the
// bandwidth-regime rows, then the small-message pair over the rest.
// `algorithm`: the one the run used (NCCL_ALGO=RING, ...). Auto fits the engine's choice of the
// fastest, with in-network reduction (NVLS/SHARP) keeping its ratio to the ring efficiency; a named
// ring, tree or hierarchical run fits the ring's alpha and efficiency and leaves the in-network
// efficiency as it was (an NCCL_ALGO=RING sweep says nothing about NVLS). An in-network run fits
// the in-network fixed cost and efficiency on its bandwidth-regime rows and keeps the ring's
// figures (NCCL runs NVLS on its Simple protocol only; the smaller sizes go to the ring's
// low-latency protocol).
FabricFit fit_fabric(const std::vector<CollectiveSample>& samples, CollectiveOp op,
                     const GroupPlacement& group, const Cluster& cluster,
                     Algorithm algorithm = Algorithm::Auto);

// The cluster with the fitted numbers put into the fabric they belong to.
Cluster apply_fabric_fit(Cluster cluster, const FabricFit& fit);

// A `[[fabric]]` entry with the fabric's id and the fitted numbers, for a `--catalog DIR`: it
// replaces the built-in fabric of that id.
std::string fabric_toml(const Fabric& fitted, const FabricFit& fit, const std::string& origin);

}  // namespace mlsysim
