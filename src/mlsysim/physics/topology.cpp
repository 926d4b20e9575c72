#include "mlsysim/physics/topology.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include <fmt/format.h>

#include "mlsysim/errors.hpp"

namespace mlsysim {

const char* to_string(CollectiveOp op) {
  switch (op) {
    case CollectiveOp::AllReduce: return "all-reduce";
    case CollectiveOp::AllGather: return "all-gather";
    case CollectiveOp::ReduceScatter: return "reduce-scatter";
    case CollectiveOp::AllToAll: return "all-to-all";
    case CollectiveOp::PointToPoint: return "point-to-point";
  }
  return "?";
}

const char* to_string(Algorithm a) {
  switch (a) {
    case Algorithm::Auto: return "auto";
    case Algorithm::Ring: return "ring";
    case Algorithm::Tree: return "tree";
    case Algorithm::InNetwork: return "in-network";
    case Algorithm::Hierarchical: return "hierarchical";
    case Algorithm::Pairwise: return "pairwise";
    case Algorithm::Direct: return "direct";
  }
  return "?";
}

double bus_bandwidth_factor(CollectiveOp op, int ranks) {
  const double n = ranks;
  if (op == CollectiveOp::AllReduce) return 2 * (n - 1) / n;
  if (op == CollectiveOp::PointToPoint) return 1.0;
  return (n - 1) / n;
}

namespace {

// Member i of a group sits on node floor(i x stride / g), so node j holds the members i with
// j g <= i stride < (j + 1) g: i in [ceil(j g / stride), ceil((j + 1) g / stride)).
int first_member_on_node(long long node, int stride, int gpus_per_node) {
  return static_cast<int>((node * gpus_per_node + stride - 1) / stride);
}

}  // namespace

int members_on_node(const GroupPlacement& g, int node) {
  if (node < 0 || node >= g.nodes)
    throw BadInput("node " + std::to_string(node) + " is outside the group's " + std::to_string(g.nodes) +
                   " nodes (valid: 0 to " + std::to_string(g.nodes - 1) + ")");
  if (g.stride >= g.gpus_per_node) return 1;  // every member on its own node
  const int first = first_member_on_node(node, g.stride, g.gpus_per_node);
  const int next = first_member_on_node(node + 1LL, g.stride, g.gpus_per_node);
  return std::min(g.size, next) - first;
}

GroupPlacement place_group(int size, int stride, int gpus_per_node) {
  if (size < 1 || stride < 1 || gpus_per_node < 1)
    throw BadInput("group size, stride and GPUs per node must be >= 1 (got size " + std::to_string(size) +
                   ", stride " + std::to_string(stride) + ", " + std::to_string(gpus_per_node) +
                   " GPUs per node)");
  GroupPlacement g;
  g.size = size;
  g.stride = stride;
  g.gpus_per_node = gpus_per_node;
  g.nodes = stride >= gpus_per_node
                ? size
                : static_cast<int>(static_cast<long long>(size - 1) * stride / gpus_per_node) + 1;
  // Full nodes repeat their counts every stride / gcd(stride, g) nodes (then stride x g / gcd ranks
  // later the pattern restarts on a node boundary), so one period and the last node cover every count.
  const int period = stride >= gpus_per_node ? 1 : stride / std::gcd(stride, gpus_per_node);
  g.per_node = g.min_per_node = members_on_node(g, g.nodes - 1);
  for (int j = 0; j < std::min(g.nodes - 1, period); ++j) {
    const int members = members_on_node(g, j);
    g.per_node = std::max(g.per_node, members);
    g.min_per_node = std::min(g.min_per_node, members);
  }
  // Ranks `stride` apart with stride a multiple of g share a local rank: same rail.
  g.rail_aligned = g.nodes == 1 || stride % gpus_per_node == 0 || g.per_node > 1;
  return g;
}

GroupPlacement place_group_on(const Cluster& c, int size, int stride) {
  const int total = c.total_gpus();
  if (size < 1 || size > total)
    throw BadInput(fmt::format("a group of {} ranks does not fit {} ({} GPUs): use 1 to {} ranks", size, c.id,
                               total, total));
  if (stride < 1)
    throw BadInput(fmt::format("stride must be >= 1 (1 = consecutive ranks), got {}", stride));
  // The stride interleaves `stride` such groups, so the world is size x stride ranks.
  if (static_cast<long long>(size) * stride > total)
    throw BadInput(fmt::format("{} ranks at stride {} span {} GPUs (the group is one of {} interleaved groups), "
                               "but {} has {} GPUs; the largest stride that fits {} ranks is {}",
                               size, stride, static_cast<long long>(size) * stride, stride, c.id, total, size,
                               total / size));
  return place_group(size, stride, c.gpus_per_node());
}

std::string describe_placement(const GroupPlacement& g) {
  if (g.balanced())
    return fmt::format("{} per node x {} node{}", g.per_node, g.nodes, g.nodes == 1 ? "" : "s");
  // Runs of nodes with the same count, in rank order: 8 + 1 -> "1 node of 8 + 1 node of 1".
  std::vector<std::pair<int, int>> runs;  // (members, nodes)
  for (int j = 0; j < g.nodes; ++j) {
    const int m = members_on_node(g, j);
    if (!runs.empty() && runs.back().first == m) ++runs.back().second;
    else runs.emplace_back(m, 1);
    if (runs.size() > 4) break;
  }
  if (runs.size() > 4)
    return fmt::format("{} to {} per node on {} nodes", g.min_per_node, g.per_node, g.nodes);
  std::string out;
  for (const auto& [m, n] : runs)
    out += fmt::format("{}{} node{} of {}", out.empty() ? "" : " + ", n, n == 1 ? "" : "s", m);
  return out;
}

LinkCost scale_up_link(const Cluster& c) {
  return {c.scale_up.per_direction * c.scale_up.collective_efficiency, c.scale_up.latency};
}

double oversubscription_slowdown(double crossing_fraction, double ratio) {
  if (crossing_fraction < 0 || crossing_fraction > 1 || ratio < 1)
    throw BadInput("oversubscription: crossing fraction must be in [0, 1] and ratio >= 1");
  return (1 - crossing_fraction) + crossing_fraction * ratio;
}

LinkCost scale_out_link(const Cluster& c, bool all_to_all, bool rail_aligned) {
  double factor = c.scale_out.collective_efficiency *
                  (all_to_all ? c.topology.all_to_all_fraction : c.topology.ring_fraction);
  const bool throttled = c.topology.oversubscription_applies || (all_to_all || !rail_aligned);
  if (throttled && c.nodes > 1) factor /= c.oversubscription;
  return {c.nic_bandwidth_per_gpu() * factor, c.scale_out.latency};
}

Seconds in_network_allreduce_time(Bytes message, int ranks, BytesPerSecond per_direction,
                                  double efficiency, Seconds fixed_cost) {
  if (ranks < 1) throw BadInput("in-network all-reduce: ranks must be >= 1");
  if (!(efficiency > 0) || efficiency > 1) throw BadInput("in-network efficiency must be in (0, 1]");
  if (ranks == 1) return Seconds(0);
  return fixed_cost + message / (per_direction * efficiency);
}

Seconds in_network_fixed_cost(const Cluster& c, bool scale_out) {
  return scale_out ? c.scale_out.in_network_fixed_cost(c.topology.hops) : c.scale_up.in_network_fixed_cost(2.0);
}

Seconds hierarchical_reduce_scatter_time(Bytes message, int gpus_per_node, int nodes, LinkCost intra,
                                         LinkCost inter) {
  return ring_reduce_scatter_time(message, gpus_per_node, intra) +
         ring_reduce_scatter_time(message / gpus_per_node, nodes, inter);
}

namespace {

// The slowest hop of a flat ring that spans nodes. NCCL builds one ring per channel and sends each
// channel out of the node through a different NIC (rail), so a node's NICs share a rank's traffic:
// each of its m local ranks' NICs carries 1/m of it (S. Jeaugey, "Massively Scale Your Deep
// Learning Training with NCCL 2.4", NVIDIA blog 2019; NCCL_CROSS_NIC documentation). Every node
// passes the same ring bytes in and out, so the node with the fewest members (fewest NICs) is the
// slowest hop: 9 ranks on 8-GPU nodes run at the lone rank's one NIC, not at eight.
LinkCost multi_node_ring_hop(LinkCost up, LinkCost out, const GroupPlacement& g) {
  return {min(up.bandwidth, out.bandwidth * static_cast<double>(g.min_per_node)), out.latency};
}

// Hierarchical all-reduce on a placement whose nodes may hold different member counts: the
// in-node reduce-scatter and all-gather run over the fullest node's members (the slowest local
// phase); across nodes each node moves the ring's 2(p-1)/p x M through its own members' NICs, so
// the emptiest node, M over min_per_node NICs, sets the pace (balanced: M/g per local-rank ring).
Seconds placed_hierarchical_allreduce(Bytes message, const GroupPlacement& g, LinkCost up, LinkCost out) {
  const Seconds local = ring_reduce_scatter_time(message, g.per_node, up) +
                        ring_allgather_time(message, g.per_node, up);
  return local + ring_allreduce_time(message / g.min_per_node, g.nodes, out);
}

// Hierarchical reduce-scatter / all-gather: one phase over the fullest node's members, then one
// across the p nodes. In the network phase a node of m members must send (reduce-scatter) or
// receive (all-gather) the other ranks' share of the buffer, (N - m)/N x M, through its m NICs; the
// emptiest node has the most per NIC. Balanced (m = g, N = p g) this is the ring's (p-1)/p x M/g.
Seconds placed_hierarchical_reduce_scatter(Bytes message, const GroupPlacement& g, LinkCost up,
                                           LinkCost out) {
  const double n = g.size, m = g.min_per_node;
  const Seconds network = out.latency * (g.nodes - 1.0) + message * ((n - m) / (n * m)) / out.bandwidth;
  return ring_reduce_scatter_time(message, g.per_node, up) + network;
}

// Pairwise all-to-all across nodes. A rank on a node of m members sends (N - m)/N of its buffer off
// the node through its NIC share and (m - 1)/N over the scale-up fabric, both in parallel; the
// emptiest node's ranks send the most off-node (a lone rank: (N-1)/N through one NIC) and the
// fullest node's the most inside. The N-1 pairwise steps pay the network's alpha.
Seconds placed_all_to_all(Bytes message, const GroupPlacement& g, LinkCost up, LinkCost out) {
  const double n = g.size;
  const Seconds inter = message * ((n - g.min_per_node) / n) / out.bandwidth;
  const Seconds local = message * ((g.per_node - 1) / n) / up.bandwidth;
  return max(inter, local) + out.latency * (n - 1);
}

CollectiveEstimate make(CollectiveOp op, Algorithm a, Bytes m, int n, Seconds t, std::string links) {
  CollectiveEstimate e;
  e.op = op;
  e.algorithm = a;
  e.message = m;
  e.ranks = n;
  e.time = t;
  e.links = std::move(links);
  if (t.si() > 0) {
    e.algbw = m / t;
    e.busbw = e.algbw * bus_bandwidth_factor(op, n);
  }
  return e;
}

// Every applicable algorithm on the fabrics as given (one protocol regime), fastest first.
std::vector<CollectiveEstimate> single_protocol_candidates(CollectiveOp op, Bytes message,
                                                           const GroupPlacement& g, const Cluster& c) {
  if (message.si() < 0 || !std::isfinite(message.si()))
    throw BadInput("collective message size must be a finite number >= 0 bytes");
  std::vector<CollectiveEstimate> out;
  const int n = g.size;
  const LinkCost up = scale_up_link(c);
  const LinkCost out_ring = scale_out_link(c, false, g.rail_aligned);
  const LinkCost out_a2a = scale_out_link(c, true, g.rail_aligned);
  const std::string up_name = c.scale_up.name;
  const std::string out_name = std::to_string(g.nodes) + " nodes over " + c.scale_out.name;
  auto add = [&](Algorithm a, Seconds t, const std::string& links) {
    out.push_back(make(op, a, message, n, t, links));
  };
  if (n <= 1) {
    add(Algorithm::Direct, Seconds(0), "local");
    return out;
  }
  const bool intra = g.nodes == 1;
  const bool flat_inter = g.per_node == 1;
  switch (op) {
    case CollectiveOp::AllReduce:
      if (intra) {
        add(Algorithm::Ring, ring_allreduce_time(message, n, up), up_name);
        add(Algorithm::Tree, chain_allreduce_time(message, n, up), up_name + " (chain)");
        if (c.scale_up.in_network_reduction)
          add(Algorithm::InNetwork,
              in_network_allreduce_time(message, n, c.scale_up.per_direction,
                                        c.scale_up.in_network_efficiency, in_network_fixed_cost(c, false)),
              up_name + " (NVLS)");
      } else if (flat_inter) {
        add(Algorithm::Ring, ring_allreduce_time(message, n, out_ring), out_name);
        add(Algorithm::Tree, tree_allreduce_time(message, n, out_ring), out_name);
        if (c.scale_out.in_network_reduction)
          add(Algorithm::InNetwork,
              in_network_allreduce_time(message, n, out_ring.bandwidth / c.scale_out.collective_efficiency,
                                        c.scale_out.in_network_efficiency, in_network_fixed_cost(c, true)),
              out_name + " (SHARP)");
      } else {
        add(Algorithm::Ring, ring_allreduce_time(message, n, multi_node_ring_hop(up, out_ring, g)), out_name);
        add(Algorithm::Hierarchical, placed_hierarchical_allreduce(message, g, up, out_ring),
            up_name + " + " + out_name);
        // NVLS inside the node, then one tree per local rank (rail) across nodes (NCCL NVLS+tree / CollNet).
        // NCCL pipelines chunks through the two stages (NCCL 2.18 release notes, "NVLS+Tree"), so the
        // slower stage sets the bandwidth; both stages still pay their step latencies once.
        if (c.scale_up.in_network_reduction) {
          const Seconds local_latency = 2.0 * in_network_fixed_cost(c, false);
          const Seconds local_transfer =
              message / (c.scale_up.per_direction * c.scale_up.in_network_efficiency);
          // The tree's transfer and latency terms apart: the same formula on a latency-free link
          // and on an empty message. Each node's share crosses its members' NICs, so the emptiest
          // node (M / min_per_node per NIC) bounds the network stage.
          const Seconds network_transfer =
              tree_allreduce_time(message / g.min_per_node, g.nodes, {out_ring.bandwidth, Seconds(0)});
          const Seconds network_latency = tree_allreduce_time(Bytes(0), g.nodes, out_ring);
          add(Algorithm::InNetwork,
              local_latency + max(local_transfer, network_transfer) + network_latency,
              up_name + " (NVLS) + " + out_name);
        }
      }
      break;
    case CollectiveOp::AllGather:
    case CollectiveOp::ReduceScatter:
      if (intra) add(Algorithm::Ring, ring_reduce_scatter_time(message, n, up), up_name);
      else if (flat_inter) add(Algorithm::Ring, ring_reduce_scatter_time(message, n, out_ring), out_name);
      else {
        add(Algorithm::Ring, ring_reduce_scatter_time(message, n, multi_node_ring_hop(up, out_ring, g)),
            out_name);
        add(Algorithm::Hierarchical, placed_hierarchical_reduce_scatter(message, g, up, out_ring),
            up_name + " + " + out_name);
      }
      break;
    case CollectiveOp::AllToAll:
      if (intra) add(Algorithm::Pairwise, all_to_all_time(message, n, up), up_name);
      else add(Algorithm::Pairwise, placed_all_to_all(message, g, up, out_a2a), out_name);
      break;
    case CollectiveOp::PointToPoint:
      add(Algorithm::Direct, point_to_point_time(message, intra ? up : out_ring),
          intra ? up_name : out_name);
      break;
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.time < b.time; });
  return out;
}

// The same fabric on NCCL's low-latency protocols (LL, LL128): its small-message alpha and
// efficiency. In-network reduction does not run on them: NCCL's tuner gives NVLS and CollNet the
// Simple protocol only (src/graph/tuning.cc), so their candidates stay on the bulk figures.
Fabric on_low_latency_protocol(Fabric f) {
  if (!f.has_small_message_protocol()) return f;
  f.latency = f.small_message_latency;
  f.collective_efficiency = f.small_message_efficiency;
  f.in_network_reduction = false;
  return f;
}
}  // namespace

std::vector<CollectiveEstimate> collective_candidates(CollectiveOp op, Bytes message,
                                                      const GroupPlacement& g, const Cluster& c) {
  auto out = single_protocol_candidates(op, message, g, c);
  if (!c.scale_up.has_small_message_protocol() && !c.scale_out.has_small_message_protocol()) return out;
  // Each algorithm runs on whichever protocol is faster at this size.
  Cluster low = c;
  low.scale_up = on_low_latency_protocol(c.scale_up);
  low.scale_out = on_low_latency_protocol(c.scale_out);
  auto on_low = single_protocol_candidates(op, message, g, low);
  for (auto& e : out)
    for (auto& l : on_low)
      if (l.algorithm == e.algorithm && l.time < e.time) {
        e = std::move(l);
        e.links += " (low-latency protocol)";
        break;
      }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.time < b.time; });
  return out;
}

CollectiveEstimate collective_time(CollectiveOp op, Bytes message, const GroupPlacement& g,
                                   const Cluster& c, Algorithm algorithm) {
  auto all = collective_candidates(op, message, g, c);
  if (algorithm == Algorithm::Auto) return all.front();
  for (const auto& e : all)
    if (e.algorithm == algorithm) return e;
  std::string valid;
  for (const auto& e : all) valid += (valid.empty() ? "" : ", ") + std::string(to_string(e.algorithm));
  throw BadInput(std::string("algorithm '") + to_string(algorithm) + "' does not apply to " +
                 to_string(op) + " over " + std::to_string(g.size) + " ranks on " +
                 std::to_string(g.nodes) + " node(s) of " + c.id + "; valid: auto, " + valid);
}

namespace {

// A fabric made from a device's own link (catalog/hardware: interconnect or host link) at `share`
// of its line rate: one protocol, no in-network reduction, its alpha as the catalog lists it.
Fabric device_link_fabric(const Link& link, const char* kind, double share, const std::string& source) {
  Fabric f;
  f.id = normalize_name(link.name);
  f.name = link.name;
  f.kind = kind;
  f.per_direction = link.per_direction;
  f.latency = link.latency;
  f.collective_efficiency = share;
  f.source = source;
  return f;
}

}  // namespace

Fabric server_link(const HardwareSpec& hw, int gpus) {
  const Link* own = hw.interconnect ? &*hw.interconnect : nullptr;
  if (own && (own->reach == 0 || gpus <= own->reach))
    return device_link_fabric(*own, "device-link", 1.0,
                              hw.id + " interconnect from the hardware catalog, line rate (no nccl-tests sweep)");
  if (!hw.host_link) {
    if (gpus == 1) return Fabric{};  // one device alone exchanges nothing
    throw BadInput(fmt::format("{} lists no interconnect or host link, so {} of them cannot exchange "
                               "gradients or activations: use --gpus 1, or name a --cluster",
                               hw.id, gpus));
  }
  Link host = *hw.host_link;
  const double share = host_link_collective_share(host.peer_to_peer);
  host.latency = host_link_step_latency(host.peer_to_peer, host.latency);
  return device_link_fabric(host, "pcie", share,
                            fmt::format("{} host link from the hardware catalog, {:.0f}% of line rate{} "
                                        "(physics/collectives.hpp, host_link_collective_share)",
                                        hw.id, share * 100,
                                        host.peer_to_peer ? "" : " (no peer-to-peer: staged in host memory)"));
}

Cluster default_cluster(const FleetCatalog& fleet, const HardwareSpec& hw, int gpus) {
  if (fleet.has_standard_node(hw.id) || gpus < 1) return fleet.standard_cluster(hw.id, gpus);
  if (gpus > kMaxServerDevices)
    throw BadInput(fmt::format(
        "{} {} do not fit one server ({} devices at most) and the catalog has no standard multi-node "
        "system for {}: describe your nodes and network as a --cluster in a --catalog directory "
        "(docs/CATALOG.md), or use --gpus <= {}",
        gpus, hw.id, kMaxServerDevices, hw.id, kMaxServerDevices));
  const Fabric link = server_link(hw, gpus);
  Cluster c;
  c.id = fmt::format("{}-server-x{}", hw.id, gpus);
  c.name = gpus == 1 ? fmt::format("one {}", hw.name)
                     : fmt::format("one server of {} x {} over {}", gpus, hw.name, link.name);
  c.source = "synthesized: the catalog has no standard node for " + hw.id;
  c.node.id = c.id;
  c.node.name = c.name;
  c.node.accelerator = hw.id;
  c.node.gpus_per_node = gpus;
  c.node.nics_per_node = 1;
  c.node.scale_up_fabric = c.node.scale_out_fabric = link.id;
  c.node.source = c.source;
  c.scale_up = c.scale_out = link;
  c.topology = fleet.topology("fat-tree");
  c.nodes = 1;
  return c;
}

double collective_compute_share(const HardwareSpec& hw) {
  if (hw.kind != "gpu" || hw.compute_units <= 0) return 0.0;
  return std::min(1.0, kCollectiveChannels / hw.compute_units);
}

}  // namespace mlsysim
