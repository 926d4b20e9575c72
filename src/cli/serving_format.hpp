// Small presentation helpers shared by the serving commands (serve, compress, simulate): aligned
// text tables and JSON flattening for CSV. Pure presentation; no physics.
#pragma once

#include <nlohmann/json.hpp>

#include <algorithm>
#include <string>
#include <vector>

namespace mlsysim::cli {

inline std::string text_grid(const std::vector<std::string>& header,
                             const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w(header.size(), 0);
  auto widen = [&](const std::vector<std::string>& r) {
    for (size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
  };
  widen(header);
  for (const auto& r : rows) widen(r);
  auto line = [&](const std::vector<std::string>& r) {
    std::string s;
    for (size_t i = 0; i < r.size() && i < w.size(); ++i) {
      s += r[i];
      if (i + 1 < r.size()) s += std::string(w[i] - r[i].size() + 2, ' ');
    }
    return s + "\n";
  };
  std::string out;
  if (!header.empty() && !header[0].empty()) {
    out += line(header);
    size_t total = 0;
    for (size_t x : w) total += x + 2;
    out += std::string(total > 2 ? total - 2 : 0, '-') + "\n";
  }
  for (const auto& r : rows) out += line(r);
  return out;
}

inline std::string trace_text(const nlohmann::ordered_json& trace) {
  std::string s = "\nWhy:\n";
  for (const auto& l : trace) s += "  - " + l.get<std::string>() + "\n";
  return s;
}

// {"a": {"b": 1}} -> {"a_b": 1}; arrays (the trace) are dropped.
inline nlohmann::ordered_json flatten_for_csv(const nlohmann::ordered_json& j,
                                              const std::string& prefix = "") {
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string key = prefix.empty() ? it.key() : prefix + "_" + it.key();
    if (it->is_object()) {
      const nlohmann::ordered_json inner = flatten_for_csv(*it, key);
      for (auto jt = inner.begin(); jt != inner.end(); ++jt) out[jt.key()] = *jt;
    } else if (!it->is_array()) {
      out[key] = *it;
    }
  }
  return out;
}

}  // namespace mlsysim::cli
