// Transformer accounting derived from the architecture spec: parameter counts and KV-cache bytes.
// Parameter formulas follow the standard layer structure (Vaswani et al. 2017; GQA: Ainslie et al.
// 2023; MLA: DeepSeek-V2/V3 technical reports; MoE: Fedus et al. 2022, Jiang et al. 2024).
#pragma once

#include "mlsysim/catalog/model.hpp"

namespace mlsysim {

struct ParamBreakdown {
  double embedding = 0;     // token (+ learned position) embeddings, patch embedding, conv stem
  double attention = 0;     // all layers: q, k, v, o projections (+ MLA down/up projections)
  double ffn = 0;           // all layers: dense FFNs, routed + shared experts, routers
  double norms = 0;
  double lm_head = 0;       // untied output projection / classifier
  double active_ffn = 0;    // FFN parameters touched per token (MoE: top-k + shared)
  [[nodiscard]] double total() const { return embedding + attention + ffn + norms + lm_head; }
  [[nodiscard]] double active() const { return total() - ffn + active_ffn; }
};

ParamBreakdown transformer_params(const TransformerSpec& tf, ModelKind kind);

// Parameters of any catalog model (CNN layers, DLRM tables, opaque published count).
double parameter_count(const ModelSpec& m);

// KV-cache elements stored per token per layer (K and V, all KV heads; MLA: latent + rope key).
double kv_elements_per_token_per_layer(const TransformerSpec& tf);

// Attention key/value pairs per sequence for `new_tokens` queries after `context` cached tokens,
// averaged over layers (causal: token i sees context + i + 1 keys; local layers see at most the
// sliding window). For encoders (bidirectional) every token sees all `new_tokens`.
double attention_pairs_per_layer(const TransformerSpec& tf, double new_tokens, double context,
                                 bool causal);
// Average number of cached tokens a decode step reads per layer (sliding-window aware).
double attended_kv_tokens_per_layer(const TransformerSpec& tf, double total_tokens);

}  // namespace mlsysim
