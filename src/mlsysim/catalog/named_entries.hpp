// Named catalog entries (devices, models, fabrics, topologies, nodes, clusters): one id plus aliases
// per entry, compared with normalize_name(). Catalog and FleetCatalog keep theirs the same way, so
// both refuse a name defined twice and both let a --catalog entry replace a built-in one by reusing
// its id (an override that keeps the built-in's aliases: every name that found it finds the
// replacement).
#pragma once

#include <algorithm>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/errors.hpp"

namespace mlsysim {

// `name` (the id or an alias of entry `id` in `file`) is already the id or an alias of `other_id`:
// the error names both entries and files and says how to resolve it. `what`: "hardware", "fabric".
BadInput name_taken(const char* what, const std::string& id, const std::string& name, const std::string& file,
                    const std::string& other_id, const EntryOrigin& other);

// Marks every entry read so far as built-in.
inline void seal_builtin(std::vector<EntryOrigin>& origins) {
  for (auto& o : origins) o.builtin = true;
}

// Adds `spec` (with .id and .aliases) under its names; a name already taken is name_taken(), except
// that an entry with a built-in entry's id replaces it.
template <class Spec>
void insert_named(std::vector<Spec>& specs, std::vector<EntryOrigin>& origins,
                  std::unordered_map<std::string, size_t>& index, Spec spec, const std::string& file,
                  const char* what) {
  const std::string id = normalize_name(spec.id);
  std::optional<size_t> replaced;
  if (auto it = index.find(id); it != index.end()) {
    const size_t slot = it->second;
    if (normalize_name(specs[slot].id) != id || !origins[slot].builtin)
      throw name_taken(what, spec.id, spec.id, file, specs[slot].id, origins[slot]);
    replaced = slot;
  }
  for (const auto& a : spec.aliases)
    if (auto it = index.find(normalize_name(a)); it != index.end() && it->second != replaced)
      throw name_taken(what, spec.id, a, file, specs[it->second].id, origins[it->second]);
  size_t slot = specs.size();
  if (replaced) {
    slot = *replaced;
    for (const auto& a : specs[slot].aliases)
      if (std::none_of(spec.aliases.begin(), spec.aliases.end(),
                       [&](const std::string& b) { return normalize_name(a) == normalize_name(b); }))
        spec.aliases.push_back(a);
    specs[slot] = std::move(spec);
    origins[slot] = {file, false};
  } else {
    specs.push_back(std::move(spec));
    origins.push_back({file, false});
  }
  index[id] = slot;
  for (const auto& a : specs[slot].aliases) index[normalize_name(a)] = slot;
}

}  // namespace mlsysim
