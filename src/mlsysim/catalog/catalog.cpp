#include "mlsysim/catalog/catalog.hpp"

#include <algorithm>
#include <cctype>
#include <set>

#include "mlsysim/catalog/embedded.hpp"
#include "mlsysim/catalog/toml_files.hpp"
#include "mlsysim/errors.hpp"

namespace mlsysim {
namespace {

std::string context_of(const std::string& origin, const std::string& id) {
  return origin + (id.empty() ? "" : " [" + id + "]");
}

template <class View>
double number_or(const View& v, double fallback) {
  if (auto d = v.template value<double>()) return *d;
  return fallback;
}

// A calibration's fraction of a peak (an efficiency): the value in (0, 1] when `v` is given, else
// `fallback`. `label` names the field in the error.
template <class View>
double fraction_or(const View& v, double fallback, const std::string& label, const std::string& where) {
  if (!v) return fallback;
  const double f = number_or(v, -1.0);
  if (!(f > 0 && f <= 1))
    throw BadInput(where + ": " + label + " must be in (0, 1], got " + std::to_string(f));
  return f;
}

// Rates, sizes and times in the catalog are finite and never negative; `label` names the field.
double finite_non_negative(double x, const std::string& label, const std::string& where) {
  if (!(x >= 0) || !std::isfinite(x))
    throw BadInput(where + ": " + label + " must be a finite, non-negative number, got " + std::to_string(x));
  return x;
}

// A calibration's time or count that may be zero (a launch gap, a host cost, a shape constant): the
// checked value when `v` is given, else `fallback`. Negative would subtract time from a step.
template <class View>
double non_negative_or(const View& v, double fallback, const std::string& label, const std::string& where) {
  if (!v) return fallback;
  return finite_non_negative(number_or(v, -1.0), label, where);
}

double required_number(const toml::table& t, std::string_view key, const std::string& where) {
  auto v = t[key].value<double>();
  if (!v) throw BadInput(where + ": missing number '" + std::string(key) + "'");
  return finite_non_negative(*v, "'" + std::string(key) + "'", where);
}

std::string string_or(const toml::table& t, std::string_view key, std::string fallback = {}) {
  if (auto s = t[key].value<std::string>()) return *s;
  return fallback;
}

std::vector<std::string> string_list(const toml::table& t, std::string_view key) {
  std::vector<std::string> out;
  if (auto arr = t[key].as_array())
    for (auto& e : *arr)
      if (auto s = e.value<std::string>()) out.push_back(*s);
  return out;
}

std::vector<int> int_list(const toml::table& t, std::string_view key) {
  std::vector<int> out;
  if (auto arr = t[key].as_array())
    for (auto& e : *arr)
      if (auto v = e.value<double>()) out.push_back(static_cast<int>(*v));
  return out;
}

// Sizes carry their unit in the key name; exactly one spelling must be present.
std::optional<Bytes> sized(const toml::table& t, std::string_view stem, const std::string& where,
                           bool required) {
  struct Suffix { const char* name; double scale; };
  static constexpr Suffix kSuffixes[] = {{"_tb", kTera},  {"_gb", kGiga},  {"_mb", kMega},
                                         {"_kb", kKilo},  {"_tib", kTebi}, {"_gib", kGibi},
                                         {"_mib", kMebi}, {"_kib", kKibi}};
  std::optional<Bytes> found;
  for (const auto& s : kSuffixes) {
    std::string key = std::string(stem) + s.name;
    if (auto v = t[key].value<double>()) {
      if (found) throw BadInput(where + ": give only one of " + std::string(stem) + "_{gb,gib,...}");
      found = Bytes(finite_non_negative(*v, "'" + key + "'", where) * s.scale);
    }
  }
  if (!found && required)
    throw BadInput(where + ": missing " + std::string(stem) + "_gb (or _gib/_mb/_mib/_kb/_kib)");
  return found;
}

std::optional<Link> parse_link(const toml::table* t, const std::string& where) {
  if (!t) return std::nullopt;
  Link link;
  link.name = string_or(*t, "name");
  link.per_direction = gigabytes_per_second(required_number(*t, "per_direction_gbs", where));
  link.latency = microseconds(number_or((*t)["latency_us"], 0.0));
  return link;
}

void parse_peaks(const toml::table* t, std::array<FlopsPerSecond, kPrecisionCount>& out,
                 const std::string& where) {
  if (!t) return;
  for (auto&& [key, node] : *t) {
    auto p = parse_precision(key.str());
    if (!p) throw BadInput(where + ": unknown precision '" + std::string(key.str()) + "'");
    auto v = node.value<double>();
    if (!v || *v < 0) throw BadInput(where + ": peak '" + std::string(key.str()) + "' must be >= 0");
    out[index_of(*p)] = teraflops_per_second(*v);
  }
}

// Documented defaults for devices without calibration data (docs/PHYSICS.md, section "Efficiency defaults and fitted values").
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

HardwareSpec parse_device(const toml::table& d, const std::string& origin) {
  HardwareSpec hw;
  hw.id = string_or(d, "id");
  const std::string where = context_of(origin, hw.id);
  if (hw.id.empty()) throw BadInput(origin + ": a [[device]] has no id");
  hw.name = string_or(d, "name", hw.id);
  hw.vendor = string_or(d, "vendor");
  hw.tier = string_or(d, "tier");
  hw.kind = string_or(d, "kind", "gpu");
  hw.aliases = string_list(d, "aliases");
  hw.year = static_cast<int>(number_or(d["year"], 0));
  hw.compute_units = static_cast<int>(number_or(d["compute_units"], 0));
  parse_peaks(d["dense_tflops"].as_table(), hw.dense_peak, where);
  parse_peaks(d["sparse_tflops"].as_table(), hw.sparse_peak, where);
  if (std::none_of(hw.dense_peak.begin(), hw.dense_peak.end(),
                   [](FlopsPerSecond f) { return f.si() > 0; }))
    throw BadInput(where + ": [device.dense_tflops] needs at least one precision");
  const toml::table* mem = d["memory"].as_table();
  if (!mem) throw BadInput(where + ": missing [device.memory]");
  hw.memory_capacity = *sized(*mem, "capacity", where, true);
  if (!(hw.memory_capacity.si() > 0)) throw BadInput(where + ": the memory capacity must be > 0");
  hw.memory_usable = hw.memory_capacity;
  if (auto usable = (*mem)["usable_gib"].value<double>()) {
    if (!(*usable > 0) || gibibytes(*usable) > hw.memory_capacity * 1.1)
      throw BadInput(where + ": usable_gib must be in (0, 1.1 x the capacity], got " + std::to_string(*usable));
    hw.memory_usable = gibibytes(*usable);
  }
  hw.memory_bandwidth = gigabytes_per_second(required_number(*mem, "bandwidth_gbs", where));
  // Every step streams something from memory: a zero rate would make its time infinite (NaN shares).
  if (!(hw.memory_bandwidth.si() > 0)) throw BadInput(where + ": 'bandwidth_gbs' must be > 0");
  hw.memory_type = string_or(*mem, "type");
  hw.onchip_memory = sized(*mem, "onchip", where, false).value_or(Bytes{});
  hw.onchip_kind = string_or(*mem, "onchip_kind");
  if (hw.onchip_kind.rfind("L2", 0) == 0 || hw.onchip_kind.find("LLC") != std::string::npos)
    hw.last_level_cache = hw.onchip_memory;
  if (auto* p = d["power"].as_table()) {
    hw.tdp = watts(required_number(*p, "tdp_w", where));
    // The energy model scales the TDP: a listed power of zero would make every joule and gram vanish.
    if (!(hw.tdp.si() > 0)) throw BadInput(where + ": 'tdp_w' must be > 0 (leave [device.power] out if unknown)");
  }
  if (auto sfu = d["special_function_tops"].value<double>()) {
    if (!(*sfu > 0)) throw BadInput(where + ": special_function_tops must be > 0");
    hw.special_function_rate = teraflops_per_second(*sfu);
  }
  hw.interconnect = parse_link(d["interconnect"].as_table(), where + " interconnect");
  hw.host_link = parse_link(d["host_link"].as_table(), where + " host_link");
  if (auto* p = d["price"].as_table()) {
    hw.price = usd(required_number(*p, "usd", where));
    hw.price_note = string_or(*p, "note");
  }
  if (auto* s = d["sources"].as_table())
    for (auto&& [k, v] : *s)
      if (auto str = v.value<std::string>()) hw.sources[std::string(k.str())] = *str;
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

FfnActivation parse_activation(const std::string& s, const std::string& where) {
  if (s == "swiglu" || s == "silu") return FfnActivation::SwiGLU;
  if (s == "geglu") return FfnActivation::GeGLU;
  if (s == "gelu" || s.empty()) return FfnActivation::GELU;
  if (s == "relu") return FfnActivation::ReLU;
  throw BadInput(where + ": ffn_act must be swiglu|geglu|gelu|relu, got '" + s + "'");
}

ModelKind parse_kind(const std::string& s, const std::string& where) {
  if (s == "decoder") return ModelKind::Decoder;
  if (s == "encoder") return ModelKind::Encoder;
  if (s == "encoder-decoder") return ModelKind::EncoderDecoder;
  if (s == "cnn") return ModelKind::CNN;
  if (s == "dlrm") return ModelKind::DLRM;
  if (s == "opaque") return ModelKind::Opaque;
  throw BadInput(where + ": kind must be decoder|encoder|encoder-decoder|cnn|dlrm|opaque, got '" +
                 s + "'");
}

// A count or a shape: absent -> `fallback`; present -> a whole number in [0, 2^31) (2.5 layers or
// -5 experts are not shapes, whatever a cast would make of them).
int int_field(const toml::table& t, std::string_view key, int fallback, const std::string& where) {
  if (!t[key]) return fallback;
  const double v = number_or(t[key], -1.0);
  if (!(v >= 0) || v != std::floor(v) || v > std::numeric_limits<int>::max())
    throw BadInput(where + ": '" + std::string(key) + "' must be a whole number >= 0, got " +
                   (t[key].is_number() ? std::to_string(v) : std::string("a non-number")));
  return static_cast<int>(v);
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
  tf.head_dim = int_field(m, "head_dim", tf.hidden / tf.heads, where);
  tf.ffn = int_field(m, "ffn", 0, where);
  tf.act = parse_activation(string_or(m, "ffn_act"), where);
  tf.vocab = static_cast<long>(number_or(m["vocab"], 0));
  tf.tied_embeddings = m["tied_embeddings"].value_or(false);
  tf.max_seq = int_field(m, "max_seq", 0, where);
  tf.default_seq = int_field(m, "default_seq", 0, where);
  tf.layernorm = string_or(m, "norm", "layernorm") == "layernorm";
  tf.learned_positions = string_or(m, "pos") == "learned";
  tf.fused_projection_modules = m["fused_projection_modules"].value_or(false);
  tf.python_gelu_tanh = m["python_gelu_tanh"].value_or(false);
  tf.train_dropout = number_or(m["train_dropout"], 0.0);
  if (tf.train_dropout < 0 || tf.train_dropout >= 1)
    throw BadInput(where + ": train_dropout " + std::to_string(tf.train_dropout) +
                   " is outside [0, 1): it is a probability (GPT-2 uses 0.1)");
  tf.bias = m["bias"].value_or(false);
  tf.qkv_bias = m["qkv_bias"].value_or(tf.bias);
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
  tf.audio_conv_stem = int_list(m, "audio_conv_stem");
  auto patch = int_list(m, "patch_embed");
  if (patch.size() == 3) {
    tf.patch_in_channels = patch[0];
    tf.patch_size = patch[1];
    tf.image_size = patch[2];
  }
  tf.classifier = int_field(m, "classifier", 0, where);
  tf.type_vocab = int_field(m, "type_vocab", 0, where);
  tf.pooler = m["pooler"].value_or(false);
  tf.sliding_window = int_field(m, "sliding_window", 0, where);
  tf.sliding_window_every = int_field(m, "sliding_window_every", 0, where);
  tf.parallel_block = m["parallel_block"].value_or(false);
  tf.parallel_block_norms = int_field(m, "parallel_block_norms", 1, where);
  if (tf.parallel_block_norms != 1 && tf.parallel_block_norms != 2)
    throw BadInput(where + ": parallel_block_norms must be 1 (one shared pre-norm, GPT-J) or 2 "
                   "(separate attention and MLP norms, Falcon)");
  if (tf.experts > 0 && (tf.experts_per_token <= 0 || tf.experts_per_token > tf.experts))
    throw BadInput(where + ": experts_per_token must be in [1, experts]");
  if (tf.kv_heads < 1 || tf.heads % tf.kv_heads != 0)
    throw BadInput(where + ": kv_heads must be >= 1 and divide heads (" + std::to_string(tf.heads) + ")");
  // Every layer has an MLP: a dense one of width ffn, or experts of width moe_ffn (ffn then sizes
  // only the first_dense_layers).
  if (tf.experts == 0 ? tf.ffn < 1 : (tf.moe_ffn < 1 || (tf.first_dense_layers > 0 && tf.ffn < 1)))
    throw BadInput(where + ": the MLP width must be >= 1 (ffn, or moe_ffn for expert layers)");
  if (tf.head_dim < 1) throw BadInput(where + ": head_dim must be >= 1 (hidden / heads by default)");
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
  model.id = string_or(m, "id");
  const std::string where = context_of(origin, model.id);
  if (model.id.empty()) throw BadInput(origin + ": a [[model]] has no id");
  model.name = string_or(m, "name", model.id);
  model.family = string_or(m, "family");
  model.aliases = string_list(m, "aliases");
  model.kind = parse_kind(string_or(m, "kind", "decoder"), where);
  model.source = string_or(m, "source");
  model.params_source = string_or(m, "params_source");
  model.flops_source = string_or(m, "flops_source");
  if (auto v = m["published_params"].value<double>()) model.published_params = *v;
  if (auto v = m["published_flops"].value<double>()) model.published_flops = *v;
  switch (model.kind) {
    case ModelKind::Decoder: case ModelKind::Encoder: case ModelKind::EncoderDecoder:
      parse_transformer(m, model.tf, model.kind, where);
      break;
    case ModelKind::CNN: {
      model.input_shape = int_list(m, "input");
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
        for (auto& e : *arr) model.dlrm.rows_per_table.push_back(e.value_or(0.0));
      } else {
        double rows = required_number(*d, "rows_per_table", where);
        model.dlrm.rows_per_table.assign(int_field(*d, "tables", 1, where), rows);
      }
      model.dlrm.embedding_dim = int_field(*d, "embedding_dim", 0, where);
      model.dlrm.lookups_per_table = int_field(*d, "lookups_per_table", 1, where);
      model.dlrm.dense_features = int_field(*d, "dense_features", 0, where);
      model.dlrm.bottom_mlp = int_list(*d, "bottom_mlp");
      model.dlrm.top_mlp = int_list(*d, "top_mlp");
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

template <class Spec>
void insert(std::vector<Spec>& specs, std::unordered_map<std::string, size_t>& index, Spec spec) {
  auto existing = index.find(normalize_name(spec.id));
  size_t slot;
  if (existing != index.end() && specs[existing->second].id == spec.id) {
    slot = existing->second;  // a user entry replaces the built-in one with the same id
    specs[slot] = std::move(spec);
  } else {
    slot = specs.size();
    specs.push_back(std::move(spec));
  }
  const Spec& s = specs[slot];
  index[normalize_name(s.id)] = slot;
  // Also accept the id without punctuation ("llama38b" is not needed, but "llama3_8b" is).
  for (const auto& a : s.aliases) index.emplace(normalize_name(a), slot);
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
  int best_distance = 1 << 30;
  for (const auto& c : candidates) {
    int d = levenshtein(wanted, c);
    // A prefix match ("llama3" for "llama3-8b") counts as close.
    if (c.rfind(std::string(wanted), 0) == 0) d = std::min(d, 1);
    if (d < best_distance) best_distance = d, best = c;
  }
  const int tolerance = std::max(2, static_cast<int>(wanted.size()) / 3);
  return best_distance <= tolerance ? best : std::string();
}

void Catalog::add_hardware(HardwareSpec hw) { insert(hardware_, hardware_index_, std::move(hw)); }
void Catalog::add_model(ModelSpec m) { insert(models_, model_index_, std::move(m)); }

namespace {

// `[[calibration.attention_head_dim_rate]]` rows (head_dim, relative_rate, pass = "forward" or
// "backward"), kept sorted by head dim; they replace any earlier tables.
void read_head_dim_rates(const toml::array& rows, std::string source, const std::string& where,
                         EfficiencyProfile& e) {
  std::vector<HeadDimRate> forward, backward;
  for (auto&& r : rows) {
    auto* t = r.as_table();
    if (!t) continue;
    const double d = number_or((*t)["head_dim"], 0), rate = number_or((*t)["relative_rate"], 0);
    if (d <= 0 || rate <= 0 || rate > 2)
      throw BadInput(where + ": attention_head_dim_rate needs head_dim > 0 and relative_rate in (0, 2], got head_dim " +
                     std::to_string(d) + " and relative_rate " + std::to_string(rate));
    const std::string pass = string_or(*t, "pass", "forward");
    if (pass != "forward" && pass != "backward")
      throw BadInput(where + ": attention_head_dim_rate pass must be \"forward\" or \"backward\", got \"" + pass + "\"");
    (pass == "backward" ? backward : forward).push_back({d, rate});
  }
  for (auto* table : {&forward, &backward})
    std::sort(table->begin(), table->end(), [](auto& a, auto& b) { return a.head_dim < b.head_dim; });
  e.attention_head_dim_rates = std::move(forward);
  e.attention_backward_head_dim_rates = std::move(backward);
  e.attention_head_dim_source = std::move(source);
}

}  // namespace

struct CatalogLoader {
  // Efficiency profiles from a parsed `[[calibration]]` document, applied to known devices.
  static void apply_calibrations(Catalog& catalog, const toml::table& doc, const std::string& origin) {
    auto* entries = doc["calibration"].as_array();
    if (!entries) return;
    for (auto& node : *entries) {
      auto* c = node.as_table();
      if (!c) continue;
      const std::string id = string_or(*c, "device");
      auto it = catalog.hardware_index_.find(normalize_name(id));
      if (it == catalog.hardware_index_.end())
        throw BadInput(origin + ": calibration for unknown device '" + id + "'");
      EfficiencyProfile& e = catalog.hardware_[it->second].efficiency;
      const std::string where = context_of(origin, id);
      // A calibration may be partial (e.g. only a published GEMM ceiling): what it leaves out keeps
      // the device's current value.
      e.memory = fraction_or((*c)["memory_efficiency"], e.memory, "memory_efficiency", where);
      if (auto* g = (*c)["gemm_efficiency"].as_table())
        for (auto&& [k, v] : *g)
          if (auto p = parse_precision(k.str()))
            e.gemm[index_of(*p)] = fraction_or(toml::node_view<const toml::node>(v), -1.0,
                                               "gemm_efficiency." + std::string(k.str()), where);
      e.attention = fraction_or((*c)["attention_efficiency"], e.attention, "attention_efficiency", where);
      e.attention_half_keys =
          non_negative_or((*c)["attention_half_keys"], e.attention_half_keys, "attention_half_keys", where);
      e.attention_tail = non_negative_or((*c)["attention_tail"], e.attention_tail, "attention_tail", where);
      if ((*c)["flash_attention2_efficiency"]) {
        e.flash_attention2 =
            fraction_or((*c)["flash_attention2_efficiency"], 0.0, "flash_attention2_efficiency", where);
        e.flash_attention2_source = string_or(*c, "flash_attention2_source", origin);
      }
      e.flash_attention2_backward = fraction_or((*c)["flash_attention2_backward_efficiency"],
                                                e.flash_attention2_backward, "flash_attention2_backward_efficiency",
                                                where);
      e.attention_backward = fraction_or((*c)["attention_backward_relative_rate"], e.attention_backward,
                                         "attention_backward_relative_rate", where);
      if (auto* rows = (*c)["attention_head_dim_rate"].as_array())
        read_head_dim_rates(*rows, string_or(*c, "attention_head_dim_source", origin), where, e);
      e.conv = fraction_or((*c)["conv_efficiency"], e.conv, "conv_efficiency", where);
      e.vector_memory = fraction_or((*c)["vector_memory_efficiency"], e.vector_memory, "vector_memory_efficiency",
                                    where);
      e.strided_memory = fraction_or((*c)["strided_memory_efficiency"], e.strided_memory,
                                     "strided_memory_efficiency", where);
      if (auto* rows = (*c)["conv_measured"].as_array()) {
        e.conv_measured.clear();
        for (auto&& r : *rows)
          if (auto* t = r.as_table())
            e.conv_measured.push_back({number_or((*t)["n"], 0), number_or((*t)["k"], 0),
                                       number_or((*t)["out_pixels"], 0), number_or((*t)["batch"], 0),
                                       number_or((*t)["tflops"], 0) * 1e12});
      }
      auto us = [&](const char* key, Seconds fallback) {
        return microseconds(non_negative_or((*c)[key], in_us(fallback), key, where));
      };
      e.kernel_overhead = us("kernel_overhead_us", e.kernel_overhead);
      e.host_dispatch = us("host_dispatch_us", e.host_dispatch);
      e.isolated_call = us("isolated_call_us", e.isolated_call);
      e.conv_host_dispatch = us("conv_host_dispatch_us", e.conv_host_dispatch);
      e.tile_m = int_field(*c, "tile_m", e.tile_m, where);
      e.tile_n = int_field(*c, "tile_n", e.tile_n, where);
      // A partial entry without a source (e.g. only a FlashAttention-2 rate, which cites itself)
      // leaves the profile's main source alone.
      if ((*c)["source"] || e.source.empty()) e.source = string_or(*c, "source", origin);
    }
  }
};

void Catalog::add_toml(std::string_view text, const std::string& origin) {
  const toml::table doc = parse_toml(text, origin);
  if (auto* devices = doc["device"].as_array())
    for (auto& d : *devices)
      if (auto* t = d.as_table()) add_hardware(parse_device(*t, origin));
  if (auto* models = doc["model"].as_array())
    for (auto& m : *models)
      if (auto* t = m.as_table()) add_model(parse_model(*t, origin));
  if (doc["calibration"]) CatalogLoader::apply_calibrations(*this, doc, origin);
}


void Catalog::add_calibration_toml(std::string_view text, const std::string& origin) {
  CatalogLoader::apply_calibrations(*this, parse_toml(text, origin), origin);
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
