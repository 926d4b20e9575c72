// The fleet catalog: interconnect fabrics, scale-out topologies, node types and named clusters,
// loaded from catalog/fleet/*.toml (compiled in) plus an optional user directory. Lookup is by id
// or alias, case-insensitive, '-' == '_'; unknown names get a "did you mean" suggestion.
// Bandwidths are per direction (datasheets' bidirectional NVLink sums are halved in the data).
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/units/quantity.hpp"

namespace mlsysim {

using namespace units;  // NOLINT

struct Fabric {
  std::string id, name, kind;  // kind: nvlink | xgmi | ici | infiniband | roce | ethernet
  std::vector<std::string> aliases;
  BytesPerSecond per_direction{};  // one port / one GPU attachment, one direction
  Seconds latency{};               // alpha per collective step
  double collective_efficiency = 1.0;  // achieved / per-direction for bandwidth-bound rings
  bool in_network_reduction = false;   // NVLS / SHARP
  double in_network_efficiency = 0.0;  // in-network all-reduce algbw / per-direction
  // Fixed cost of one in-network all-reduce (switch setup, pipeline fill), where an nccl-tests
  // sweep measured it; 0: steps of `latency` up to the reducing switch and back down
  // (in_network_fixed_cost).
  Seconds in_network_latency{};
  // NCCL's low-latency protocols (LL, LL128) for small messages: a lower alpha per step at a lower
  // share of the line rate. A collective runs on whichever protocol is faster at its size, as NCCL's
  // tuner chooses per size (src/graph/tuning.cc keeps per-protocol latencies and bandwidths).
  // Efficiency 0: the fabric has no separate small-message figures (one protocol).
  Seconds small_message_latency{};
  double small_message_efficiency = 0.0;
  std::string source;

  [[nodiscard]] bool has_small_message_protocol() const { return small_message_efficiency > 0; }
  // The measured fixed cost, else `unmeasured_steps` steps of `latency` (2 through one NVSwitch;
  // a fat tree's hop count for SHARP: topology.hpp's in_network_fixed_cost picks).
  [[nodiscard]] Seconds in_network_fixed_cost(double unmeasured_steps) const {
    return in_network_latency.si() > 0 ? in_network_latency : latency * unmeasured_steps;
  }
};

struct Topology {
  std::string id, name;
  std::vector<std::string> aliases;
  double ring_fraction = 1.0;        // of NIC bandwidth, ring-like collectives
  double all_to_all_fraction = 1.0;  // of NIC bandwidth, uniform all-to-all (bisection-bound)
  bool oversubscription_applies = true;
  int hops = 4;
  std::string source;
};

struct NodeType {
  std::string id, name;
  std::vector<std::string> aliases;
  std::string accelerator;  // hardware id
  int gpus_per_node = 8;
  std::string scale_up_fabric;
  int nics_per_node = 1;
  std::string scale_out_fabric;
  std::vector<std::string> standard_for;  // hardware ids this node is the default for
  std::string source;
};

struct ClusterSpec {
  std::string id, name;
  std::vector<std::string> aliases;
  std::string node, fabric, topology;
  int nodes = 1;
  double oversubscription = 1.0;  // e.g. 2.0 = 2:1 tapering above the leaf
  std::string source;
};

// A cluster with every reference resolved into values (no pointers into the catalog).
struct Cluster {
  std::string id, name, source;
  NodeType node;
  Fabric scale_up, scale_out;
  Topology topology;
  int nodes = 1;
  double oversubscription = 1.0;
  [[nodiscard]] int gpus_per_node() const { return node.gpus_per_node; }
  [[nodiscard]] int total_gpus() const { return nodes * node.gpus_per_node; }
  // Each GPU's share of the node's scale-out injection bandwidth (per direction, line rate).
  [[nodiscard]] BytesPerSecond nic_bandwidth_per_gpu() const {
    return scale_out.per_direction * (static_cast<double>(node.nics_per_node) / node.gpus_per_node);
  }
};

class FleetCatalog {
 public:
  // Built-in entries (catalog/fleet/*.toml compiled in), parsed once and validated.
  static const FleetCatalog& builtin();
  // Built-in entries plus every *.toml under `dir` that defines fabric/topology/node/cluster. A user
  // entry with a built-in entry's id replaces it; any other clash of ids or aliases is BadInput.
  static FleetCatalog with_user_dir(const std::string& dir);

  void add_toml(std::string_view text, const std::string& origin);
  // Throws BadInput if a node or cluster names a fabric/topology/node that does not exist.
  void validate() const;

  [[nodiscard]] const Fabric& fabric(std::string_view name) const;
  [[nodiscard]] const Topology& topology(std::string_view name) const;
  [[nodiscard]] const NodeType& node(std::string_view name) const;
  [[nodiscard]] const ClusterSpec& cluster_spec(std::string_view name) const;
  [[nodiscard]] Cluster cluster(std::string_view name) const;
  // The standard node of a device (e.g. h100 -> DGX H100, its NICs and fabric) on a non-blocking
  // fat tree, with enough nodes for `gpus`. BadInput (listing the devices that have one) otherwise.
  [[nodiscard]] Cluster standard_cluster(std::string_view hardware_id, int gpus) const;
  // Whether a node in the fleet is the standard one for this device (standard_cluster would not throw).
  [[nodiscard]] bool has_standard_node(std::string_view hardware_id) const;
  [[nodiscard]] Cluster resolve(const ClusterSpec& spec) const;

  [[nodiscard]] const std::vector<Fabric>& fabrics() const { return fabrics_; }
  [[nodiscard]] const std::vector<Topology>& topologies() const { return topologies_; }
  [[nodiscard]] const std::vector<NodeType>& nodes() const { return nodes_; }
  [[nodiscard]] const std::vector<ClusterSpec>& clusters() const { return clusters_; }

 private:
  std::vector<Fabric> fabrics_;
  std::vector<Topology> topologies_;
  std::vector<NodeType> nodes_;
  std::vector<ClusterSpec> clusters_;
  std::unordered_map<std::string, size_t> fabric_index_, topology_index_, node_index_,
      cluster_index_;
  // Where each entry was defined (named_entries.hpp): a --catalog entry may replace a built-in one
  // by reusing its id; any other reuse of an id or alias is refused.
  std::vector<EntryOrigin> fabric_origins_, topology_origins_, node_origins_, cluster_origins_;
};

}  // namespace mlsysim
