// Hugging Face `config.json` -> ModelSpec, so users can model their own architecture.
// Field names follow transformers' configuration classes (LlamaConfig, MistralConfig,
// MixtralConfig, Qwen2Config, GemmaConfig, Gemma2Config, DeepseekV3Config; GPTJConfig,
// FalconConfig and GPTNeoXConfig for the parallel-block families).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/errors.hpp"

namespace mlsysim {
namespace {

// A count field: absent or null -> `fallback`; present -> a whole number in [0, 2^31) (1e20, 2.5 or
// -8 are not shapes, whatever get<int> makes of them). `path` names the file in the error.
int get_int(const nlohmann::json& j, const char* key, int fallback, const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number()) throw BadInput(fmt::format("{}: '{}' must be a number, got {}", path, key, it->dump()));
  const double v = it->get<double>();
  if (v < 0 || v != std::floor(v) || v > std::numeric_limits<int>::max())
    throw BadInput(fmt::format("{}: '{}' must be a whole number in [0, 2^31), got {}", path, key, it->dump()));
  return static_cast<int>(v);
}

int require_int(const nlohmann::json& j, const char* key, const std::string& path) {
  const int v = get_int(j, key, -1, path);
  if (v <= 0) throw BadInput(fmt::format("{}: missing or non-positive '{}'", path, key));
  return v;
}

bool has(const nlohmann::json& j, const char* key) { return j.contains(key) && !j[key].is_null(); }

// The longest sequence the model takes (max_position_embeddings, n_positions): absent -> `fallback`
// (0: not known); given, it must be >= 1, since 0 would refuse every prompt.
int max_positions(const nlohmann::json& j, const char* key, int fallback, const std::string& path) {
  if (has(j, key) && j[key].is_number() && !(j[key].get<double>() >= 1))
    throw BadInput(fmt::format("{}: '{}' must be >= 1 (the longest sequence the model takes), got {}", path, key,
                               j[key].dump()));
  return get_int(j, key, fallback, path);
}

bool get_bool(const nlohmann::json& j, const char* key, bool fallback, const std::string& path) {
  if (!has(j, key)) return fallback;
  if (!j[key].is_boolean())
    throw BadInput(fmt::format("{}: '{}' must be true or false, got {}", path, key, j[key].dump()));
  return j[key].get<bool>();
}

std::string get_string(const nlohmann::json& j, const char* key, const std::string& fallback,
                       const std::string& path) {
  if (!has(j, key)) return fallback;
  if (!j[key].is_string()) throw BadInput(fmt::format("{}: '{}' must be a string, got {}", path, key, j[key].dump()));
  return j[key].get<std::string>();
}

// transformers' ACT2FN names for SiLU and the GELU variants (erf and tanh forms, clipped, quick):
// what the engine's MLPs (SwiGLU, GeGLU, plain GELU) can stand for.
constexpr const char* kSiluNames[] = {"silu", "swish"};
constexpr const char* kGeluNames[] = {"gelu",          "gelu_new", "gelu_fast",  "gelu_pytorch_tanh", "gelu_python",
                                      "gelu_accurate", "gelu_10",  "quick_gelu"};

template <size_t N>
bool is_one_of(const std::string& s, const char* const (&names)[N]) {
  return std::any_of(std::begin(names), std::end(names), [&](const char* n) { return s == n; });
}

template <size_t N>
std::string joined(const char* const (&names)[N]) {
  std::string out;
  for (const char* n : names) out += (out.empty() ? "" : ", ") + std::string(n);
  return out;
}

// The gated MLP's activation, from the field `key`: SiLU gates SwiGLU, a GELU variant GeGLU.
FfnActivation gated_activation(const std::string& act, const char* key, const std::string& path) {
  if (is_one_of(act, kSiluNames)) return FfnActivation::SwiGLU;
  if (is_one_of(act, kGeluNames)) return FfnActivation::GeGLU;
  throw BadInput(fmt::format("{}: '{}' = \"{}\" is not supported: the gated MLP's activation must be one of {} "
                             "(SwiGLU) or {} (GeGLU)",
                             path, key, act, joined(kSiluNames), joined(kGeluNames)));
}

// The parallel-block families' plain MLP is timed as GELU: refuse another activation in `key`.
void require_gelu(const nlohmann::json& j, const char* key, const std::string& path) {
  const std::string act = get_string(j, key, "gelu", path);
  if (!is_one_of(act, kGeluNames))
    throw BadInput(fmt::format("{}: '{}' = \"{}\" is not supported: this family's MLP is modeled as a GELU, one "
                               "of {}",
                               path, key, act, joined(kGeluNames)));
}

// GPT-J, Falcon and GPT-NeoX: attention and a plain (ungated) GELU MLP in parallel from LayerNorm,
// each with its own key names. Returns false for the other families.
bool parse_parallel_block_family(const nlohmann::json& j, const std::string& type, const std::string& path,
                                 TransformerSpec& tf) {
  if (type == "gptj") {  // GPTJConfig: x + attn(ln_1(x)) + mlp(ln_1(x))
    tf.layers = require_int(j, "n_layer", path);
    tf.hidden = require_int(j, "n_embd", path);
    tf.heads = require_int(j, "n_head", path);
    tf.kv_heads = tf.heads;
    tf.ffn = get_int(j, "n_inner", 4 * tf.hidden, path);
    tf.max_seq = max_positions(j, "n_positions", 0, path);
    require_gelu(j, "activation_function", path);
    tf.bias = true;  // fc_in / fc_out biases; q/k/v/out projections have none
    tf.parallel_block_norms = 1;
  } else if (type == "falcon") {  // FalconConfig
    tf.layers = require_int(j, "num_hidden_layers", path);
    tf.hidden = require_int(j, "hidden_size", path);
    tf.heads = require_int(j, "num_attention_heads", path);
    const bool new_arch = get_bool(j, "new_decoder_architecture", false, path);
    tf.kv_heads = new_arch ? get_int(j, "num_kv_heads", tf.heads, path)
                           : (get_bool(j, "multi_query", true, path) ? 1 : tf.heads);
    tf.ffn = get_int(j, "ffn_hidden_size", 4 * tf.hidden, path);
    tf.max_seq = max_positions(j, "max_position_embeddings", 2048, path);
    require_gelu(j, "activation", path);
    tf.bias = get_bool(j, "bias", false, path);
    if (!new_arch && !get_bool(j, "parallel_attn", true, path))
      throw BadInput(path + ": Falcon with parallel_attn false and the old decoder architecture is not supported");
    tf.parallel_block_norms = new_arch ? 2 : 1;  // ln_attn + ln_mlp, or one input_layernorm
  } else if (type == "gpt_neox") {  // GPTNeoXConfig (Pythia)
    tf.layers = require_int(j, "num_hidden_layers", path);
    tf.hidden = require_int(j, "hidden_size", path);
    tf.heads = require_int(j, "num_attention_heads", path);
    tf.kv_heads = tf.heads;
    tf.ffn = require_int(j, "intermediate_size", path);
    tf.max_seq = max_positions(j, "max_position_embeddings", 0, path);
    require_gelu(j, "hidden_act", path);
    tf.bias = true;
    if (!get_bool(j, "use_parallel_residual", true, path))
      throw BadInput(path + ": GPT-NeoX with use_parallel_residual false is not supported");
    tf.parallel_block_norms = 2;  // input_layernorm for attention, post_attention_layernorm for MLP
  } else {
    return false;
  }
  tf.head_dim = default_head_dim(tf.hidden, tf.heads, path);
  tf.vocab = require_int(j, "vocab_size", path);
  tf.tied_embeddings = get_bool(j, "tie_word_embeddings", false, path);
  tf.act = FfnActivation::GELU;
  tf.layernorm = true;
  tf.qkv_bias = type == "gpt_neox" || (type == "falcon" && tf.bias);
  tf.parallel_block = true;
  return true;
}

// Llama and the families that share its key names (gated MLP, RMSNorm, optional MoE and MLA).
void parse_llama_like_family(const nlohmann::json& j, const std::string& type, const std::string& path,
                             TransformerSpec& tf) {
  tf.layers = require_int(j, "num_hidden_layers", path);
  tf.hidden = require_int(j, "hidden_size", path);
  tf.heads = require_int(j, "num_attention_heads", path);
  tf.kv_heads = get_int(j, "num_key_value_heads", tf.heads, path);
  tf.head_dim = has(j, "head_dim") ? get_int(j, "head_dim", 0, path) : default_head_dim(tf.hidden, tf.heads, path);
  tf.ffn = require_int(j, "intermediate_size", path);
  tf.vocab = require_int(j, "vocab_size", path);
  tf.max_seq = max_positions(j, "max_position_embeddings", 0, path);
  tf.tied_embeddings = get_bool(j, "tie_word_embeddings", type.rfind("gemma", 0) == 0, path);
  // Gemma's configs name the activation hidden_activation (and may also carry a legacy hidden_act).
  const char* act_key = has(j, "hidden_act") ? "hidden_act" : "hidden_activation";
  tf.act = gated_activation(get_string(j, act_key, "silu", path), act_key, path);
  tf.layernorm = false;
  tf.qkv_bias = type == "qwen2" || type == "qwen2_moe" || get_bool(j, "attention_bias", false, path);
  tf.qk_norm = type == "qwen3" || type == "qwen3_moe";
  if (type == "qwen3_moe") {
    // Qwen3ForCausalLM's MoE variant can keep some layers dense; every released checkpoint has
    // none (decoder_sparse_step 1, mlp_only_layers []), and mlsysim models only that layout.
    const bool no_dense_layers =
        !has(j, "mlp_only_layers") || (j["mlp_only_layers"].is_array() && j["mlp_only_layers"].empty());
    const bool every_layer_moe = get_int(j, "decoder_sparse_step", 1, path) == 1 && no_dense_layers;
    if (!every_layer_moe)
      throw BadInput(path + ": qwen3_moe with dense layers (decoder_sparse_step other than 1, or mlp_only_layers) is "
                     "not supported: mlsysim models every layer as MoE");
  }
  if (has(j, "sliding_window") && get_bool(j, "use_sliding_window", true, path)) {
    tf.sliding_window = get_int(j, "sliding_window", 0, path);
    tf.sliding_window_every = type == "gemma2" ? 2 : 1;
  }
  // MoE
  tf.experts = get_int(j, "num_local_experts",
                       get_int(j, "n_routed_experts", get_int(j, "num_experts", 0, path), path), path);
  tf.experts_per_token = get_int(j, "num_experts_per_tok", tf.experts > 0 ? 2 : 0, path);
  tf.moe_ffn = get_int(j, "moe_intermediate_size", tf.ffn, path);
  tf.shared_experts = get_int(j, "n_shared_experts", 0, path);
  tf.first_dense_layers = get_int(j, "first_k_dense_replace", 0, path);
  // MLA
  tf.kv_lora_rank = get_int(j, "kv_lora_rank", 0, path);
  tf.q_lora_rank = get_int(j, "q_lora_rank", 0, path);
  tf.qk_nope_head_dim = get_int(j, "qk_nope_head_dim", 0, path);
  tf.qk_rope_head_dim = get_int(j, "qk_rope_head_dim", 0, path);
  tf.v_head_dim = get_int(j, "v_head_dim", tf.head_dim, path);
}

// The parsed file, or BadInput saying why it cannot be read (a directory, a missing file, bad JSON).
nlohmann::json read_json_object(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    const fs::path inside = fs::path(path) / "config.json";
    throw BadInput(fmt::format("model config '{}' is a directory, not a config.json file{}", path,
                               fs::exists(inside, ec) ? "; did you mean '" + inside.string() + "'?"
                                                      : ": pass the path of the model's config.json"));
  }
  if (!fs::exists(path, ec)) throw BadInput(fmt::format("model config '{}' does not exist", path));
  std::ifstream in(path);
  if (!in) throw BadInput(fmt::format("cannot read model config '{}' (check its permissions)", path));
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    throw invalid_json(path, e.what());
  }
  if (!j.is_object()) throw BadInput(path + ": a config.json holds one JSON object ({...}), got " + j.type_name());
  return j;
}

}  // namespace

ModelSpec model_from_hf_config(const std::string& path) {
  const nlohmann::json j = read_json_object(path);
  const std::string type = get_string(j, "model_type", "", path);
  static const char* kSupported[] = {"llama",  "mistral", "mixtral",     "qwen2",       "qwen2_moe", "qwen3",
                                     "qwen3_moe", "gemma", "gemma2",   "deepseek_v3", "deepseek_v2", "gptj",
                                     "falcon", "gpt_neox"};
  if (!is_one_of(type, kSupported))
    throw BadInput(path + ": model_type '" + type + "' is not supported; supported: " + joined(kSupported));

  ModelSpec m;
  m.id = std::filesystem::path(path).parent_path().filename().string();
  if (m.id.empty() || m.id == ".") m.id = "custom-" + type;
  m.name = m.id + " (" + path + ")";
  m.family = type;
  m.kind = ModelKind::Decoder;
  m.source = "Hugging Face config.json: " + path;
  if (!parse_parallel_block_family(j, type, path, m.tf)) parse_llama_like_family(j, type, path, m.tf);
  check_transformer_shape(m.tf, m.kind, path);
  return m;
}

}  // namespace mlsysim
