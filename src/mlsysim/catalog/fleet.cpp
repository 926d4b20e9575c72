#include "mlsysim/catalog/fleet.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "mlsysim/catalog/toml_files.hpp"

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/catalog/embedded.hpp"
#include "mlsysim/catalog/named_entries.hpp"
#include "mlsysim/errors.hpp"

namespace mlsysim {
namespace {

using namespace toml_input;  // NOLINT: the strict field readers every catalog table shares

// The keys of each fleet table, beside the code below that reads them. A misspelt one
// ('colective_efficiency') would otherwise leave its field at the default without a word.
const Keys kFabricKeys = {"id",
                          "name",
                          "aliases",
                          "kind",
                          "per_direction_gbps_bytes",
                          "latency_us",
                          "collective_efficiency",
                          "in_network_reduction",
                          "in_network_efficiency",
                          "in_network_latency_us",
                          "small_message_latency_us",
                          "small_message_efficiency",
                          "source"};
// The fabric families docs/CATALOG.md lists (shown in listings; the physics reads the rates).
const std::vector<std::string> kFabricKinds = {"nvlink", "xgmi", "ici", "infiniband", "roce", "ethernet", "pcie"};
const Keys kTopologyKeys = {"id",   "name", "aliases", "ring_fraction", "all_to_all_fraction", "oversubscription_applies",
                            "hops", "source"};
const Keys kNodeKeys = {"id",            "name",          "aliases",          "accelerator",  "gpus_per_node",
                        "nics_per_node", "scale_up_fabric", "scale_out_fabric", "standard_for", "source"};
const Keys kClusterKeys = {"id",    "name",  "aliases", "node", "fabric", "topology", "nodes", "oversubscription",
                           "source"};

// A text field; `required` ones must be present. Present, it must be a string.
std::string str(const toml::table& t, std::string_view key, const std::string& where, bool required = true) {
  if (required && !t[key]) throw BadInput(where + ": missing string '" + std::string(key) + "'");
  return string_or(t, key, where);
}

// A finite number >= 0; absent, `fallback` (required when there is none).
double num(const toml::table& t, std::string_view key, const std::string& where,
           std::optional<double> fallback = std::nullopt) {
  if (!t[key]) {
    if (fallback) return *fallback;
    throw BadInput(where + ": missing number '" + std::string(key) + "'");
  }
  const std::string label = quoted(key);
  return finite_non_negative(number_of(t.get(key), label, where), label, where);
}

// A fraction in (0, 1]; absent, `fallback`.
double fraction(const toml::table& t, std::string_view key, const std::string& where, double fallback) {
  return fraction_or(t[key], fallback, quoted(key), where);
}

template <class T>
const T& lookup(const std::vector<T>& items, const std::unordered_map<std::string, size_t>& index,
                std::string_view name, const char* what, const char* list_cmd) {
  auto it = index.find(normalize_name(name));
  if (it != index.end()) return items[it->second];
  std::vector<std::string> names;
  for (const auto& [k, v] : index) names.push_back(k);
  std::sort(names.begin(), names.end());
  const std::string best = closest_match(normalize_name(name), names);
  std::string ids;
  for (const auto& i : items) ids += (ids.empty() ? "" : ", ") + i.id;
  throw BadInput("unknown " + std::string(what) + " '" + std::string(name) + "'" +
                 (best.empty() ? "" : "; did you mean '" + best + "'?") + " (known: " + ids +
                 "; see `mlsysim " + list_cmd + "`)");
}

}  // namespace

void FleetCatalog::add_toml(std::string_view text, const std::string& origin) {
  const toml::table doc = parse_toml(text, origin);
  reject_unknown_tables(doc, origin);
  auto each = [&](const char* key, const Keys& keys, auto&& fn) {
    for (const toml::table* t : entries(doc, key, origin)) {
      const std::string id = str(*t, "id", origin);
      const std::string where = origin + " [" + id + "]";
      reject_unknown_keys(*t, keys, fmt::format("[[{}]]", key), where);
      fn(*t, where, id);
    }
  };
  each("fabric", kFabricKeys, [&](const toml::table& t, const std::string& w, const std::string& id) {
    Fabric f;
    f.id = id;
    f.name = str(t, "name", w, false);
    f.kind = str(t, "kind", w);
    if (std::find(kFabricKinds.begin(), kFabricKinds.end(), f.kind) == kFabricKinds.end())
      throw BadInput(one_of_error("kind", f.kind, kFabricKinds, w));
    f.aliases = string_list(t, "aliases", w);
    if (!t["per_direction_gbps_bytes"])
      throw BadInput(w + ": missing number 'per_direction_gbps_bytes' (GB/s per direction)");
    f.per_direction = gigabytes_per_second(
        plausible_rate(t.get("per_direction_gbps_bytes"), kBandwidthRange, "'per_direction_gbps_bytes'", w));
    f.latency = microseconds(num(t, "latency_us", w));
    f.collective_efficiency = fraction(t, "collective_efficiency", w, 1.0);
    f.in_network_reduction = bool_field(t, "in_network_reduction", false, w);
    f.in_network_efficiency = num(t, "in_network_efficiency", w, 0.0);
    if (f.in_network_reduction && (f.in_network_efficiency <= 0 || f.in_network_efficiency > 1))
      throw BadInput(w + ": in_network_efficiency must be in (0, 1] when in_network_reduction");
    if (f.in_network_efficiency > 1) throw BadInput(w + ": in_network_efficiency must be in (0, 1]");
    f.in_network_latency = microseconds(num(t, "in_network_latency_us", w, 0.0));
    const bool has_small_latency = static_cast<bool>(t["small_message_latency_us"]);
    const bool has_small_efficiency = static_cast<bool>(t["small_message_efficiency"]);
    if (has_small_latency != has_small_efficiency)
      throw BadInput(w + ": give small_message_latency_us and small_message_efficiency together");
    if (has_small_efficiency) {
      f.small_message_latency = microseconds(num(t, "small_message_latency_us", w));
      f.small_message_efficiency = fraction(t, "small_message_efficiency", w, 0.0);
    }
    f.source = str(t, "source", w);
    insert_named(fabrics_, fabric_origins_, fabric_index_, std::move(f), origin, "fabric");
  });
  each("topology", kTopologyKeys, [&](const toml::table& t, const std::string& w, const std::string& id) {
    Topology p;
    p.id = id;
    p.name = str(t, "name", w, false);
    p.aliases = string_list(t, "aliases", w);
    p.ring_fraction = fraction(t, "ring_fraction", w, 1.0);
    p.all_to_all_fraction = fraction(t, "all_to_all_fraction", w, 1.0);
    p.oversubscription_applies = bool_field(t, "oversubscription_applies", true, w);
    p.hops = positive_count(t, "hops", 4, w);
    p.source = str(t, "source", w);
    insert_named(topologies_, topology_origins_, topology_index_, std::move(p), origin, "topology");
  });
  each("node", kNodeKeys, [&](const toml::table& t, const std::string& w, const std::string& id) {
    NodeType n;
    n.id = id;
    n.name = str(t, "name", w, false);
    n.aliases = string_list(t, "aliases", w);
    n.accelerator = str(t, "accelerator", w);
    n.gpus_per_node = positive_count(t, "gpus_per_node", std::nullopt, w);
    n.nics_per_node = positive_count(t, "nics_per_node", std::nullopt, w);
    n.scale_up_fabric = str(t, "scale_up_fabric", w);
    n.scale_out_fabric = str(t, "scale_out_fabric", w);
    n.standard_for = string_list(t, "standard_for", w);
    n.source = str(t, "source", w);
    insert_named(nodes_, node_origins_, node_index_, std::move(n), origin, "node");
  });
  each("cluster", kClusterKeys, [&](const toml::table& t, const std::string& w, const std::string& id) {
    ClusterSpec c;
    c.id = id;
    c.name = str(t, "name", w, false);
    c.aliases = string_list(t, "aliases", w);
    c.node = str(t, "node", w);
    c.fabric = str(t, "fabric", w);
    c.topology = str(t, "topology", w);
    c.nodes = positive_count(t, "nodes", std::nullopt, w);
    c.oversubscription = num(t, "oversubscription", w, 1.0);
    if (c.oversubscription < 1) throw BadInput(w + ": oversubscription must be >= 1 (1 = non-blocking)");
    c.source = str(t, "source", w);
    insert_named(clusters_, cluster_origins_, cluster_index_, std::move(c), origin, "cluster");
  });
}

void FleetCatalog::validate() const {
  for (const auto& n : nodes_) {
    (void)fabric(n.scale_up_fabric);
    (void)fabric(n.scale_out_fabric);
  }
  for (const auto& c : clusters_) (void)resolve(c);
}

const Fabric& FleetCatalog::fabric(std::string_view name) const {
  return lookup(fabrics_, fabric_index_, name, "fabric", "collective --list");
}
const Topology& FleetCatalog::topology(std::string_view name) const {
  return lookup(topologies_, topology_index_, name, "topology", "collective --list");
}
const NodeType& FleetCatalog::node(std::string_view name) const {
  return lookup(nodes_, node_index_, name, "node type", "collective --list");
}
const ClusterSpec& FleetCatalog::cluster_spec(std::string_view name) const {
  return lookup(clusters_, cluster_index_, name, "cluster", "collective --list");
}

Cluster FleetCatalog::resolve(const ClusterSpec& spec) const {
  Cluster c;
  c.id = spec.id;
  c.name = spec.name;
  c.source = spec.source;
  c.node = node(spec.node);
  c.scale_up = fabric(c.node.scale_up_fabric);
  c.scale_out = fabric(spec.fabric);
  c.topology = topology(spec.topology);
  c.nodes = spec.nodes;
  c.oversubscription = spec.oversubscription;
  return c;
}

Cluster FleetCatalog::cluster(std::string_view name) const { return resolve(cluster_spec(name)); }

Cluster FleetCatalog::standard_cluster(std::string_view hardware_id, int gpus) const {
  if (gpus < 1) throw BadInput("--gpus must be >= 1, got " + std::to_string(gpus));
  // The synthesized cluster is a non-blocking fat tree. A three-level k-ary fat tree connects k^3/4
  // hosts (Al-Fares et al. 2008, SIGCOMM, sec. 3.3); with 128-port switches (400G radix of today's
  // 51.2 Tb/s parts) that is 524,288 GPUs. Beyond it the model's topology does not exist.
  constexpr int kMaxFatTreeGpus = 128 * 128 * 128 / 4;
  if (gpus > kMaxFatTreeGpus)
    throw BadInput(fmt::format("--gpus {} exceeds the {} GPUs a three-level fat tree of 128-port switches "
                               "connects (k^3/4): describe a larger network as a --cluster in a --catalog "
                               "directory",
                               gpus, kMaxFatTreeGpus));
  const std::string want = normalize_name(hardware_id);
  std::string known;
  for (const auto& n : nodes_) {
    for (const auto& h : n.standard_for) {
      known += (known.empty() ? "" : ", ") + h;
      if (normalize_name(h) != want) continue;
      ClusterSpec spec;
      spec.id = n.id + "-x" + std::to_string((gpus + n.gpus_per_node - 1) / n.gpus_per_node);
      spec.name = std::to_string(gpus) + " GPUs in " + n.name + " nodes, non-blocking fat tree";
      spec.node = n.id;
      spec.fabric = n.scale_out_fabric;
      spec.topology = "fat-tree";
      spec.nodes = (gpus + n.gpus_per_node - 1) / n.gpus_per_node;
      spec.source = "standard node of " + std::string(hardware_id) + ": " + n.source;
      return resolve(spec);
    }
  }
  throw BadInput("no standard multi-GPU node for hardware '" + std::string(hardware_id) +
                 "' (devices with one: " + known + "); pass --cluster NAME (see `mlsysim collective --list`)");
}

bool FleetCatalog::has_standard_node(std::string_view hardware_id) const {
  const std::string want = normalize_name(hardware_id);
  for (const auto& n : nodes_)
    for (const auto& h : n.standard_for)
      if (normalize_name(h) == want) return true;
  return false;
}

const FleetCatalog& FleetCatalog::builtin() {
  static const FleetCatalog catalog = [] {
    FleetCatalog f;
    for (size_t i = 0; i < kEmbeddedCatalogCount; ++i) {
      const std::string path = kEmbeddedCatalog[i].path;
      if (path.rfind("fleet/", 0) == 0) f.add_toml(kEmbeddedCatalog[i].text, "catalog/" + path);
    }
    f.validate();
    for (auto* origins : {&f.fabric_origins_, &f.topology_origins_, &f.node_origins_, &f.cluster_origins_})
      seal_builtin(*origins);
    return f;
  }();
  return catalog;
}

FleetCatalog FleetCatalog::with_user_dir(const std::string& dir) {
  FleetCatalog f = builtin();
  for (const auto& [path, text] : read_toml_dir(dir, "--catalog")) f.add_toml(text, path);
  f.validate();
  return f;
}

}  // namespace mlsysim
