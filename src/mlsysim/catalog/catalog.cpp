#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/catalog/named_entries.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <set>

#include "mlsysim/catalog/embedded.hpp"
#include "mlsysim/catalog/toml_files.hpp"
#include "mlsysim/errors.hpp"

namespace mlsysim {
namespace {

using namespace toml_input;  // NOLINT: the strict field readers shared with the fleet catalog

std::string context_of(const std::string& origin, const std::string& id) {
  return origin + (id.empty() ? "" : " [" + id + "]");
}

double required_number(const toml::table& t, std::string_view key, const std::string& where) {
  if (!t[key]) throw BadInput(where + ": missing number '" + std::string(key) + "'");
  const std::string label = quoted(key);
  return finite_non_negative(number_of(t.get(key), label, where), label, where);
}

// A total the catalog quotes (published_params, published_flops): absent, or a finite number > 0.
std::optional<double> optional_positive(const toml::table& t, std::string_view key, const std::string& where) {
  if (!t[key]) return std::nullopt;
  const double v = number_of(t.get(key), quoted(key), where);
  if (!(v > 0) || !std::isfinite(v))
    throw BadInput(
        fmt::format("{}: '{}' must be a finite number > 0, got {} (leave it out if unknown)", where, key, v));
  return v;
}

// A field that takes one of a fixed set of words: absent -> `fallback`; otherwise the option's
// value, else BadInput listing the options (and the closest, as a suggestion).
template <class T>
struct Option {
  std::string_view name;
  T value;
};

template <class T, size_t N>
T choice(const toml::table& t, std::string_view key, T fallback, const std::array<Option<T>, N>& options,
         const std::string& where) {
  if (!t[key]) return fallback;
  const std::string got = string_or(t, key, where);
  for (const auto& o : options)
    if (o.name == got) return o.value;
  std::vector<std::string> names;
  for (const auto& o : options) names.emplace_back(o.name);
  throw BadInput(one_of_error(key, got, names, where));
}

// ---- Devices ---------------------------------------------------------------------------------

// Sizes carry their unit in the key name (capacity_gb, onchip_kib, ...).
struct SizeSuffix {
  std::string_view name;
  double scale;
};
constexpr SizeSuffix kSizeSuffixes[] = {{"_tb", kTera},  {"_gb", kGiga},  {"_mb", kMega},  {"_kb", kKilo},
                                        {"_tib", kTebi}, {"_gib", kGibi}, {"_mib", kMebi}, {"_kib", kKibi}};

// Sizes carry their unit in the key name; exactly one spelling must be present.
std::optional<Bytes> sized(const toml::table& t, std::string_view stem, const std::string& where,
                           bool required) {
  std::optional<Bytes> found;
  for (const auto& s : kSizeSuffixes) {
    const std::string key = std::string(stem) + std::string(s.name);
    if (!t[key]) continue;
    if (found) throw BadInput(where + ": give only one of " + std::string(stem) + "_{gb,gib,...}");
    const std::string label = quoted(key);
    found = Bytes(finite_non_negative(number_of(t.get(key), label, where), label, where) * s.scale);
  }
  if (!found && required)
    throw BadInput(where + ": missing " + std::string(stem) + "_gb (or _gib/_mb/_mib/_kb/_kib)");
  return found;
}

double required_rate(const toml::table& t, std::string_view key, const RateRange& range, const std::string& where) {
  if (!t[key]) throw BadInput(fmt::format("{}: missing '{}' ({})", where, key, range.unit));
  return plausible_rate(t.get(key), range, quoted(key), where);
}

// `links` (how many) is kept for the reader only: per_direction_gbs is already their total.
// `gpus`: how many devices the link joins (a bridge: 2); absent, every device of a server.
// `p2p`: false where the driver refuses peer-to-peer transfers over it (GeForce host links).
const Keys kLinkKeys = {"name", "per_direction_gbs", "latency_us", "links", "gpus", "p2p"};

std::optional<Link> parse_link(const toml::table* t, const std::string& table, const std::string& where) {
  if (!t) return std::nullopt;
  reject_unknown_keys(*t, kLinkKeys, table, where);
  Link link;
  link.name = string_or(*t, "name", where);
  link.per_direction =
      gigabytes_per_second(required_rate(*t, "per_direction_gbs", kBandwidthRange, where + " " + table));
  link.latency = microseconds(non_negative_or((*t)["latency_us"], 0.0, "'latency_us'", where + " " + table));
  const double reach = non_negative_or((*t)["gpus"], 0.0, "'gpus'", where + " " + table);
  if (reach != std::floor(reach) || reach == 1 || reach > 1024)
    throw BadInput(fmt::format("{} {}: 'gpus' is how many devices the link joins, a whole number in [2, 1024] "
                               "(leave it out for a link that joins every device of a server), got {:g}",
                               where, table, reach));
  link.reach = static_cast<int>(reach);
  link.peer_to_peer = bool_field(*t, "p2p", true, where + " " + table);
  return link;
}

// The precision a key of a per-precision table names ([device.dense_tflops],
// [calibration.gemm_efficiency]), else BadInput listing the precisions and the closest. The same
// precision twice (int8 and INT8 both parse as int8) is refused: the last one would silently win.
Precision precision_key(std::string_view key, const std::string& table, const std::string& where,
                        std::array<std::string, kPrecisionCount>& given_as) {
  const std::string name(key);
  auto p = parse_precision(name);
  if (!p) {
    std::vector<std::string> names;
    for (Precision q : kAllPrecisions) names.emplace_back(to_string(q));
    const std::string best = closest_match(name, names);
    throw BadInput(fmt::format("{}: unknown precision '{}' in {} (known: {}){}", where, name, table,
                               precision_list(), best.empty() ? "" : "; did you mean '" + best + "'?"));
  }
  std::string& seen = given_as[index_of(*p)];
  if (!seen.empty())
    throw BadInput(fmt::format("{}: {} gives {} twice ('{}' and '{}')", where, table, to_string(*p), seen, name));
  seen = name;
  return *p;
}

void parse_peaks(const toml::table* t, const std::string& table, std::array<FlopsPerSecond, kPrecisionCount>& out,
                 const std::string& where) {
  if (!t) return;
  std::array<std::string, kPrecisionCount> given_as{};
  for (auto&& [key, node] : *t) {
    const Precision p = precision_key(key.str(), table, where, given_as);
    out[index_of(p)] = teraflops_per_second(plausible_rate(&node, kPeakRange, quoted(key.str()) + " in " + table,
                                                           where, "leave out a precision the device lacks"));
  }
}

// Documented defaults for devices without calibration data (docs/PHYSICS.md, section "Efficiency defaults and fitted
// values").
EfficiencyProfile default_efficiency(const std::string& kind) {
  EfficiencyProfile e;
  const bool gpu_like = kind == "gpu" || kind == "accelerator" || kind == "tpu";
  e.memory = gpu_like ? 0.85 : (kind == "mcu" ? 0.9 : 0.75);
  e.gemm.fill(gpu_like ? 0.75 : 0.6);
  e.attention = gpu_like ? 0.5 : 0.4;
  e.conv = gpu_like ? 0.55 : 0.45;
  e.vector = 0.5;
  if (kind == "gpu" || kind == "accelerator") {
    e.kernel_overhead = microseconds(4.0);
    e.host_dispatch = microseconds(15.0);
  } else if (kind == "tpu" || kind == "lpu" || kind == "wafer") {
    // Compiled whole-graph execution: no per-op launch, a small per-op scheduling cost.
    e.kernel_overhead = microseconds(1.0);
    e.host_dispatch = microseconds(1.0);
  } else {  // cpu, npu, mcu: interpreter-style runtimes (TFLite, Core ML, TFLM)
    e.kernel_overhead = microseconds(kind == "mcu" ? 20.0 : 10.0);
    e.host_dispatch = e.kernel_overhead;
  }
  e.source = "default for kind '" + kind + "' (docs/PHYSICS.md, section 'Efficiency defaults and fitted values')";
  return e;
}

// Device kinds pick the default efficiency (above) and the engine's integer-first precision order
// (mcu, npu); tiers group `hardware list`.
constexpr std::array<Option<std::string_view>, 8> kDeviceKinds{{{"gpu", "gpu"},
                                                                {"tpu", "tpu"},
                                                                {"npu", "npu"},
                                                                {"cpu", "cpu"},
                                                                {"mcu", "mcu"},
                                                                {"wafer", "wafer"},
                                                                {"lpu", "lpu"},
                                                                {"accelerator", "accelerator"}}};
constexpr std::array<Option<std::string_view>, 5> kTiers{
    {{"cloud", "cloud"}, {"workstation", "workstation"}, {"edge", "edge"}, {"mobile", "mobile"}, {"tiny", "tiny"}}};

const Keys kDeviceKeys = {"id",          "name",   "aliases",      "vendor",    "tier",
                          "kind",        "year",   "compute_units", "dense_tflops", "sparse_tflops",
                          "memory",      "power",  "interconnect", "host_link", "price",
                          "rental",      "sources", "special_function_tops"};

// [device.memory]'s keys: the sizes in each unit spelling, and the rest.
Keys memory_keys() {
  static const std::vector<std::string> sized_keys = [] {  // owns the strings the views point at
    std::vector<std::string> keys;
    for (const char* stem : {"capacity", "onchip"})
      for (const auto& s : kSizeSuffixes) keys.push_back(std::string(stem) + std::string(s.name));
    return keys;
  }();
  Keys keys = {"usable_gib", "bandwidth_gbs", "type", "onchip_kind"};
  keys.insert(keys.end(), sized_keys.begin(), sized_keys.end());
  return keys;
}

// The sub-tables of [[device]] with fixed keys ([device.sources] holds one citation per group, any
// name; [device.*_tflops] hold precisions, checked in parse_peaks).
const std::vector<std::pair<std::string_view, Keys>>& device_sub_tables() {
  static const std::vector<std::pair<std::string_view, Keys>> tables = {
      {"memory", memory_keys()}, {"power", {"tdp_w"}}, {"interconnect", kLinkKeys}, {"host_link", kLinkKeys},
      {"price", {"usd", "note"}}, {"rental", {"usd_per_hour", "note"}}};
  return tables;
}

void check_device_keys(const toml::table& d, const std::string& where) {
  // A sub-table's key written at the top ("tdp_w" without [device.power]) belongs in its table.
  reject_unknown_keys(d, kDeviceKeys, "[[device]]", where, [](std::string_view key) {
    for (const auto& [name, keys] : device_sub_tables())
      if (contains(keys, key)) return "it belongs in [device." + std::string(name) + "]";
    return std::string();
  });
  for (const auto& [name, keys] : device_sub_tables())
    if (const toml::table* sub = d[name].as_table())
      reject_unknown_keys(*sub, keys, "[device." + std::string(name) + "]", where);
}

HardwareSpec parse_device(const toml::table& d, const std::string& origin) {
  HardwareSpec hw;
  hw.id = string_or(d, "id", origin);
  const std::string where = context_of(origin, hw.id);
  if (hw.id.empty()) throw BadInput(origin + ": a [[device]] has no id");
  check_device_keys(d, where);
  hw.name = string_or(d, "name", where, hw.id);
  hw.vendor = string_or(d, "vendor", where);
  hw.tier = std::string(choice(d, "tier", std::string_view(), kTiers, where));
  hw.kind = std::string(choice(d, "kind", std::string_view("gpu"), kDeviceKinds, where));
  hw.aliases = string_list(d, "aliases", where);
  hw.year = int_field(d, "year", 0, where);
  // 0 (or absent): unknown, and GEMMs are then not wave-quantized (physics/efficiency.cpp).
  hw.compute_units = int_field(d, "compute_units", 0, where);
  parse_peaks(d["dense_tflops"].as_table(), "[device.dense_tflops]", hw.dense_peak, where);
  parse_peaks(d["sparse_tflops"].as_table(), "[device.sparse_tflops]", hw.sparse_peak, where);
  if (std::none_of(hw.dense_peak.begin(), hw.dense_peak.end(),
                   [](FlopsPerSecond f) { return f.si() > 0; }))
    throw BadInput(where + ": [device.dense_tflops] needs at least one precision (e.g. bf16 = 989.4)");
  const toml::table* mem = d["memory"].as_table();
  if (!mem) throw BadInput(where + ": missing [device.memory]");
  hw.memory_capacity = *sized(*mem, "capacity", where, true);
  if (!(hw.memory_capacity.si() > 0)) throw BadInput(where + ": the memory capacity must be > 0");
  hw.memory_usable = hw.memory_capacity;
  if ((*mem)["usable_gib"]) {
    const double usable = number_of(mem->get("usable_gib"), "'usable_gib'", where);
    if (!(usable > 0) || gibibytes(usable) > hw.memory_capacity * 1.1)
      throw BadInput(fmt::format("{}: usable_gib must be in (0, 1.1 x the capacity], got {}", where, usable));
    hw.memory_usable = gibibytes(usable);
  }
  // Every step streams something from memory: a zero rate would make its time infinite (NaN shares).
  hw.memory_bandwidth = gigabytes_per_second(required_rate(*mem, "bandwidth_gbs", kBandwidthRange, where));
  hw.memory_type = string_or(*mem, "type", where);
  hw.onchip_memory = sized(*mem, "onchip", where, false).value_or(Bytes{});
  hw.onchip_kind = string_or(*mem, "onchip_kind", where);
  if (hw.onchip_kind.rfind("L2", 0) == 0 || hw.onchip_kind.find("LLC") != std::string::npos)
    hw.last_level_cache = hw.onchip_memory;
  if (auto* p = d["power"].as_table()) {
    hw.tdp = watts(required_number(*p, "tdp_w", where));
    // The energy model scales the TDP: a listed power of zero would make every joule and gram vanish.
    if (!(hw.tdp.si() > 0)) throw BadInput(where + ": 'tdp_w' must be > 0 (leave [device.power] out if unknown)");
  }
  if (d["special_function_tops"])
    hw.special_function_rate =
        teraflops_per_second(plausible_rate(d.get("special_function_tops"), kPeakRange, "'special_function_tops'",
                                            where, "leave it out if not listed"));
  hw.interconnect = parse_link(d["interconnect"].as_table(), "[device.interconnect]", where);
  hw.host_link = parse_link(d["host_link"].as_table(), "[device.host_link]", where);
  if (auto* p = d["price"].as_table()) {
    hw.price = usd(required_number(*p, "usd", where));
    hw.price_note = string_or(*p, "note", where);
  }
  if (auto* r = d["rental"].as_table()) {
    const double rate = required_number(*r, "usd_per_hour", where);
    if (!(rate > 0 && rate <= kMostDeviceHourUsd))
      throw BadInput(fmt::format("{}: [device.rental] usd_per_hour is one device-hour's on-demand price, in "
                                 "(0, {:g}] $, got {:g} (a node's or a rack's price divided by its devices)",
                                 where, kMostDeviceHourUsd, rate));
    hw.rental_rate = units::usd_per_hour(rate);
    hw.rental_note = string_or(*r, "note", where);
    if (!d["sources"]["rental"])  // read below with the other citations
      throw BadInput(where + ": [device.rental] needs its citation in [device.sources] rental");
  }
  if (auto* s = d["sources"].as_table())
    for (auto&& [k, v] : *s) {
      auto str = v.value<std::string>();
      if (!str) throw BadInput(fmt::format("{}: [device.sources] '{}' must be a citation string, got {}", where,
                                           k.str(), describe(&v)));
      hw.sources[std::string(k.str())] = *str;
    }
  for (const char* group : {"compute", "memory"})
    if (!hw.sources.count(group))
      throw BadInput(where + ": [device.sources] must cite '" + std::string(group) + "'");
  if (hw.memory_usable != hw.memory_capacity && !hw.sources.count("usable_memory"))
    throw BadInput(where + ": usable_gib needs a [device.sources] 'usable_memory' citation");
  if (hw.special_function_rate.si() > 0 && !hw.sources.count("special_function"))
    throw BadInput(where + ": special_function_tops needs a [device.sources] 'special_function' citation");
  hw.efficiency = default_efficiency(hw.kind);
  return hw;
}

// ---- Models ----------------------------------------------------------------------------------

constexpr std::array<Option<ModelKind>, 6> kModelKinds{{{"decoder", ModelKind::Decoder},
                                                        {"encoder", ModelKind::Encoder},
                                                        {"encoder-decoder", ModelKind::EncoderDecoder},
                                                        {"cnn", ModelKind::CNN},
                                                        {"dlrm", ModelKind::DLRM},
                                                        {"opaque", ModelKind::Opaque}}};
// "silu" is the SwiGLU MLP's activation as Hugging Face names it.
constexpr std::array<Option<FfnActivation>, 5> kActivations{{{"swiglu", FfnActivation::SwiGLU},
                                                             {"silu", FfnActivation::SwiGLU},
                                                             {"geglu", FfnActivation::GeGLU},
                                                             {"gelu", FfnActivation::GELU},
                                                             {"relu", FfnActivation::ReLU}}};
// true: LayerNorm (weight and bias); false: RMSNorm (weight only).
constexpr std::array<Option<bool>, 2> kNorms{{{"layernorm", true}, {"rmsnorm", false}}};
// true: a learned position table (parameters); the others add none.
constexpr std::array<Option<bool>, 5> kPositions{
    {{"rope", false}, {"learned", true}, {"alibi", false}, {"sinusoidal", false}, {"none", false}}};

const Keys kModelKeys = {"id",     "name",           "aliases",         "family",      "kind",
                         "source", "params_source",  "flops_source",    "published_params", "published_flops"};
const Keys kTransformerKeys = {
    "layers",          "hidden",          "heads",           "kv_heads",         "head_dim",
    "ffn",             "ffn_act",         "vocab",           "tied_embeddings",  "max_seq",
    "default_seq",     "norm",            "pos",             "fused_projection_modules",
    "python_gelu_tanh", "train_dropout",  "bias",            "qkv_bias",         "experts",
    "experts_per_token", "shared_experts", "moe_ffn",        "first_dense_layers", "q_lora_rank",
    "kv_lora_rank",    "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim",     "encoder_layers",
    "decoder_layers",  "encoder_seq",     "audio_conv_stem", "patch_embed",      "classifier",
    "type_vocab",      "pooler",          "sliding_window",  "sliding_window_every", "parallel_block",
    "parallel_block_norms", "qk_norm"};
const Keys kCnnKeys = {"input", "layers"};
const Keys kDlrmKeys = {"dlrm"};
const Keys kOpaqueKeys = {"flops_per_sample", "activation_bytes_per_sample", "kernels_per_sample"};
const Keys kDlrmTableKeys = {"tables",         "rows_per_table", "embedding_dim", "lookups_per_table",
                             "dense_features", "bottom_mlp",     "top_mlp"};

// The keys a model of `kind` reads beyond kModelKeys, and the kinds that read them, for messages.
const Keys& kind_keys(ModelKind kind) {
  switch (kind) {
    case ModelKind::CNN: return kCnnKeys;
    case ModelKind::DLRM: return kDlrmKeys;
    case ModelKind::Opaque: return kOpaqueKeys;
    default: return kTransformerKeys;
  }
}

void check_model_keys(const toml::table& m, ModelKind kind, const std::string& where) {
  Keys known = kModelKeys;
  known.insert(known.end(), kind_keys(kind).begin(), kind_keys(kind).end());
  // A key of another kind (hidden on a cnn) is not misspelt: say which kinds read it.
  reject_unknown_keys(m, known, "[[model]]", where, [kind](std::string_view key) {
    std::string readers;
    for (const auto& o : kModelKinds)
      if (contains(kind_keys(o.value), key)) readers += (readers.empty() ? "" : " | ") + std::string(o.name);
    return readers.empty() ? std::string()
                           : fmt::format("it is not read for {}, only for kind = {}", a_kind_model(kind), readers);
  });
  if (kind == ModelKind::DLRM)
    if (const toml::table* d = m["dlrm"].as_table()) reject_unknown_keys(*d, kDlrmTableKeys, "[model.dlrm]", where);
}

void parse_transformer(const toml::table& m, TransformerSpec& tf, ModelKind kind,
                       const std::string& where) {
  tf.encoder_layers = int_field(m, "encoder_layers", 0, where);
  tf.decoder_layers = int_field(m, "decoder_layers", 0, where);
  tf.layers = int_field(m, "layers", kind == ModelKind::EncoderDecoder ? tf.decoder_layers : 0, where);
  tf.hidden = int_field(m, "hidden", 0, where);
  tf.heads = int_field(m, "heads", 0, where);
  if (tf.layers <= 0 || tf.hidden <= 0 || tf.heads <= 0)
    throw BadInput(where + ": transformers need layers, hidden and heads > 0");
  tf.kv_heads = int_field(m, "kv_heads", tf.heads, where);
  tf.head_dim = m["head_dim"] ? int_field(m, "head_dim", 0, where) : default_head_dim(tf.hidden, tf.heads, where);
  tf.ffn = int_field(m, "ffn", 0, where);
  tf.act = choice(m, "ffn_act", FfnActivation::GELU, kActivations, where);
  tf.vocab = int_field(m, "vocab", 0, where);
  tf.tied_embeddings = bool_field(m, "tied_embeddings", false, where);
  // 0 (or absent): the model's longest sequence is not known, and nothing is checked against it.
  tf.max_seq = int_field(m, "max_seq", 0, where);
  tf.default_seq = int_field(m, "default_seq", 0, where);
  tf.layernorm = choice(m, "norm", true, kNorms, where);
  tf.learned_positions = choice(m, "pos", false, kPositions, where);
  tf.fused_projection_modules = bool_field(m, "fused_projection_modules", false, where);
  tf.python_gelu_tanh = bool_field(m, "python_gelu_tanh", false, where);
  tf.train_dropout = non_negative_or(m["train_dropout"], 0.0, "'train_dropout'", where);
  if (tf.train_dropout >= 1)
    throw BadInput(where + ": train_dropout " + fmt::format("{}", tf.train_dropout) +
                   " is outside [0, 1): it is a probability (GPT-2 uses 0.1)");
  tf.bias = bool_field(m, "bias", false, where);
  tf.qkv_bias = bool_field(m, "qkv_bias", tf.bias, where);
  tf.qk_norm = bool_field(m, "qk_norm", false, where);
  tf.experts = int_field(m, "experts", 0, where);
  tf.experts_per_token = int_field(m, "experts_per_token", 0, where);
  tf.shared_experts = int_field(m, "shared_experts", 0, where);
  tf.moe_ffn = int_field(m, "moe_ffn", tf.ffn, where);
  tf.first_dense_layers = int_field(m, "first_dense_layers", 0, where);
  tf.q_lora_rank = int_field(m, "q_lora_rank", 0, where);
  tf.kv_lora_rank = int_field(m, "kv_lora_rank", 0, where);
  tf.qk_nope_head_dim = int_field(m, "qk_nope_head_dim", 0, where);
  tf.qk_rope_head_dim = int_field(m, "qk_rope_head_dim", 0, where);
  tf.v_head_dim = int_field(m, "v_head_dim", tf.head_dim, where);
  tf.encoder_seq = int_field(m, "encoder_seq", 0, where);
  tf.audio_conv_stem = int_list(m, "audio_conv_stem", where);
  if (!tf.audio_conv_stem.empty() && tf.audio_conv_stem.size() != 2)
    throw BadInput(where + ": audio_conv_stem is [mel_bins, hidden] (Whisper large-v3: [128, 1280]), got " +
                   std::to_string(tf.audio_conv_stem.size()) + " numbers");
  const std::vector<int> patch = int_list(m, "patch_embed", where);
  if (!patch.empty() && patch.size() != 3)
    throw BadInput(where + ": patch_embed is [in_channels, patch, image_size] (ViT-B/16: [3, 16, 224]), got " +
                   std::to_string(patch.size()) + " numbers");
  if (patch.size() == 3) {
    tf.patch_in_channels = patch[0];
    tf.patch_size = patch[1];
    tf.image_size = patch[2];
  }
  tf.classifier = int_field(m, "classifier", 0, where);
  tf.type_vocab = int_field(m, "type_vocab", 0, where);
  tf.pooler = bool_field(m, "pooler", false, where);
  tf.sliding_window = int_field(m, "sliding_window", 0, where);
  tf.sliding_window_every = int_field(m, "sliding_window_every", 0, where);
  tf.parallel_block = bool_field(m, "parallel_block", false, where);
  tf.parallel_block_norms = int_field(m, "parallel_block_norms", 1, where);
  if (tf.parallel_block_norms != 1 && tf.parallel_block_norms != 2)
    throw BadInput(where + ": parallel_block_norms must be 1 (one shared pre-norm, GPT-J) or 2 "
                   "(separate attention and MLP norms, Falcon)");
  check_transformer_shape(tf, kind, where);
}

CnnLayer parse_cnn_row(const toml::array& row, const std::string& where) {
  auto num = [&](size_t i) -> int {
    if (i >= row.size()) throw BadInput(where + ": CNN layer row too short");
    auto v = row[i].value<double>();
    if (!v || *v < 0) throw BadInput(where + ": CNN layer row has a bad number at column " +
                                     std::to_string(i));
    return static_cast<int>(*v);
  };
  // A kernel/stride/window is an int (square) or an [h, w] pair.
  auto pair = [&](size_t i, int& h, int& w) {
    if (i < row.size()) {
      if (auto* arr = row[i].as_array(); arr && arr->size() == 2) {
        h = static_cast<int>(arr->at(0).value_or(1.0));
        w = static_cast<int>(arr->at(1).value_or(1.0));
        return;
      }
    }
    h = w = num(i);
  };
  auto flag = [&](size_t i) { return row.size() > i && num(i) != 0; };
  auto type = row.empty() ? std::optional<std::string>{} : row[0].value<std::string>();
  if (!type) throw BadInput(where + ": CNN layer rows start with a type string");
  CnnLayer l;
  if (*type == "conv") {
    l.type = CnnLayer::Type::Conv;
    l.cin = num(1); l.cout = num(2);
    pair(3, l.kernel_h, l.kernel_w);
    pair(4, l.stride_h, l.stride_w);
    l.h_out = num(5); l.w_out = num(6); l.groups = std::max(1, num(7));
    l.batch_norm = flag(8);
    l.bias = flag(9);
  } else if (*type == "pool") {
    l.type = CnnLayer::Type::Pool;
    l.cin = l.cout = num(1); l.h_out = num(2); l.w_out = num(3);
    pair(4, l.kernel_h, l.kernel_w);
    if (row.size() > 5) pair(5, l.stride_h, l.stride_w);
    else l.stride_h = l.kernel_h, l.stride_w = l.kernel_w;
  } else if (*type == "add") {
    l.type = CnnLayer::Type::Add;
    l.cin = l.cout = num(1); l.h_out = num(2); l.w_out = num(3);
  } else if (*type == "se") {
    l.type = CnnLayer::Type::SqueezeExcite;
    l.cin = l.cout = num(1); l.groups = num(2); l.h_out = num(3); l.w_out = num(4);
  } else if (*type == "fc") {
    l.type = CnnLayer::Type::FullyConnected;
    l.cin = num(1); l.cout = num(2);
  } else {
    throw BadInput(where + ": unknown CNN layer type '" + *type + "' (conv|pool|add|se|fc)");
  }
  return l;
}

ModelSpec parse_model(const toml::table& m, const std::string& origin) {
  ModelSpec model;
  model.id = string_or(m, "id", origin);
  const std::string where = context_of(origin, model.id);
  if (model.id.empty()) throw BadInput(origin + ": a [[model]] has no id");
  model.kind = choice(m, "kind", ModelKind::Decoder, kModelKinds, where);
  check_model_keys(m, model.kind, where);
  model.name = string_or(m, "name", where, model.id);
  model.family = string_or(m, "family", where);
  model.aliases = string_list(m, "aliases", where);
  model.source = string_or(m, "source", where);
  model.params_source = string_or(m, "params_source", where);
  model.flops_source = string_or(m, "flops_source", where);
  model.published_params = optional_positive(m, "published_params", where);
  model.published_flops = optional_positive(m, "published_flops", where);
  switch (model.kind) {
    case ModelKind::Decoder: case ModelKind::Encoder: case ModelKind::EncoderDecoder:
      parse_transformer(m, model.tf, model.kind, where);
      break;
    case ModelKind::CNN: {
      model.input_shape = int_list(m, "input", where);
      auto* rows = m["layers"].as_array();
      if (!rows || rows->empty()) throw BadInput(where + ": a cnn needs a non-empty layers array");
      for (auto& r : *rows) {
        auto* row = r.as_array();
        if (!row) throw BadInput(where + ": each CNN layer is an array row");
        model.cnn_layers.push_back(parse_cnn_row(*row, where));
      }
      break;
    }
    case ModelKind::DLRM: {
      auto* d = m["dlrm"].as_table();
      if (!d) throw BadInput(where + ": a dlrm needs a [model.dlrm] table");
      if (auto* arr = (*d)["rows_per_table"].as_array()) {
        for (auto& e : *arr)
          model.dlrm.rows_per_table.push_back(
              finite_non_negative(number_of(&e, "each of 'rows_per_table'", where), "each of 'rows_per_table'", where));
      } else {
        double rows = required_number(*d, "rows_per_table", where);
        model.dlrm.rows_per_table.assign(int_field(*d, "tables", 1, where), rows);
      }
      model.dlrm.embedding_dim = int_field(*d, "embedding_dim", 0, where);
      model.dlrm.lookups_per_table = int_field(*d, "lookups_per_table", 1, where);
      model.dlrm.dense_features = int_field(*d, "dense_features", 0, where);
      model.dlrm.bottom_mlp = int_list(*d, "bottom_mlp", where);
      model.dlrm.top_mlp = int_list(*d, "top_mlp", where);
      break;
    }
    case ModelKind::Opaque:
      model.opaque.flops_per_sample = required_number(m, "flops_per_sample", where);
      model.opaque.activation_bytes_per_sample =
          required_number(m, "activation_bytes_per_sample", where);
      model.opaque.kernels_per_sample = int_field(m, "kernels_per_sample", 1, where);
      if (!model.published_params) throw BadInput(where + ": opaque models need published_params");
      break;
  }
  return model;
}

int levenshtein(std::string_view a, std::string_view b) {
  std::vector<int> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// The one spec whose id, alias or display name has the loose key of `name` (loose_name); null
// when none does or several do (then the caller's error names the closest).
template <class Spec>
const Spec* loose_match(const std::vector<Spec>& specs, std::string_view name) {
  const std::string wanted = loose_name(name);
  if (wanted.empty()) return nullptr;
  const Spec* found = nullptr;
  for (const Spec& s : specs) {
    bool match = loose_name(s.id) == wanted || loose_name(s.name) == wanted;
    for (const auto& a : s.aliases) match = match || loose_name(a) == wanted;
    if (!match) continue;
    if (found != nullptr) return nullptr;  // ambiguous
    found = &s;
  }
  return found;
}

template <class Spec>
const Spec& lookup(const std::vector<Spec>& specs,
                   const std::unordered_map<std::string, size_t>& index, std::string_view name,
                   const char* what, const char* list_command) {
  if (name.find_first_not_of(" \t") == std::string_view::npos)
    throw BadInput(std::string("the ") + what + " name is empty: give an id (see `mlsysim " + list_command + " list`)");
  auto it = index.find(normalize_name(name));
  if (it != index.end()) return specs[it->second];
  if (const Spec* loose = loose_match(specs, name)) return *loose;
  std::vector<std::string> names;
  for (const auto& [k, v] : index) names.push_back(k);
  std::string msg = std::string("unknown ") + what + " '" + std::string(name) + "'";
  auto best = closest_match(normalize_name(name), names);
  if (!best.empty()) msg += ": did you mean '" + specs[index.at(best)].id + "'?";
  msg += std::string(" (see `mlsysim ") + list_command + " list`)";
  throw BadInput(msg);
}

}  // namespace

std::string normalize_name(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  for (char c : name) {
    if (c == '_' || c == ' ') out.push_back('-');
    else out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  return out;
}

std::string loose_name(std::string_view name) {
  std::string n = normalize_name(name);
  if (const size_t slash = n.rfind('/'); slash != std::string::npos) n = n.substr(slash + 1);
  std::vector<std::string> words;
  for (size_t start = 0; start <= n.size();) {
    const size_t end = std::min(n.find('-', start), n.size());
    if (end > start) words.push_back(n.substr(start, end - start));
    start = end + 1;
  }
  // Vendors and organizations in front of a product name ("NVIDIA H100", "Meta-Llama-3-8B").
  static const std::set<std::string> kVendors = {"nvidia", "amd", "intel", "google", "meta", "apple", "qualcomm"};
  // Fine-tuned variants that keep the base architecture ("-Instruct", "-chat-hf", "-it").
  static const std::set<std::string> kVariants = {"instruct", "chat", "hf", "it", "base"};
  size_t first = 0, last = words.size();
  while (last - first > 1 && kVendors.count(words[first])) ++first;
  while (last - first > 1 && kVariants.count(words[last - 1])) --last;
  std::string out;
  for (size_t i = first; i < last; ++i)
    for (char c : words[i])
      if (std::isalnum(static_cast<unsigned char>(c)) || c == '.') out.push_back(c);
  return out;
}

std::string closest_match(std::string_view wanted, const std::vector<std::string>& candidates) {
  std::string best;
  // Ranked by distance, a prefix match ("llama3" for "llama3-8b") counting as 1; ties go to the
  // fewest real edits ("h10" is h100, not h100-nvl), then to the first candidate.
  std::pair<int, int> best_rank{1 << 30, 1 << 30};
  for (const auto& c : candidates) {
    const int edits = levenshtein(wanted, c);
    const int d = c.rfind(std::string(wanted), 0) == 0 ? std::min(edits, 1) : edits;
    if (std::pair{d, edits} < best_rank) best_rank = {d, edits}, best = c;
  }
  const int tolerance = std::max(2, static_cast<int>(wanted.size()) / 3);
  return best_rank.first <= tolerance ? best : std::string();
}

namespace {

// A language model's embedding and LM head have one row per token; an encoder embeds tokens unless
// it embeds image patches (ViT's patch_embed) or audio frames (Whisper's conv stem) instead.
bool embeds_tokens(const TransformerSpec& tf, ModelKind kind) {
  return kind != ModelKind::Encoder || (tf.patch_size == 0 && tf.audio_conv_stem.empty());
}

// Top-k routing picks k of the routed experts for each token: k in [1, experts], and no k without
// experts (a dense model with experts_per_token set is a typo, not a shape).
void check_expert_routing(const TransformerSpec& tf, const std::string& where) {
  if (tf.experts == 0 && tf.experts_per_token > 0)
    throw BadInput(fmt::format("{}: experts_per_token is {} but the model has no routed experts (experts = 0; "
                               "num_local_experts, n_routed_experts or num_experts in config.json): give the "
                               "expert count, or leave experts_per_token out for a dense model",
                               where, tf.experts_per_token));
  if (tf.experts > 0 && (tf.experts_per_token < 1 || tf.experts_per_token > tf.experts))
    throw BadInput(fmt::format("{}: experts_per_token (top-k; num_experts_per_tok in config.json) must be in "
                               "[1, {}], the routed experts, got {}",
                               where, tf.experts, tf.experts_per_token));
}

}  // namespace

int default_head_dim(int hidden, int heads, const std::string& where) {
  if (heads < 1) throw BadInput(where + ": a transformer needs at least one attention head");
  if (hidden % heads != 0)
    throw BadInput(fmt::format("{}: hidden size {} does not split evenly over {} attention heads ({:.4g} each); "
                               "give 'head_dim' if the model's heads are not hidden / heads wide",
                               where, hidden, heads, static_cast<double>(hidden) / heads));
  return hidden / heads;
}

namespace {

// Ceilings far above every published transformer (hidden <= ~25k, MLP <= ~100k, vocabulary <=
// ~260k, <= ~200 layers): a shape past them is a typo, and refusing it keeps every product of two
// widths, and every ceil(width / tp), inside the engine's 32- and 64-bit arithmetic.
void check_shape_ceilings(const TransformerSpec& tf, const std::string& where) {
  constexpr int kMostWidth = 1 << 24, kMostLayers = 100000, kMostHeads = 1 << 16;
  const struct {
    const char* field;
    long long value;
    long long most;
  } limits[] = {{"hidden", tf.hidden, kMostWidth},
                {"ffn", tf.ffn, kMostWidth},
                {"moe_ffn", tf.moe_ffn, kMostWidth},
                {"vocab", tf.vocab, kMostWidth},
                {"heads x head_dim", static_cast<long long>(tf.heads) * tf.head_dim, kMostWidth},
                {"kv_lora_rank", tf.kv_lora_rank, kMostWidth},
                {"q_lora_rank", tf.q_lora_rank, kMostWidth},
                {"qk_nope_head_dim", tf.qk_nope_head_dim, kMostWidth},
                {"qk_rope_head_dim", tf.qk_rope_head_dim, kMostWidth},
                {"v_head_dim", tf.v_head_dim, kMostWidth},
                {"layers", tf.layers, kMostLayers},
                {"heads", tf.heads, kMostHeads},
                {"experts", tf.experts, kMostHeads},
                {"shared_experts", tf.shared_experts, kMostHeads}};
  for (const auto& l : limits)
    if (l.value > l.most)
      throw BadInput(fmt::format("{}: {} must be at most {} (far above any published model), got {}", where, l.field,
                                 l.most, l.value));
}

}  // namespace

void check_transformer_shape(const TransformerSpec& tf, ModelKind kind, const std::string& where) {
  if (tf.layers < 1 || tf.hidden < 1 || tf.heads < 1)
    throw BadInput(where + ": transformers need layers, hidden and heads > 0");
  check_shape_ceilings(tf, where);
  if (tf.kv_heads < 1 || tf.heads % tf.kv_heads != 0)
    throw BadInput(fmt::format("{}: kv_heads (the key/value heads; num_key_value_heads in config.json) must be "
                               ">= 1 and divide heads ({}), got {} (1: multi-query, {}: multi-head attention)",
                               where, tf.heads, tf.kv_heads, tf.heads));
  if (tf.head_dim < 1) throw BadInput(where + ": head_dim must be >= 1 (hidden / heads by default)");
  if (tf.first_dense_layers > tf.layers)
    throw BadInput(fmt::format("{}: first_dense_layers (first_k_dense_replace in config.json) must be in [0, {}], "
                               "the model's layers, got {}",
                               where, tf.layers, tf.first_dense_layers));
  // Every layer has an MLP: a dense one of width ffn, or experts of width moe_ffn (ffn then sizes
  // only the first_dense_layers).
  if (tf.experts == 0 ? tf.ffn < 1 : (tf.moe_ffn < 1 || (tf.first_dense_layers > 0 && tf.ffn < 1)))
    throw BadInput(where + ": the MLP width must be >= 1 (ffn, or moe_ffn for expert layers; intermediate_size "
                   "and moe_intermediate_size in config.json)");
  check_expert_routing(tf, where);
  if (tf.vocab < 1 && embeds_tokens(tf, kind))
    throw BadInput(fmt::format("{}: vocab (vocab_size in config.json) must be >= 1 for {}, which embeds tokens "
                               "(one embedding{} row per vocabulary entry), got {}{}",
                               where, a_kind_model(kind), kind == ModelKind::Encoder ? "" : " and LM-head",
                               tf.vocab,
                               kind == ModelKind::Encoder
                                   ? " (an encoder that embeds no tokens gives patch_embed or audio_conv_stem)"
                                   : ""));
}

namespace {

// The keys of a `[[calibration]]` entry and of its sub-tables, beside apply_calibrations and
// read_head_dim_rates that read them. A misspelt one ('memroy_efficiency') would otherwise keep the
// device's current value without a word.
const Keys kCalibrationKeys = {"device",
                               "source",
                               "memory_efficiency",
                               "gemm_efficiency",
                               "sustained_gemm_efficiency",
                               "sustained_gemm_source",
                               "attention_efficiency",
                               "attention_half_keys",
                               "attention_tail",
                               "flash_attention2_efficiency",
                               "flash_attention2_source",
                               "flash_attention2_backward_efficiency",
                               "attention_backward_relative_rate",
                               "attention_head_dim_rate",
                               "attention_head_dim_source",
                               "conv_efficiency",
                               "vector_memory_efficiency",
                               "strided_memory_efficiency",
                               "conv_measured",
                               "kernel_overhead_us",
                               "host_dispatch_us",
                               "isolated_call_us",
                               "conv_host_dispatch_us",
                               "tile_m",
                               "tile_n",
                               "power_idle_fraction",
                               "power_memory_fraction",
                               "power_compute_fraction"};
const Keys kHeadDimRateKeys = {"head_dim", "relative_rate", "pass"};
const Keys kConvMeasuredKeys = {"n", "k", "out_pixels", "batch", "tflops"};

// `[[calibration.attention_head_dim_rate]]` rows (head_dim, relative_rate, pass = "forward" or
// "backward"), kept sorted by head dim; they replace any earlier tables.
void read_head_dim_rates(const toml::table& c, std::string source, const std::string& where, EfficiencyProfile& e) {
  std::vector<HeadDimRate> forward, backward;
  for (const toml::table* t : entries(c, "attention_head_dim_rate", where, "calibration")) {
    reject_unknown_keys(*t, kHeadDimRateKeys, "[[calibration.attention_head_dim_rate]]", where);
    const double d = number_of(t->get("head_dim"), "attention_head_dim_rate 'head_dim'", where);
    const double rate = number_of(t->get("relative_rate"), "attention_head_dim_rate 'relative_rate'", where);
    if (!(d > 0) || !(rate > 0 && rate <= 2))
      throw BadInput(fmt::format("{}: attention_head_dim_rate needs head_dim > 0 and relative_rate in (0, 2], got "
                                 "head_dim {} and relative_rate {}",
                                 where, d, rate));
    const std::string pass = string_or(*t, "pass", where, "forward");
    if (pass != "forward" && pass != "backward")
      throw BadInput(where + ": attention_head_dim_rate pass must be \"forward\" or \"backward\", got \"" + pass +
                     "\"");
    (pass == "backward" ? backward : forward).push_back({d, rate});
  }
  for (auto* table : {&forward, &backward})
    std::sort(table->begin(), table->end(), [](auto& a, auto& b) { return a.head_dim < b.head_dim; });
  e.attention_head_dim_rates = std::move(forward);
  e.attention_backward_head_dim_rates = std::move(backward);
  e.attention_head_dim_source = std::move(source);
}

// `[[calibration.conv_measured]]` rows: a timed convolution's implicit-GEMM shape (n output
// channels, k = input channels x taps, output pixels per image), its batch and achieved TFLOP/s.
// Every field is a number > 0: the engine skips a row with a zero, and divides by the batch.
std::vector<MeasuredConv> read_conv_measured(const toml::table& c, const std::string& where) {
  std::vector<MeasuredConv> rows;
  for (const toml::table* t : entries(c, "conv_measured", where, "calibration")) {
    reject_unknown_keys(*t, kConvMeasuredKeys, "[[calibration.conv_measured]]", where);
    auto positive = [&](std::string_view key) {
      const std::string label = "conv_measured " + quoted(key);
      const double v = number_of(t->get(key), label, where);
      if (!(v > 0) || !std::isfinite(v))
        throw BadInput(fmt::format("{}: {} must be a finite number > 0, got {}", where, label, v));
      return v;
    };
    const double n = positive("n"), k = positive("k"), out_pixels = positive("out_pixels"), batch = positive("batch");
    const double tflops = plausible_rate(t->get("tflops"), kPeakRange, "conv_measured 'tflops'", where);
    rows.push_back({n, k, out_pixels, batch, tflops * 1e12});
  }
  return rows;
}

// A GEMM tile edge (tile_m, tile_n): a whole number >= 1; GEMM padding divides by it.
int tile_field(const toml::table& c, std::string_view key, int fallback, const std::string& where) {
  return positive_count(c, key, fallback, where, "a tile edge in elements");
}

}  // namespace

struct CatalogLoader {
  // The embedded files are read: their entries become the ones a --catalog entry may replace.
  static void seal_builtin(Catalog& c) {
    mlsysim::seal_builtin(c.hardware_origin_);
    mlsysim::seal_builtin(c.model_origin_);
  }

  // Efficiency profiles from a parsed `[[calibration]]` document, applied to known devices.
  static void apply_calibrations(Catalog& catalog, const toml::table& doc, const std::string& origin) {
    for (const toml::table* c : entries(doc, "calibration", origin)) {
      const std::string id = string_or(*c, "device", origin);
      const std::string where = context_of(origin, id);
      reject_unknown_keys(*c, kCalibrationKeys, "[[calibration]]", where);
      if (id.empty()) throw BadInput(origin + ": a [[calibration]] names no device (device = \"h100\")");
      auto it = catalog.hardware_index_.find(normalize_name(id));
      if (it == catalog.hardware_index_.end())
        throw BadInput(origin + ": calibration for unknown device '" + id + "'");
      EfficiencyProfile& e = catalog.hardware_[it->second].efficiency;
      // A calibration may be partial (e.g. only a published GEMM ceiling): what it leaves out keeps
      // the device's current value.
      e.memory = fraction_or((*c)["memory_efficiency"], e.memory, "memory_efficiency", where);
      if ((*c)["gemm_efficiency"]) {
        const toml::table* g = (*c)["gemm_efficiency"].as_table();
        if (g == nullptr)
          throw BadInput(fmt::format("{}: 'gemm_efficiency' must be a table of precisions ([calibration."
                                     "gemm_efficiency] with bf16 = 0.78, ...), got {}",
                                     where, describe(c->get("gemm_efficiency"))));
        std::array<std::string, kPrecisionCount> given_as{};
        for (auto&& [k, v] : *g) {
          const Precision p = precision_key(k.str(), "[calibration.gemm_efficiency]", where, given_as);
          e.gemm[index_of(p)] = fraction_or(toml::node_view<const toml::node>(v), -1.0,
                                            "gemm_efficiency." + std::string(k.str()), where);
        }
      }
      if ((*c)["sustained_gemm_efficiency"]) {
        e.sustained_gemm = fraction_or((*c)["sustained_gemm_efficiency"], 0.0, "sustained_gemm_efficiency", where);
        e.sustained_gemm_source = string_or(*c, "sustained_gemm_source", where, origin);
      }
      e.attention = fraction_or((*c)["attention_efficiency"], e.attention, "attention_efficiency", where);
      e.attention_half_keys =
          non_negative_or((*c)["attention_half_keys"], e.attention_half_keys, "attention_half_keys", where);
      e.attention_tail = non_negative_or((*c)["attention_tail"], e.attention_tail, "attention_tail", where);
      if ((*c)["flash_attention2_efficiency"]) {
        e.flash_attention2 =
            fraction_or((*c)["flash_attention2_efficiency"], 0.0, "flash_attention2_efficiency", where);
        e.flash_attention2_source = string_or(*c, "flash_attention2_source", where, origin);
      }
      e.flash_attention2_backward = fraction_or((*c)["flash_attention2_backward_efficiency"],
                                                e.flash_attention2_backward, "flash_attention2_backward_efficiency",
                                                where);
      e.attention_backward = fraction_or((*c)["attention_backward_relative_rate"], e.attention_backward,
                                         "attention_backward_relative_rate", where);
      if ((*c)["attention_head_dim_rate"])
        read_head_dim_rates(*c, string_or(*c, "attention_head_dim_source", where, origin), where, e);
      e.conv = fraction_or((*c)["conv_efficiency"], e.conv, "conv_efficiency", where);
      e.vector_memory = fraction_or((*c)["vector_memory_efficiency"], e.vector_memory, "vector_memory_efficiency",
                                    where);
      e.strided_memory = fraction_or((*c)["strided_memory_efficiency"], e.strided_memory,
                                     "strided_memory_efficiency", where);
      if ((*c)["conv_measured"]) e.conv_measured = read_conv_measured(*c, where);
      auto us = [&](const char* key, Seconds fallback) {
        return microseconds(non_negative_or((*c)[key], in_us(fallback), key, where));
      };
      e.kernel_overhead = us("kernel_overhead_us", e.kernel_overhead);
      e.host_dispatch = us("host_dispatch_us", e.host_dispatch);
      e.isolated_call = us("isolated_call_us", e.isolated_call);
      e.conv_host_dispatch = us("conv_host_dispatch_us", e.conv_host_dispatch);
      e.tile_m = tile_field(*c, "tile_m", e.tile_m, where);
      e.tile_n = tile_field(*c, "tile_n", e.tile_n, where);
      e.power_idle = fraction_or((*c)["power_idle_fraction"], e.power_idle, "power_idle_fraction", where);
      e.power_memory = fraction_or((*c)["power_memory_fraction"], e.power_memory, "power_memory_fraction", where);
      e.power_compute = fraction_or((*c)["power_compute_fraction"], e.power_compute, "power_compute_fraction", where);
      // A partial entry without a source (e.g. only a FlashAttention-2 rate, which cites itself)
      // leaves the profile's main source alone.
      if ((*c)["source"] || e.source.empty()) e.source = string_or(*c, "source", where, origin);
    }
  }
};

void Catalog::add_hardware(HardwareSpec hw, const std::string& origin) {
  insert_named(hardware_, hardware_origin_, hardware_index_, std::move(hw), origin, "hardware");
}
void Catalog::add_model(ModelSpec m, const std::string& origin) {
  insert_named(models_, model_origin_, model_index_, std::move(m), origin, "model");
}


void Catalog::add_toml(std::string_view text, const std::string& origin) {
  const toml::table doc = parse_toml(text, origin);
  reject_unknown_tables(doc, origin);
  for (const toml::table* t : entries(doc, "device", origin)) add_hardware(parse_device(*t, origin), origin);
  for (const toml::table* t : entries(doc, "model", origin)) add_model(parse_model(*t, origin), origin);
  CatalogLoader::apply_calibrations(*this, doc, origin);
}


void Catalog::add_calibration_toml(std::string_view text, const std::string& origin) {
  const toml::table doc = parse_toml(text, origin);
  // A --calibration file holds [[calibration]] entries only: anything else (a misspelt
  // [[calibraton]], a [[device]]) would be read by nothing.
  reject_unknown_keys(doc, {"calibration"}, "a --calibration file (it holds [[calibration]] entries only)", origin);
  CatalogLoader::apply_calibrations(*this, doc, origin);
}

const HardwareSpec& Catalog::hardware(std::string_view name) const {
  return lookup(hardware_, hardware_index_, name, "hardware", "hardware");
}
const ModelSpec& Catalog::model(std::string_view name) const {
  return lookup(models_, model_index_, name, "model", "models");
}

const Catalog& Catalog::builtin() {
  static const Catalog catalog = [] {
    Catalog c;
    // Devices before calibrations (calibrations refer to devices): sort by path kind.
    for (int pass = 0; pass < 2; ++pass)
      for (size_t i = 0; i < kEmbeddedCatalogCount; ++i) {
        std::string path = kEmbeddedCatalog[i].path;
        const bool is_calibration = path.rfind("calibration/", 0) == 0;
        if (is_calibration != (pass == 1)) continue;
        c.add_toml(kEmbeddedCatalog[i].text, "catalog/" + path);
      }
    CatalogLoader::seal_builtin(c);
    return c;
  }();
  return catalog;
}

Catalog Catalog::with_user_dir(const std::string& dir) {
  Catalog c = builtin();
  for (const auto& [path, text] : read_toml_dir(dir, "--catalog")) c.add_toml(text, path);
  return c;
}

std::string a_kind_model(ModelKind k) {
  const std::string kind = to_string(k);
  const bool vowel = kind.find_first_of("aeiou") == 0;
  return (vowel ? "an " : "a ") + kind + " model";
}

const char* to_string(ModelKind k) {
  switch (k) {
    case ModelKind::Decoder: return "decoder";
    case ModelKind::Encoder: return "encoder";
    case ModelKind::EncoderDecoder: return "encoder-decoder";
    case ModelKind::CNN: return "cnn";
    case ModelKind::DLRM: return "dlrm";
    case ModelKind::Opaque: return "opaque";
  }
  return "?";
}

}  // namespace mlsysim
