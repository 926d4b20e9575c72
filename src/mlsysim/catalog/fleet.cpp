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
#include "mlsysim/errors.hpp"

namespace mlsysim {
namespace {

std::string str(const toml::table& t, std::string_view key, const std::string& where,
                bool required = true) {
  if (auto s = t[key].value<std::string>()) return *s;
  if (required) throw BadInput(where + ": missing string '" + std::string(key) + "'");
  return {};
}

double num(const toml::table& t, std::string_view key, const std::string& where,
           std::optional<double> fallback = std::nullopt) {
  auto v = t[key].value<double>();
  if (!v) {
    if (fallback) return *fallback;
    throw BadInput(where + ": missing number '" + std::string(key) + "'");
  }
  if (!std::isfinite(*v) || *v < 0)
    throw BadInput(where + ": '" + std::string(key) + "' must be a finite number >= 0");
  return *v;
}

std::vector<std::string> strings(const toml::table& t, std::string_view key) {
  std::vector<std::string> out;
  if (auto* arr = t[key].as_array())
    for (auto& e : *arr)
      if (auto s = e.value<std::string>()) out.push_back(*s);
  return out;
}

template <class T>
void insert(std::vector<T>& items, std::unordered_map<std::string, size_t>& index, T item) {
  auto it = index.find(normalize_name(item.id));
  size_t slot;
  if (it != index.end()) {
    slot = it->second;
    items[slot] = std::move(item);
  } else {
    slot = items.size();
    items.push_back(std::move(item));
  }
  const T& s = items[slot];
  index[normalize_name(s.id)] = slot;
  for (const auto& a : s.aliases) index[normalize_name(a)] = slot;
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
  auto each = [&](const char* key, auto&& fn) {
    if (auto* arr = doc[key].as_array())
      for (auto& n : *arr)
        if (auto* t = n.as_table()) {
          const std::string id = str(*t, "id", origin);
          fn(*t, origin + " [" + id + "]", id);
        }
  };
  each("fabric", [&](const toml::table& t, const std::string& w, const std::string& id) {
    Fabric f;
    f.id = id;
    f.name = str(t, "name", w, false);
    f.kind = str(t, "kind", w);
    f.aliases = strings(t, "aliases");
    f.per_direction = gigabytes_per_second(num(t, "per_direction_gbps_bytes", w));
    if (!(f.per_direction.si() > 0)) throw BadInput(w + ": per_direction_gbps_bytes must be > 0");
    f.latency = microseconds(num(t, "latency_us", w));
    f.collective_efficiency = num(t, "collective_efficiency", w, 1.0);
    if (f.collective_efficiency <= 0 || f.collective_efficiency > 1)
      throw BadInput(w + ": collective_efficiency must be in (0, 1]");
    f.in_network_reduction = t["in_network_reduction"].value_or(false);
    f.in_network_efficiency = num(t, "in_network_efficiency", w, 0.0);
    if (f.in_network_reduction && (f.in_network_efficiency <= 0 || f.in_network_efficiency > 1))
      throw BadInput(w + ": in_network_efficiency must be in (0, 1] when in_network_reduction");
    f.in_network_latency = microseconds(num(t, "in_network_latency_us", w, 0.0));
    if (f.in_network_latency.si() < 0) throw BadInput(w + ": in_network_latency_us must be >= 0");
    const bool has_small_latency = static_cast<bool>(t["small_message_latency_us"]);
    const bool has_small_efficiency = static_cast<bool>(t["small_message_efficiency"]);
    if (has_small_latency != has_small_efficiency)
      throw BadInput(w + ": give small_message_latency_us and small_message_efficiency together");
    if (has_small_efficiency) {
      f.small_message_latency = microseconds(num(t, "small_message_latency_us", w));
      f.small_message_efficiency = num(t, "small_message_efficiency", w);
      if (f.small_message_efficiency <= 0 || f.small_message_efficiency > 1)
        throw BadInput(w + ": small_message_efficiency must be in (0, 1]");
      if (f.small_message_latency.si() < 0) throw BadInput(w + ": small_message_latency_us must be >= 0");
    }
    f.source = str(t, "source", w);
    insert(fabrics_, fabric_index_, std::move(f));
  });
  each("topology", [&](const toml::table& t, const std::string& w, const std::string& id) {
    Topology p;
    p.id = id;
    p.name = str(t, "name", w, false);
    p.aliases = strings(t, "aliases");
    p.ring_fraction = num(t, "ring_fraction", w, 1.0);
    p.all_to_all_fraction = num(t, "all_to_all_fraction", w, 1.0);
    if (p.ring_fraction <= 0 || p.ring_fraction > 1 || p.all_to_all_fraction <= 0 ||
        p.all_to_all_fraction > 1)
      throw BadInput(w + ": bandwidth fractions must be in (0, 1]");
    p.oversubscription_applies = t["oversubscription_applies"].value_or(true);
    p.hops = static_cast<int>(num(t, "hops", w, 4));
    p.source = str(t, "source", w);
    insert(topologies_, topology_index_, std::move(p));
  });
  each("node", [&](const toml::table& t, const std::string& w, const std::string& id) {
    NodeType n;
    n.id = id;
    n.name = str(t, "name", w, false);
    n.aliases = strings(t, "aliases");
    n.accelerator = str(t, "accelerator", w);
    n.gpus_per_node = static_cast<int>(num(t, "gpus_per_node", w));
    n.nics_per_node = static_cast<int>(num(t, "nics_per_node", w));
    if (n.gpus_per_node < 1 || n.nics_per_node < 1)
      throw BadInput(w + ": gpus_per_node and nics_per_node must be >= 1");
    n.scale_up_fabric = str(t, "scale_up_fabric", w);
    n.scale_out_fabric = str(t, "scale_out_fabric", w);
    n.standard_for = strings(t, "standard_for");
    n.source = str(t, "source", w);
    insert(nodes_, node_index_, std::move(n));
  });
  each("cluster", [&](const toml::table& t, const std::string& w, const std::string& id) {
    ClusterSpec c;
    c.id = id;
    c.name = str(t, "name", w, false);
    c.aliases = strings(t, "aliases");
    c.node = str(t, "node", w);
    c.fabric = str(t, "fabric", w);
    c.topology = str(t, "topology", w);
    c.nodes = static_cast<int>(num(t, "nodes", w));
    if (c.nodes < 1) throw BadInput(w + ": nodes must be >= 1");
    c.oversubscription = num(t, "oversubscription", w, 1.0);
    if (c.oversubscription < 1) throw BadInput(w + ": oversubscription must be >= 1 (1 = non-blocking)");
    c.source = str(t, "source", w);
    insert(clusters_, cluster_index_, std::move(c));
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
