#include "output.hpp"

#include <algorithm>
#include <unordered_set>
#include <fmt/format.h>

#include "mlsysim/physics/power.hpp"
#include "mlsysim/physics/transformer.hpp"
#include "mlsysim/units/format.hpp"

namespace mlsysim::cli {

using nlohmann::ordered_json;

namespace {

std::string pad(const std::string& s, size_t width) {
  // Pads by display columns (UTF-8 continuation bytes take no column).
  size_t cols = 0;
  for (unsigned char c : s) cols += (c & 0xC0) != 0x80;
  return cols >= width ? s : s + std::string(width - cols, ' ');
}

// A plain aligned table: header row, rule, rows.
std::string table(const std::vector<std::string>& header,
                  const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(header.size(), 0);
  auto measure = [&](const std::vector<std::string>& r) {
    for (size_t i = 0; i < r.size() && i < widths.size(); ++i) {
      size_t cols = 0;
      for (unsigned char c : r[i]) cols += (c & 0xC0) != 0x80;
      widths[i] = std::max(widths[i], cols);
    }
  };
  measure(header);
  for (const auto& r : rows) measure(r);
  std::string out;
  auto line = [&](const std::vector<std::string>& r) {
    for (size_t i = 0; i < r.size(); ++i) out += pad(r[i], widths[i] + 2);
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += '\n';
  };
  line(header);
  size_t total = 0;
  for (size_t w : widths) total += w + 2;
  out += std::string(total > 2 ? total - 2 : total, '-') + '\n';
  for (const auto& r : rows) line(r);
  return out;
}

std::string peak_summary(const HardwareSpec& hw) {
  for (Precision p : {Precision::BF16, Precision::FP16, Precision::INT8, Precision::FP32})
    if (hw.supports(p)) return fmt::format("{} {}", format_rate(hw.peak(p)), to_string(p));
  return "-";
}

}  // namespace

ordered_json profile_json(const Profile& p) {
  const HardwareSpec& hw = *p.hardware;
  ordered_json j;
  j["model"] = p.model->id;
  j["hardware"] = hw.id;
  j["phase"] = to_string(p.phase);
  j["batch_size"] = p.batch;
  j["seq_len"] = p.seq_len;
  j["context"] = p.context;
  j["precision"] = to_string(p.precision);
  j["compute_precision"] = to_string(p.compute_precision);
  j["kv_precision"] = to_string(p.kv_precision);
  j["head_precision"] = to_string(p.head_precision);
  j["embedding_precision"] = to_string(p.embedding_precision);
  j["precision_fallback"] = p.precision_fallback;
  j["runtime"] = to_string(p.runtime);
  j["fusion"] = to_string(p.fusion);
  j["attention"] = to_string(p.attention);
  j["activation_scaling"] = to_string(p.activation_scaling);
  j["model_type"] = p.teaching_efficiency > 0 ? "textbook" : "operator";
  if (p.teaching_efficiency > 0) j["efficiency"] = p.teaching_efficiency;
  j["latency_s"] = p.latency.si();
  j["bottleneck"] = to_string(p.bottleneck);
  j["compute_time_s"] = p.compute_time.si();
  j["memory_time_s"] = p.memory_time.si();
  j["overhead_time_s"] = p.overhead_time.si();
  j["mfu"] = p.mfu;
  j["hfu"] = p.hfu;
  j[p.throughput_unit == std::string("tokens/s") ? "tokens_per_s" : "samples_per_s"] = p.throughput;
  j["model_flops"] = p.model_flops.si();
  j["hardware_flops"] = p.hardware_flops.si();
  j["bytes_moved"] = p.bytes_moved.si();
  j["arithmetic_intensity_flop_per_byte"] = p.arithmetic_intensity.si();
  j["ridge_point_flop_per_byte"] = p.ridge_point.si();
  j["parameters"] = p.parameters;
  j["trainable_parameters"] = p.trainable_parameters;  // training only (0 otherwise); LoRA: the adapters'
  j["lora_rank"] = p.lora.rank;
  j["lora_targets"] = p.lora.enabled() ? ordered_json(to_string(p.lora.targets)) : ordered_json();
  j["weight_bytes"] = p.weight_bytes.si();
  j["weight_stream_time_s"] = p.weight_stream_time.si();
  j["memory_footprint_bytes"] = p.memory.total().si();
  j["memory_capacity_bytes"] = p.memory_capacity.si();
  j["memory"] = {{"weights_bytes", p.memory.weights.si()},
                 {"kv_cache_bytes", p.memory.kv_cache.si()},
                 {"activations_bytes", p.memory.activations.si()},
                 {"gradients_bytes", p.memory.gradients.si()},
                 {"optimizer_states_bytes", p.memory.optimizer_states.si()}};
  j["feasible"] = p.feasible;
  j["energy_j"] = p.energy.si();
  j["average_power_w"] = p.average_power().si();
  j["kernels"] = p.kernels;
  j["efficiency_source"] = p.teaching_efficiency > 0 ? "textbook single efficiency"
                                                     : hw.efficiency.source;
  ordered_json ops = ordered_json::array();
  for (const auto& o : p.operators) {
    ops.push_back({{"name", o.name},
                   {"pass", to_string(o.pass)},
                   {"class", to_string(o.cls)},
                   {"count", o.count},
                   {"flops", o.flops.si()},
                   {"bytes", o.bytes.si()},
                   {"arithmetic_intensity_flop_per_byte", o.intensity().si()},
                   {"compute_time_s", o.timing.compute.si()},
                   {"memory_time_s", o.timing.memory.si()},
                   {"overhead_time_s", o.timing.overhead.si()},
                   {"time_s", o.timing.total().si()},
                   {"bottleneck", to_string(o.timing.wall())}});
  }
  j["operators"] = ops;
  j["trace"] = explain(p);
  return j;
}

std::string profile_table(const Profile& p, bool show_operators) {
  const double lat = p.latency.si();
  auto share = [&](Seconds t) { return format_percent(lat > 0 ? t.si() / lat : 0); };
  std::vector<std::vector<std::string>> rows = {
      {"latency", format_time(p.latency), ""},
      {"bottleneck", to_string(p.bottleneck), ""},
      {"  compute-bound time", format_time(p.compute_time), share(p.compute_time)},
      {"  memory-bound time", format_time(p.memory_time), share(p.memory_time)},
      {"  overhead time", format_time(p.overhead_time), share(p.overhead_time)},
      {"throughput", fmt::format("{:.4g} {}", p.throughput, p.throughput_unit), ""},
      {"MFU / HFU", format_percent(p.mfu) + " / " + format_percent(p.hfu), ""},
      {"arithmetic intensity", fmt::format("{:.1f} FLOP/B", p.arithmetic_intensity.si()),
       fmt::format("ridge {:.0f} FLOP/B", p.ridge_point.si())},
      {"memory footprint", format_bytes(p.memory.total()),
       fmt::format("of {} usable ({})", format_bytes(p.memory_capacity), p.feasible ? "fits" : "DOES NOT FIT")},
      {"  weights", format_bytes(p.memory.weights), ""},
      {"  KV cache", format_bytes(p.memory.kv_cache), ""},
      {"  activations", format_bytes(p.memory.activations), ""},
      {"  gradients", format_bytes(p.memory.gradients), ""},
      {"  optimizer states", format_bytes(p.memory.optimizer_states), ""},
      {"energy", format_energy(p.energy), format_power(p.average_power()) + " average"},
  };
  std::string out = fmt::format("{} · {} · {} · batch {} · {} · {}, {}{}{}\n\n", p.model->id,
                                p.hardware->id, to_string(p.phase), p.batch, to_string(p.precision),
                                to_string(p.runtime), to_string(p.fusion),
                                p.attention != AttentionKernel::Flash
                                    ? fmt::format(" · {} attention", to_string(p.attention)) : "",
                                p.teaching_efficiency > 0 ? " · textbook model" : "");
  out += table({"metric", "value", ""}, rows);
  if (show_operators) {
    std::vector<std::vector<std::string>> op_rows;
    for (const auto& o : p.operators)
      op_rows.push_back({o.name, to_string(o.pass), fmt::format("{:g}", o.count),
                         format_flops(o.flops), format_bytes(o.bytes),
                         fmt::format("{:.1f}", o.intensity().si()), format_time(o.timing.total()),
                         share(o.timing.total()), to_string(o.timing.wall())});
    out += '\n';
    out += table({"operator", "pass", "x", "FLOPs", "bytes", "FLOP/B", "time", "share", "wall"}, op_rows);
  }
  out += "\nWhy:\n";
  for (const auto& line : explain(p)) out += "  - " + line + "\n";
  return out;
}

std::string csv_from_rows(const ordered_json& rows) {
  if (!rows.is_array() || rows.empty()) return {};
  // Every row's scalar fields, in first-seen order: rows of one table may differ (a sweep whose
  // runs have a steady state and runs that have none), and no row's values may be dropped.
  std::vector<std::string> columns;
  std::unordered_set<std::string> seen;
  for (const auto& r : rows)
    for (auto it = r.begin(); it != r.end(); ++it)
      if (!it->is_array() && !it->is_object() && seen.insert(it.key()).second) columns.push_back(it.key());
  auto cell = [](const ordered_json& v) -> std::string {
    if (v.is_string()) {
      std::string s = v.get<std::string>();
      if (s.find_first_of(",\"\n") == std::string::npos) return s;
      std::string q = "\"";
      for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
      return q + "\"";
    }
    if (v.is_null()) return "";
    return v.dump();
  };
  std::string out;
  // Appended piecewise: `"," + std::string` trips GCC 12's -Wrestrict false positive.
  for (size_t i = 0; i < columns.size(); ++i) {
    if (i) out += ',';
    out += columns[i];
  }
  out += '\n';
  for (const auto& r : rows) {
    for (size_t i = 0; i < columns.size(); ++i) {
      if (i) out += ',';
      if (r.contains(columns[i])) out += cell(r[columns[i]]);
    }
    out += '\n';
  }
  return out;
}

std::string profile_csv(const Profile& p) {
  ordered_json row = profile_json(p);
  const ordered_json memory = row["memory"];  // a copy: the loop adds keys to `row`
  for (const auto& [k, v] : memory.items()) row["memory_" + k] = v;
  return csv_from_rows(ordered_json::array({row}));
}

namespace {

// The default attention kernel's head-dim table: [{head_dim, relative_rate}, ...] (empty: none).
nlohmann::json head_dim_rates_json(const std::vector<HeadDimRate>& table) {
  nlohmann::json rows = nlohmann::json::array();
  for (const HeadDimRate& r : table)
    rows.push_back({{"head_dim", r.head_dim}, {"relative_rate", r.relative_rate}});
  return rows;
}

}  // namespace

ordered_json hardware_json(const HardwareSpec& hw) {
  ordered_json j;
  j["id"] = hw.id;
  j["name"] = hw.name;
  j["vendor"] = hw.vendor;
  j["tier"] = hw.tier;
  j["kind"] = hw.kind;
  j["year"] = hw.year;
  ordered_json dense = ordered_json::object(), sparse = ordered_json::object();
  for (Precision p : kAllPrecisions) {
    if (hw.supports(p)) dense[std::string(to_string(p))] = hw.peak(p).si();
    if (hw.sparse_peak[index_of(p)].si() > 0)
      sparse[std::string(to_string(p))] = hw.sparse_peak[index_of(p)].si();
  }
  j["dense_peak_flops_per_s"] = dense;
  j["sparse_peak_flops_per_s"] = sparse;
  j["memory_capacity_bytes"] = hw.memory_capacity.si();
  j["memory_usable_bytes"] = hw.memory_usable.si();
  j["memory_bandwidth_bytes_per_s"] = hw.memory_bandwidth.si();
  j["memory_type"] = hw.memory_type;
  j["onchip_memory_bytes"] = hw.onchip_memory.si();
  j["tdp_w"] = hw.tdp.si();
  const BoardPowerLevels power = board_power_levels(hw);
  j["board_power_w"] = {{"idle", power.idle.si()},
                        {"memory_bound", power.memory_bound.si()},
                        {"compute_bound", power.compute_bound.si()},
                        {"calibrated", power.calibrated}};
  if (hw.special_function_rate.si() > 0) j["special_function_ops_per_s"] = hw.special_function_rate.si();
  const Precision ridge_p = hw.supports(Precision::BF16) ? Precision::BF16
                            : hw.supports(Precision::FP16) ? Precision::FP16 : Precision::INT8;
  j["ridge_point_flop_per_byte"] = hw.supports(ridge_p) ? hw.ridge_point(ridge_p).si() : 0.0;
  const auto link_json = [](const Link& l) {
    ordered_json out = {{"name", l.name}, {"per_direction_bytes_per_s", l.per_direction.si()}};
    if (l.reach > 0) out["gpus"] = l.reach;  // devices it joins (an NVLink bridge: 2)
    out["peer_to_peer"] = l.peer_to_peer;
    return out;
  };
  if (hw.interconnect) j["interconnect"] = link_json(*hw.interconnect);
  if (hw.host_link) j["host_link"] = link_json(*hw.host_link);
  if (hw.price) j["price_usd"] = hw.price->si();
  if (hw.rental_rate) j["rental_usd_per_hour"] = units::in_usd_per_hour(*hw.rental_rate);
  j["efficiency"] = {{"memory", hw.efficiency.memory},
                     {"gemm_bf16", hw.efficiency.gemm[index_of(Precision::BF16)]},
                     // 0: no sustained (power-limited) rate known; training steps keep the burst rate
                     {"sustained_gemm_bf16", hw.efficiency.sustained_gemm},
                     {"sustained_gemm_source", hw.efficiency.sustained_gemm_source},
                     {"attention", hw.efficiency.attention},
                     {"flash_attention2", hw.efficiency.flash_attention2},
                     {"flash_attention2_backward", hw.efficiency.flash_attention2_backward},
                     {"attention_head_dim_rates", head_dim_rates_json(hw.efficiency.attention_head_dim_rates)},
                     {"attention_backward", hw.efficiency.attention_backward},
                     {"attention_backward_head_dim_rates",
                      head_dim_rates_json(hw.efficiency.attention_backward_head_dim_rates)},
                     {"kernel_overhead_s", hw.efficiency.kernel_overhead.si()},
                     {"host_dispatch_s", hw.efficiency.host_dispatch.si()},
                     {"conv_host_dispatch_s", hw.efficiency.conv_host_dispatch.si()},
                     {"source", hw.efficiency.source}};
  j["aliases"] = hw.aliases;
  j["sources"] = hw.sources;
  return j;
}

ordered_json model_json(const ModelSpec& m) {
  ordered_json j;
  j["id"] = m.id;
  j["name"] = m.name;
  j["family"] = m.family;
  j["kind"] = to_string(m.kind);
  j["parameters"] = parameter_count(m);
  j["published_parameters"] = m.published_params ? ordered_json(*m.published_params) : ordered_json();
  if (m.is_transformer()) {
    const auto& t = m.tf;
    const auto pb = transformer_params(t, m.kind);
    j["active_parameters"] = pb.active();
    j["layers"] = t.layers;
    j["hidden"] = t.hidden;
    j["heads"] = t.heads;
    j["kv_heads"] = t.kv_heads;
    j["head_dim"] = t.head_dim;
    j["ffn"] = t.ffn;
    j["vocab"] = t.vocab;
    j["max_seq"] = t.max_seq;
    if (t.is_moe()) j["experts"] = {{"routed", t.experts}, {"per_token", t.experts_per_token},
                                    {"shared", t.shared_experts}};
    if (t.is_mla()) j["kv_lora_rank"] = t.kv_lora_rank;
    j["kv_cache_bytes_per_token_bf16"] = kv_cache_bytes_per_token(m, Precision::BF16).si();
  }
  if (m.published_flops) j["published_flops_per_sample"] = *m.published_flops;
  j["aliases"] = m.aliases;
  j["source"] = m.source;
  j["params_source"] = m.params_source;
  return j;
}

std::string hardware_list(const Catalog& c, Format f, const std::string& tier) {
  ordered_json rows = ordered_json::array();
  std::vector<std::vector<std::string>> trows;
  for (const auto& hw : c.all_hardware()) {
    if (!tier.empty() && hw.tier != tier) continue;
    ordered_json j = hardware_json(hw);
    ordered_json flat = {{"id", hw.id},  {"name", hw.name}, {"tier", hw.tier},
                         {"kind", hw.kind},
                         {"memory_capacity_bytes", hw.memory_capacity.si()},
                         {"memory_usable_bytes", hw.memory_usable.si()},
                         {"memory_bandwidth_bytes_per_s", hw.memory_bandwidth.si()},
                         {"tdp_w", hw.tdp.si()},
                         {"ridge_point_flop_per_byte", j["ridge_point_flop_per_byte"]},
                         {"rental_usd_per_hour", hw.rental_rate ? ordered_json(units::in_usd_per_hour(*hw.rental_rate)) : ordered_json()}};
    for (Precision p : kAllPrecisions)
      flat[std::string("peak_") + std::string(to_string(p)) + "_flops_per_s"] = hw.peak(p).si();
    rows.push_back(flat);
    trows.push_back({hw.id, hw.name, hw.tier, peak_summary(hw), format_bytes(hw.memory_capacity),
                     format_bandwidth(hw.memory_bandwidth), format_power(hw.tdp),
                     hw.rental_rate ? fmt::format("${:.2f}", units::in_usd_per_hour(*hw.rental_rate)) : "-"});
  }
  if (f == Format::Json) return ordered_json{{"hardware", rows}}.dump(2) + "\n";
  if (f == Format::Csv) return csv_from_rows(rows);
  return table({"id", "name", "tier", "dense peak", "memory", "bandwidth", "TDP", "$/hour"}, trows);
}

std::string hardware_show(const HardwareSpec& hw, Format f) {
  ordered_json j = hardware_json(hw);
  if (f == Format::Json) return j.dump(2) + "\n";
  if (f == Format::Csv) return csv_from_rows(ordered_json::array({j}));
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"name", hw.name});
  rows.push_back({"vendor / tier / kind", hw.vendor + " / " + hw.tier + " / " + hw.kind});
  for (Precision p : kAllPrecisions) {
    if (!hw.supports(p)) continue;
    std::string sparse = hw.sparse_peak[index_of(p)].si() > 0
                             ? " (2:4 sparse " + format_rate(hw.sparse_peak[index_of(p)]) + ")" : "";
    rows.push_back({std::string("dense peak ") + std::string(to_string(p)), format_rate(hw.peak(p)) + sparse});
  }
  rows.push_back({"memory", format_bytes(hw.memory_capacity) + " " + hw.memory_type + " at " +
                                format_bandwidth(hw.memory_bandwidth)});
  if (hw.memory_usable != hw.memory_capacity)
    rows.push_back({"usable memory", format_bytes(hw.memory_usable) + " (CUDA-visible total, " +
                                         fmt::format("{:.2f} GiB", hw.memory_usable.si() / kGibi) + ")"});
  if (hw.onchip_memory.si() > 0) rows.push_back({"on-chip", format_bytes(hw.onchip_memory) + " " + hw.onchip_kind});
  rows.push_back({"ridge point", fmt::format("{:.0f} FLOP/B", j["ridge_point_flop_per_byte"].get<double>())});
  rows.push_back({"TDP", format_power(hw.tdp)});
  const BoardPowerLevels power = board_power_levels(hw);
  rows.push_back({"board power", fmt::format("{} idle (context held), {} memory-bound, {} compute-bound ({})",
                                             format_power(power.idle), format_power(power.memory_bound),
                                             format_power(power.compute_bound),
                                             power.calibrated ? "from its board_power readings"
                                                              : "published Hopper defaults, docs/PHYSICS.md \"Power\"")});
  if (hw.special_function_rate.si() > 0)
    rows.push_back({"special functions", format_count(hw.special_function_rate.si()) + " ops/s (exp2, log2, rcp)"});
  const auto link_text = [](const Link& l) {
    return l.name + ", " + format_bandwidth(l.per_direction) + " per direction" +
           (l.reach > 0 ? fmt::format(", joins {} devices", l.reach) : "") +
           (l.peer_to_peer ? "" : ", no peer-to-peer (collectives staged in host memory)");
  };
  if (hw.interconnect) rows.push_back({"interconnect", link_text(*hw.interconnect)});
  if (hw.host_link) rows.push_back({"host link", link_text(*hw.host_link)});
  if (hw.price) rows.push_back({"price", fmt::format("${:.0f} {}", hw.price->si(), hw.price_note)});
  if (hw.rental_rate)
    rows.push_back({"rental", fmt::format("${:.3g} per hour: {}", units::in_usd_per_hour(*hw.rental_rate), hw.rental_note)});
  rows.push_back({"efficiency", hw.efficiency.source});
  if (hw.efficiency.sustained_gemm > 0)
    rows.push_back({"sustained matmul",
                    fmt::format("{:.1f}% of the BF16 peak at the power limit, training steps' clock ({})",
                                100 * hw.efficiency.sustained_gemm, hw.efficiency.sustained_gemm_source)});
  if (hw.efficiency.flash_attention2 > 0)
    rows.push_back({"FlashAttention-2",
                    fmt::format("{:.1f}% of peak for its matmuls{} ({})", 100 * hw.efficiency.flash_attention2,
                                hw.efficiency.flash_attention2_backward > 0
                                    ? fmt::format(", {:.1f}% backward", 100 * hw.efficiency.flash_attention2_backward)
                                    : "",
                                hw.efficiency.flash_attention2_source)});
  const auto rates = [](const std::vector<HeadDimRate>& table) {
    std::string text;
    for (const HeadDimRate& r : table)
      text += fmt::format("{}{}: {:.2f}x", text.empty() ? "" : ", ", r.head_dim, r.relative_rate);
    return text;
  };
  const EfficiencyProfile& e = hw.efficiency;
  if (!e.attention_head_dim_rates.empty() || e.attention_backward > 0)
    rows.push_back({"attention vs head dim",
                    rates(e.attention_head_dim_rates) +
                        (e.attention_backward > 0
                             ? fmt::format("; backward {:.2f}x the forward at head dim 128{}", e.attention_backward,
                                           e.attention_backward_head_dim_rates.empty()
                                               ? ""
                                               : " (" + rates(e.attention_backward_head_dim_rates) + ")")
                             : "") +
                        " (" + e.attention_head_dim_source + ")"});
  std::string out = hw.id + "\n\n" + table({"field", "value"}, rows) + "\nSources:\n";
  for (const auto& [k, v] : hw.sources) out += "  - " + k + ": " + v + "\n";
  return out;
}

std::string model_list(const Catalog& c, Format f) {
  ordered_json rows = ordered_json::array();
  std::vector<std::vector<std::string>> trows;
  for (const auto& m : c.all_models()) {
    const double params = parameter_count(m);
    rows.push_back({{"id", m.id}, {"name", m.name}, {"kind", to_string(m.kind)},
                    {"parameters", params}});
    trows.push_back({m.id, m.name, to_string(m.kind), format_count(params)});
  }
  if (f == Format::Json) return ordered_json{{"models", rows}}.dump(2) + "\n";
  if (f == Format::Csv) return csv_from_rows(rows);
  return table({"id", "name", "kind", "parameters"}, trows);
}

std::string model_show(const ModelSpec& m, Format f) {
  ordered_json j = model_json(m);
  if (f == Format::Json) return j.dump(2) + "\n";
  if (f == Format::Csv) return csv_from_rows(ordered_json::array({j}));
  std::vector<std::vector<std::string>> rows;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "id" || it.key() == "source" || it.key() == "params_source") continue;
    const auto& v = *it;
    const bool is_bytes = it.key().find("bytes") != std::string::npos;
    std::string s = v.is_string() ? v.get<std::string>()
                    : (v.is_number() && is_bytes) ? format_bytes(Bytes(v.get<double>()))
                    : (v.is_number() && std::fabs(v.get<double>()) >= 1e5) ? format_count(v.get<double>())
                    : v.dump();
    rows.push_back({it.key(), s});
  }
  std::string sources = "\nSources:\n  - architecture: " + m.source + "\n  - parameters: " +
                        m.params_source + "\n";
  return m.id + "\n\n" + table({"field", "value"}, rows) + sources;
}

}  // namespace mlsysim::cli
