// `mlsysim collective`: time one collective on a cluster (alpha-beta over the topology), or the
// tutorial's formula with an explicit --bandwidth/--latency; --list shows the fleet catalog.
#include <algorithm>
#include <climits>
#include <cmath>
#include <iostream>

#include "held_out_accuracy.hpp"
#include "train_options.hpp"
#include "mlsysim/physics/topology.hpp"

namespace mlsysim::cli {
namespace {

struct CollectiveOptions {
  std::string op = "allreduce", algorithm = "auto", cluster, hardware;
  std::optional<double> bytes, bandwidth_gbs, latency_us;
  int gpus = 8;
  std::optional<int> stride;  // given or not: formula mode refuses it
  bool list = false;
};

// `--list`: the fleet catalog's clusters, nodes, fabrics and topologies.
void print_fleet_catalog(const GlobalOptions& g, const FleetCatalog& fleet) {
  nlohmann::ordered_json j;
  std::string text;
  for (const auto& c : fleet.clusters()) {
    const Cluster r = fleet.resolve(c);
    j["clusters"].push_back({{"id", c.id}, {"aliases", c.aliases}, {"gpus", r.total_gpus()}, {"node", c.node},
                             {"fabric", c.fabric}, {"topology", c.topology}, {"source", c.source}});
    text += fmt::format("cluster  {:<14}{:>6} GPUs  {} x {:<16} {} / {}\n", c.id, r.total_gpus(), c.nodes, c.node,
                        c.fabric, c.topology);
  }
  for (const auto& n : fleet.nodes()) {
    j["nodes"].push_back({{"id", n.id}, {"accelerator", n.accelerator}, {"gpus_per_node", n.gpus_per_node},
                          {"scale_up_fabric", n.scale_up_fabric}, {"nics_per_node", n.nics_per_node},
                          {"scale_out_fabric", n.scale_out_fabric}, {"source", n.source}});
    text += fmt::format("node     {:<16}{:>3} x {:<10} {} + {} x {}\n", n.id, n.gpus_per_node, n.accelerator,
                        n.scale_up_fabric, n.nics_per_node, n.scale_out_fabric);
  }
  for (const auto& f : fleet.fabrics()) {
    nlohmann::ordered_json fj = {{"id", f.id}, {"kind", f.kind}, {"per_direction_bytes_per_s", f.per_direction.si()},
                                 {"latency_s", f.latency.si()}, {"collective_efficiency", f.collective_efficiency},
                                 {"in_network_reduction", f.in_network_reduction}};
    if (f.has_small_message_protocol()) {
      fj["small_message_latency_s"] = f.small_message_latency.si();
      fj["small_message_efficiency"] = f.small_message_efficiency;
    }
    fj["source"] = f.source;
    j["fabrics"].push_back(fj);
    text += fmt::format("fabric   {:<24}{:>7.1f} GB/s per direction, alpha {:.1f} us, efficiency {:.2f}{}{}\n", f.id,
                        in_gbps(f.per_direction), in_us(f.latency), f.collective_efficiency,
                        f.has_small_message_protocol()
                            ? fmt::format("; small messages: alpha {:.1f} us, efficiency {:.2f}",
                                          in_us(f.small_message_latency), f.small_message_efficiency)
                            : std::string(),
                        f.in_network_reduction ? ", in-network reduction" : "");
  }
  for (const auto& t : fleet.topologies()) {
    j["topologies"].push_back({{"id", t.id}, {"ring_fraction", t.ring_fraction},
                               {"all_to_all_fraction", t.all_to_all_fraction}, {"source", t.source}});
    text += fmt::format("topology {:<16} ring {:.2f}, all-to-all {:.2f} of NIC bandwidth\n", t.id, t.ring_fraction,
                        t.all_to_all_fraction);
  }
  print(g, j, text);
}

std::vector<double> message_sizes(const CollectiveOptions& o) {
  std::vector<double> sizes;
  if (o.bytes) sizes.push_back(*o.bytes);
  else for (double s = 1024; s <= 17.2e9; s *= 8) sizes.push_back(s);  // 1 KiB .. 16 GiB, x8
  // Up to a petabyte: 250x the fp32 gradients of a 1T-parameter model, and far from where the
  // time of a message overflows.
  constexpr double kMostBytes = 1e15;
  for (double s : sizes)
    if (!(s >= 0 && s <= kMostBytes))
      throw BadInput(fmt::format("--bytes must be in [0, {:g}] (a finite message size), got {}", kMostBytes, s));
  return sizes;
}

// Formula mode times one link per rank from --bandwidth/--latency-us; cluster mode places the group
// on a cluster's fabrics. A flag of the other mode would be silently ignored, so it is an error.
void check_mode_flags(const CollectiveOptions& o) {
  if (o.bandwidth_gbs) {
    const auto refuse = [](const std::string& flag) {
      throw BadInput(flag + " is a cluster-mode flag, but --bandwidth selects formula mode (one link per rank, "
                            "no cluster): drop " + flag + ", or drop --bandwidth/--latency-us to time the "
                            "collective on the cluster");
    };
    if (!o.cluster.empty()) refuse("--cluster");
    if (!o.hardware.empty()) refuse("--hardware");
    if (o.stride) refuse("--stride");
    // Up to a petabyte per second: 500x NVLink 5, and far from where a time underflows to 0.
    constexpr double kMostGbs = 1e6;
    if (!(*o.bandwidth_gbs > 0 && *o.bandwidth_gbs <= kMostGbs))
      throw BadInput(fmt::format("--bandwidth must be in (0, {:g}] GB/s per direction, got {} "
                                 "(e.g. 450 for NVLink 4, 50 for InfiniBand NDR)", kMostGbs, *o.bandwidth_gbs));
  } else if (o.latency_us) {
    throw BadInput("--latency-us is formula mode's alpha and needs --bandwidth; cluster mode takes alpha from "
                   "the cluster's fabrics (see `mlsysim collective --list`)");
  }
  if (o.stride && *o.stride < 1)
    throw BadInput(fmt::format("--stride must be >= 1 (1 = consecutive ranks, 8 = one per node on DGX), got {}",
                               *o.stride));
  if (o.latency_us && !(*o.latency_us >= 0 && *o.latency_us <= 1e6))
    throw BadInput(fmt::format("--latency-us must be in [0, 1e6] microseconds per step (NVLink ~3, InfiniBand ~5), "
                               "got {}", *o.latency_us));
}

// The algorithms formula mode has an alpha-beta formula for: ring (and, for all-reduce, the double
// binary tree) for the reductions and gathers, pairwise exchange for all-to-all, one direct send
// for point-to-point. `--algorithm auto` takes the first.
std::vector<Algorithm> formula_algorithms(CollectiveOp op) {
  switch (op) {
    case CollectiveOp::AllReduce: return {Algorithm::Ring, Algorithm::Tree};
    case CollectiveOp::AllGather:
    case CollectiveOp::ReduceScatter: return {Algorithm::Ring};
    case CollectiveOp::AllToAll: return {Algorithm::Pairwise};
    case CollectiveOp::PointToPoint: return {Algorithm::Direct};
  }
  return {Algorithm::Ring};
}

Algorithm formula_algorithm(CollectiveOp op, const std::string& flag) {
  const Algorithm asked = parse_collective_algorithm(flag);
  if (asked == Algorithm::InNetwork || asked == Algorithm::Hierarchical)
    throw BadInput(fmt::format("--algorithm {} needs a cluster: formula mode (--bandwidth) has one-link formulas "
                               "only; drop --bandwidth to time it on --hardware/--cluster", flag));
  if (asked == Algorithm::Tree && op != CollectiveOp::AllReduce)
    throw BadInput(fmt::format("--algorithm tree has a formula for all-reduce only, not {}", to_string(op)));
  const auto valid = formula_algorithms(op);
  if (asked == Algorithm::Auto) return valid.front();
  if (std::find(valid.begin(), valid.end(), asked) != valid.end()) return asked;
  std::string names = "auto";
  for (Algorithm a : valid) names += std::string(", ") + to_string(a);
  throw BadInput(fmt::format("--algorithm {} does not apply to {} (valid: {})", flag, to_string(op), names));
}

// Formula mode (the tutorial's calc_ring_allreduce_time and its siblings): alpha-beta over one link
// per rank, on the algorithms formula_algorithms lists.
void formula_rows(CollectiveOp op, const CollectiveOptions& o, const std::vector<double>& sizes,
                  nlohmann::ordered_json& rows, std::string& text) {
  const Algorithm algorithm = formula_algorithm(op, o.algorithm);
  const bool tree = algorithm == Algorithm::Tree;
  const LinkCost link{gigabytes_per_second(*o.bandwidth_gbs), microseconds(o.latency_us.value_or(0.5))};
  text += fmt::format("{} over {} ranks, {:.1f} GB/s per direction, alpha {:.2f} us (alpha-beta formula)\n",
                      to_string(op), o.gpus, *o.bandwidth_gbs, in_us(link.latency));
  for (double s : sizes) {
    Seconds t{};
    switch (op) {
      case CollectiveOp::AllReduce: t = tree ? tree_allreduce_time(bytes(s), o.gpus, link)
                                             : ring_allreduce_time(bytes(s), o.gpus, link); break;
      case CollectiveOp::AllGather: t = ring_allgather_time(bytes(s), o.gpus, link); break;
      case CollectiveOp::ReduceScatter: t = ring_reduce_scatter_time(bytes(s), o.gpus, link); break;
      case CollectiveOp::AllToAll: t = all_to_all_time(bytes(s), o.gpus, link); break;
      case CollectiveOp::PointToPoint: t = point_to_point_time(bytes(s), link); break;
    }
    // nccl-tests' conventions, as cluster mode reports them: busbw = algbw x the op's factor.
    const double algbw = t.si() > 0 ? s / t.si() : 0;
    const double busbw = algbw * bus_bandwidth_factor(op, o.gpus);
    rows.push_back({{"op", to_string(op)}, {"bytes", s}, {"ranks", o.gpus}, {"algorithm", to_string(algorithm)},
                    {"time_s", t.si()}, {"algbw_bytes_per_s", algbw},
                    {"busbw_bytes_per_s", busbw}, {"bus_bandwidth_bytes_per_s", busbw}});
    text += fmt::format("  {:>12.4g} B  {:>12.4f} ms  busbw {:8.1f} GB/s\n", s, in_ms(t), busbw / 1e9);
  }
}

// The cluster the group runs on: --cluster (whose accelerator --hardware, if given, must be), else
// the --hardware's standard node (h100 by default) with enough nodes for the group's world of
// gpus x stride ranks, so that `-n 8 --stride 8` spans 8 nodes rather than claiming 8 on one.
Cluster resolve_cluster(const GlobalOptions& g, const CollectiveOptions& o, const FleetCatalog& fleet) {
  // An unknown device gets the catalog's "did you mean", not "no standard node".
  const auto catalog = o.hardware.empty() ? nullptr : load_catalog(g);
  const HardwareSpec* hw = catalog ? &catalog->hardware(o.hardware) : nullptr;
  if (!o.cluster.empty()) {
    Cluster c = fleet.cluster(o.cluster);
    if (hw && normalize_name(hw->id) != normalize_name(c.node.accelerator))
      throw BadInput(fmt::format("--hardware {} does not match cluster {} ({} nodes of {}); omit --hardware",
                                 hw->id, c.id, c.nodes, c.node.accelerator));
    return c;
  }
  const long long world = static_cast<long long>(o.gpus) * o.stride.value_or(1);
  const int world_gpus = static_cast<int>(std::min<long long>(world, INT_MAX));
  try {
    return hw ? default_cluster(fleet, *hw, world_gpus) : fleet.standard_cluster("h100", world_gpus);
  } catch (const BadInput& e) {
    if (world == o.gpus) throw;
    throw BadInput(fmt::format("{} ranks at stride {} span {} GPUs: {}", o.gpus, *o.stride, world, e.what()));
  }
}

// Cluster mode: the group placed on the cluster's nodes, each size on the algorithm the topology
// favours (or the one asked for).
void cluster_rows(const GlobalOptions& g, CollectiveOp op, const CollectiveOptions& o, const FleetCatalog& fleet,
                  Format format, const std::vector<double>& sizes, nlohmann::ordered_json& rows, std::string& text) {
  const Cluster c = resolve_cluster(g, o, fleet);
  const GroupPlacement pl = place_group_on(c, o.gpus, o.stride.value_or(1));
  const Algorithm alg = parse_collective_algorithm(o.algorithm);
  const std::string placement = describe_placement(pl);
  text += fmt::format("{} over {} GPUs of {} ({}; {} + {} on {})\n", to_string(op), o.gpus, c.id, placement,
                      c.scale_up.id, c.scale_out.id, c.topology.id);
  text += fmt::format("  {:>12}  {:<13}{:>12}{:>12}{:>12}  {}\n", "bytes", "algorithm", "time ms", "algbw GB/s",
                      "busbw GB/s", "links");
  for (double s : sizes) {
    const auto e = collective_time(op, bytes(s), pl, c, alg);
    rows.push_back({{"op", to_string(op)}, {"bytes", s}, {"ranks", o.gpus}, {"cluster", c.id},
                    {"nodes", pl.nodes}, {"placement", placement}, {"algorithm", to_string(e.algorithm)},
                    {"time_s", e.time.si()},
                    {"algbw_bytes_per_s", e.algbw.si()}, {"busbw_bytes_per_s", e.busbw.si()},
                    {"bus_bandwidth_bytes_per_s", e.busbw.si()}, {"links", e.links}});
    text += fmt::format("  {:>12.4g}  {:<13}{:>12.4f}{:>12.1f}{:>12.1f}  {}\n", s, to_string(e.algorithm),
                        in_ms(e.time), in_gbps(e.algbw), in_gbps(e.busbw), e.links);
  }
  // Only a table re-predicts the validation points (they run this command as JSON).
  if (format == Format::Table) text += accuracy_line_for("collective", kGraphGroup);
  if (alg == Algorithm::Auto && o.bytes) {
    text += "candidates:\n";
    for (const auto& e : collective_candidates(op, bytes(*o.bytes), pl, c))
      text += fmt::format("  {:<13}{:>12.4f} ms  busbw {:.1f} GB/s\n", to_string(e.algorithm), in_ms(e.time),
                          in_gbps(e.busbw));
  }
}

int run_collective(const GlobalOptions& g, const CollectiveOptions& o) {
  const Format format = parse_format(g.format);
  const auto fleet_owner = load_fleet(g);
  if (o.list) {
    print_fleet_catalog(g, *fleet_owner);
    return kExitOk;
  }
  const CollectiveOp op = parse_collective_op(o.op);
  if (o.gpus < 1) throw BadInput(fmt::format("--gpus must be >= 1, got {}", o.gpus));
  check_mode_flags(o);
  const std::vector<double> sizes = message_sizes(o);
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  std::string text;
  if (o.bandwidth_gbs) formula_rows(op, o, sizes, rows, text);
  else cluster_rows(g, op, o, *fleet_owner, format, sizes, rows, text);
  if (format == Format::Json) out_stream() << (rows.size() == 1 ? rows[0] : rows).dump(2) << "\n";
  else if (format == Format::Csv) out_stream() << csv_from_rows(rows);
  else out_stream() << text;
  return kExitOk;
}

const CommandRegistrar registrar(20, "collective", [](CLI::App& app, const GlobalOptions& g) {
  auto o = std::make_shared<CollectiveOptions>();
  auto* cmd = app.add_subcommand("collective", "Time a collective (alpha-beta over a cluster's topology)");
  cmd->add_option("--op", o->op, "allreduce | allgather | reducescatter | alltoall | p2p");
  cmd->add_option("--bytes", o->bytes, "Message size in bytes (default: a sweep 1 KB .. 16 GB)");
  cmd->add_option("--gpus,-n", o->gpus, "Ranks in the group (default 8)");
  cmd->add_option("--stride", o->stride,
                  "Rank distance between group members (8 = one per node on DGX); the group is one of stride "
                  "interleaved groups, so it needs gpus x stride GPUs");
  cmd->add_option("--cluster", o->cluster, "Named cluster (default: the --hardware's standard node)");
  cmd->add_option("--hardware,-H", o->hardware, "Accelerator whose standard node to use (default h100)");
  cmd->add_option("--algorithm", o->algorithm, "auto | ring | tree | in-network | hierarchical | pairwise | direct");
  cmd->add_option("--bandwidth", o->bandwidth_gbs, "Formula mode: per-direction GB/s (the tutorial's bandwidth_bytes_s/1e9)");
  cmd->add_option("--latency-us", o->latency_us, "Formula mode: alpha per step in microseconds (default 0.5)");
  cmd->add_flag("--list", o->list, "List clusters, nodes, fabrics and topologies");
  return Command{cmd, [o, &g] { return run_collective(g, *o); }};
});

}  // namespace
}  // namespace mlsysim::cli
