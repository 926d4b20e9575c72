// Hugging Face `config.json` -> ModelSpec, so users can model their own architecture.
// Field names follow transformers' configuration classes (LlamaConfig, MistralConfig,
// MixtralConfig, Qwen2Config, GemmaConfig, Gemma2Config, DeepseekV3Config; GPTJConfig,
// FalconConfig and GPTNeoXConfig for the parallel-block families).
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/errors.hpp"

namespace mlsysim {
namespace {

int get_int(const nlohmann::json& j, const char* key, int fallback) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return fallback;
  if (!it->is_number()) throw BadInput(std::string("config.json: '") + key + "' must be a number");
  // A count: a whole number that fits an int (1e20 or 2.5 are not shapes, whatever get<int> makes of them).
  const double v = it->get<double>();
  if (v != std::floor(v) || std::fabs(v) > std::numeric_limits<int>::max())
    throw BadInput(fmt::format("config.json: '{}' must be a whole number below 2^31, got {}", key, it->dump()));
  return static_cast<int>(v);
}

// Without an explicit head_dim, each head gets hidden / heads dimensions, which must divide evenly.
int default_head_dim(int hidden, int heads, const std::string& path) {
  if (hidden % heads != 0)
    throw BadInput(fmt::format("{}: hidden size {} does not split evenly over {} attention heads; give "
                               "'head_dim' if the model's heads are not hidden / heads wide",
                               path, hidden, heads));
  return hidden / heads;
}

int require_int(const nlohmann::json& j, const char* key, const std::string& path) {
  int v = get_int(j, key, -1);
  if (v <= 0) throw BadInput(path + ": missing or non-positive '" + key + "'");
  return v;
}

// The shape rules every family's config must meet.
void check_shapes(const TransformerSpec& tf, const std::string& path) {
  if (tf.kv_heads <= 0 || tf.heads % tf.kv_heads != 0)
    throw BadInput(path + ": the attention heads (" + std::to_string(tf.heads) +
                   ") must be a multiple of the key/value heads (" + std::to_string(tf.kv_heads) + ")");
  if (tf.head_dim <= 0)
    throw BadInput(path + ": the hidden size must give each attention head at least one dimension");
  if (tf.experts > 0 && tf.experts_per_token > tf.experts)
    throw BadInput(path + ": num_experts_per_tok exceeds the number of experts");
}

// GPT-J, Falcon and GPT-NeoX: attention and a plain (ungated) GELU MLP in parallel from LayerNorm,
// each with its own key names. Returns false for the other families.
bool parse_parallel_block_family(const nlohmann::json& j, const std::string& type, const std::string& path,
                                 TransformerSpec& tf) {
  if (type == "gptj") {  // GPTJConfig: x + attn(ln_1(x)) + mlp(ln_1(x))
    tf.layers = require_int(j, "n_layer", path);
    tf.hidden = require_int(j, "n_embd", path);
    tf.heads = require_int(j, "n_head", path);
    tf.ffn = get_int(j, "n_inner", 4 * tf.hidden);
    tf.max_seq = get_int(j, "n_positions", 0);
    tf.bias = true;  // fc_in / fc_out biases; q/k/v/out projections have none
    tf.parallel_block_norms = 1;
  } else if (type == "falcon") {  // FalconConfig
    tf.layers = require_int(j, "num_hidden_layers", path);
    tf.hidden = require_int(j, "hidden_size", path);
    tf.heads = require_int(j, "num_attention_heads", path);
    const bool new_arch = j.value("new_decoder_architecture", false);
    tf.kv_heads = new_arch ? get_int(j, "num_kv_heads", tf.heads) : (j.value("multi_query", true) ? 1 : tf.heads);
    tf.ffn = get_int(j, "ffn_hidden_size", 4 * tf.hidden);
    tf.max_seq = get_int(j, "max_position_embeddings", 2048);
    tf.bias = j.value("bias", false);
    if (!new_arch && !j.value("parallel_attn", true))
      throw BadInput(path + ": Falcon with parallel_attn false and the old decoder architecture is not supported");
    tf.parallel_block_norms = new_arch ? 2 : 1;  // ln_attn + ln_mlp, or one input_layernorm
  } else if (type == "gpt_neox") {  // GPTNeoXConfig (Pythia)
    tf.layers = require_int(j, "num_hidden_layers", path);
    tf.hidden = require_int(j, "hidden_size", path);
    tf.heads = require_int(j, "num_attention_heads", path);
    tf.ffn = require_int(j, "intermediate_size", path);
    tf.max_seq = get_int(j, "max_position_embeddings", 0);
    tf.bias = true;
    if (!j.value("use_parallel_residual", true))
      throw BadInput(path + ": GPT-NeoX with use_parallel_residual false is not supported");
    tf.parallel_block_norms = 2;  // input_layernorm for attention, post_attention_layernorm for MLP
  } else {
    return false;
  }
  tf.kv_heads = tf.kv_heads > 0 ? tf.kv_heads : tf.heads;
  tf.head_dim = default_head_dim(tf.hidden, tf.heads, path);
  tf.vocab = require_int(j, "vocab_size", path);
  tf.tied_embeddings = j.value("tie_word_embeddings", false);
  tf.act = FfnActivation::GELU;
  tf.layernorm = true;
  tf.qkv_bias = type == "gpt_neox" || (type == "falcon" && tf.bias);
  tf.parallel_block = true;
  return true;
}

}  // namespace

ModelSpec model_from_hf_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw BadInput("cannot read model config '" + path + "'");
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    throw BadInput(path + ": not valid JSON (" + e.what() + ")");
  }
  const std::string type = j.value("model_type", "");
  static const char* kSupported[] = {"llama",       "mistral",     "mixtral", "qwen2",  "qwen2_moe", "gemma",
                                     "gemma2",      "deepseek_v3", "deepseek_v2", "gptj", "falcon",    "gpt_neox"};
  bool known = false;
  for (const char* s : kSupported) known |= type == s;
  if (!known)
    throw BadInput(path + ": model_type '" + type + "' is not supported; supported: llama, "
                   "mistral, mixtral, qwen2, gemma, gemma2, deepseek_v3, gptj, falcon, gpt_neox");

  ModelSpec m;
  m.id = std::filesystem::path(path).parent_path().filename().string();
  if (m.id.empty() || m.id == ".") m.id = "custom-" + type;
  m.name = m.id + " (" + path + ")";
  m.family = type;
  m.kind = ModelKind::Decoder;
  m.source = "Hugging Face config.json: " + path;
  TransformerSpec& tf = m.tf;
  if (parse_parallel_block_family(j, type, path, tf)) {
    check_shapes(tf, path);
    return m;
  }
  tf.layers = require_int(j, "num_hidden_layers", path);
  tf.hidden = require_int(j, "hidden_size", path);
  tf.heads = require_int(j, "num_attention_heads", path);
  tf.kv_heads = get_int(j, "num_key_value_heads", tf.heads);
  tf.head_dim = j.contains("head_dim") && !j["head_dim"].is_null() ? get_int(j, "head_dim", 0)
                                                                    : default_head_dim(tf.hidden, tf.heads, path);
  tf.ffn = require_int(j, "intermediate_size", path);
  tf.vocab = require_int(j, "vocab_size", path);
  tf.max_seq = get_int(j, "max_position_embeddings", 0);
  tf.tied_embeddings = j.value("tie_word_embeddings", type.rfind("gemma", 0) == 0);
  const std::string act = j.value("hidden_act", j.value("hidden_activation", "silu"));
  tf.act = act.find("gelu") != std::string::npos ? FfnActivation::GeGLU : FfnActivation::SwiGLU;
  tf.layernorm = false;
  tf.qkv_bias = type == "qwen2" || type == "qwen2_moe" || j.value("attention_bias", false);
  if (j.contains("sliding_window") && j["sliding_window"].is_number() && j.value("use_sliding_window", true)) {
    tf.sliding_window = j["sliding_window"].get<int>();
    tf.sliding_window_every = type == "gemma2" ? 2 : 1;
  }
  // MoE
  tf.experts = get_int(j, "num_local_experts", get_int(j, "n_routed_experts", get_int(j, "num_experts", 0)));
  tf.experts_per_token = get_int(j, "num_experts_per_tok", tf.experts > 0 ? 2 : 0);
  tf.moe_ffn = get_int(j, "moe_intermediate_size", tf.ffn);
  tf.shared_experts = get_int(j, "n_shared_experts", 0);
  tf.first_dense_layers = get_int(j, "first_k_dense_replace", 0);
  // MLA
  tf.kv_lora_rank = get_int(j, "kv_lora_rank", 0);
  tf.q_lora_rank = get_int(j, "q_lora_rank", 0);
  tf.qk_nope_head_dim = get_int(j, "qk_nope_head_dim", 0);
  tf.qk_rope_head_dim = get_int(j, "qk_rope_head_dim", 0);
  tf.v_head_dim = get_int(j, "v_head_dim", tf.head_dim);
  check_shapes(tf, path);
  return m;
}

}  // namespace mlsysim
