#include "mlsysim/physics/transformer.hpp"

#include <algorithm>

namespace mlsysim {
namespace {

double norm_params(const TransformerSpec& tf) { return tf.layernorm ? 2.0 * tf.hidden : tf.hidden; }

// One attention block: projections and biases (+ MLA latent projections and their norms).
double attention_block_params(const TransformerSpec& tf) {
  const double h = tf.hidden, H = tf.heads;
  if (tf.is_mla()) {
    const double qk = tf.qk_nope_head_dim + tf.qk_rope_head_dim;
    double q = tf.q_lora_rank > 0 ? h * tf.q_lora_rank + tf.q_lora_rank + tf.q_lora_rank * H * qk
                                  : h * H * qk;
    double kv = h * (tf.kv_lora_rank + tf.qk_rope_head_dim) + tf.kv_lora_rank +
                tf.kv_lora_rank * H * (tf.qk_nope_head_dim + tf.v_head_dim);
    return q + kv + H * tf.v_head_dim * h;
  }
  const double q_dim = H * tf.head_dim, kv_dim = 2.0 * tf.kv_heads * tf.head_dim;
  double p = h * (q_dim + kv_dim) + q_dim * h;
  if (tf.qkv_bias) p += q_dim + kv_dim;
  if (tf.qk_norm) p += 2.0 * tf.head_dim;  // q_norm and k_norm weights, shared by the heads
  if (tf.bias) p += h;  // output projection bias
  return p;
}

double ffn_params(const TransformerSpec& tf, double inner) {
  const double mats = is_gated(tf.act) ? 3.0 : 2.0;
  double p = mats * tf.hidden * inner;
  if (tf.bias) p += (is_gated(tf.act) ? 2.0 : 1.0) * inner + tf.hidden;
  return p;
}

}  // namespace

ParamBreakdown transformer_params(const TransformerSpec& tf, ModelKind kind) {
  ParamBreakdown p;
  const double h = tf.hidden;
  p.embedding = static_cast<double>(tf.vocab) * h;
  // Learned positions: one row per position (ViT's table is sized by its patches, below).
  if (tf.learned_positions && tf.patch_size == 0) p.embedding += static_cast<double>(tf.max_seq) * h;
  p.embedding += static_cast<double>(tf.type_vocab) * h;
  if (tf.patch_size > 0) {  // ViT: conv patch embedding + CLS token + position embeddings
    const double patches = (tf.image_size / tf.patch_size) * (tf.image_size / tf.patch_size);
    p.embedding += static_cast<double>(tf.patch_in_channels) * tf.patch_size * tf.patch_size * h + h + h +
                   (patches + 1) * h;
  }
  if (tf.audio_conv_stem.size() == 2) {  // Whisper: two k=3 convs + encoder position table
    const double mel = tf.audio_conv_stem[0], d = tf.audio_conv_stem[1];
    p.embedding += mel * d * 3 + d + d * d * 3 + d + static_cast<double>(tf.encoder_seq) * h;
  }

  const double attn = attention_block_params(tf);
  const double norms_per_block = norm_params(tf);
  // Pre-norms per layer: attention and MLP (+ cross-attention); a parallel block shares one or
  // keeps two.
  const double block_norms = tf.parallel_block ? tf.parallel_block_norms : 2.0;
  auto add_stack = [&](int layers, bool cross_attention) {
    p.attention += layers * attn * (cross_attention ? 2.0 : 1.0);
    p.norms += layers * norms_per_block * (block_norms + (cross_attention ? 1.0 : 0.0));
  };

  if (kind == ModelKind::EncoderDecoder) {
    add_stack(tf.encoder_layers, false);
    add_stack(tf.decoder_layers, true);
    const double dense = ffn_params(tf, tf.ffn) * (tf.encoder_layers + tf.decoder_layers);
    p.ffn = p.active_ffn = dense;
    p.norms += 2 * norms_per_block;  // final norms of encoder and decoder
  } else {
    add_stack(tf.layers, false);
    p.norms += norms_per_block;  // final norm
    if (tf.is_moe()) {
      const int dense_layers = tf.first_dense_layers;
      const int moe_layers = tf.layers - dense_layers;
      const double expert = ffn_params(tf, tf.moe_ffn);
      const double router = h * tf.experts;
      const double shared = tf.shared_experts * expert;
      p.ffn = dense_layers * ffn_params(tf, tf.ffn) +
              moe_layers * (tf.experts * expert + shared + router);
      p.active_ffn = dense_layers * ffn_params(tf, tf.ffn) +
                     moe_layers * (tf.experts_per_token * expert + shared + router);
    } else {
      p.ffn = p.active_ffn = tf.layers * ffn_params(tf, tf.ffn);
    }
  }
  if (kind == ModelKind::Decoder || kind == ModelKind::EncoderDecoder) {
    if (!tf.tied_embeddings) p.lm_head = static_cast<double>(tf.vocab) * h;
  }
  if (tf.pooler) p.lm_head += h * h + h;
  if (tf.classifier > 0) p.lm_head += h * tf.classifier + tf.classifier;
  return p;
}

double parameter_count(const ModelSpec& m) {
  switch (m.kind) {
    case ModelKind::Decoder: case ModelKind::Encoder: case ModelKind::EncoderDecoder:
      return transformer_params(m.tf, m.kind).total();
    case ModelKind::CNN: {
      double p = 0;
      for (const auto& l : m.cnn_layers) {
        switch (l.type) {
          case CnnLayer::Type::Conv:
            // Weights + folded batch-norm (gamma, beta) counted as the published counts do.
            p += static_cast<double>(l.cout) * (l.cin / l.groups) * l.kernel_h * l.kernel_w;
            if (l.bias) p += l.cout;
            if (l.batch_norm) p += 2.0 * l.cout;  // gamma, beta (published counts include them)
            break;
          case CnnLayer::Type::FullyConnected:
            p += static_cast<double>(l.cin) * l.cout + l.cout;
            break;
          case CnnLayer::Type::SqueezeExcite:
            p += 2.0 * l.cin * l.groups + l.cin + l.groups;
            break;
          default: break;
        }
      }
      return p;
    }
    case ModelKind::DLRM: {
      double p = 0;
      for (double rows : m.dlrm.rows_per_table) p += rows * m.dlrm.embedding_dim;
      auto mlp = [&](const std::vector<int>& sizes) {
        for (size_t i = 1; i < sizes.size(); ++i)
          p += static_cast<double>(sizes[i - 1]) * sizes[i] + sizes[i];
      };
      mlp(m.dlrm.bottom_mlp);
      mlp(m.dlrm.top_mlp);
      return p;
    }
    case ModelKind::Opaque:
      return m.published_params.value_or(0.0);
  }
  return 0;
}

double kv_elements_per_token_per_layer(const TransformerSpec& tf) {
  if (tf.is_mla()) return tf.kv_lora_rank + tf.qk_rope_head_dim;  // compressed latent + rope key
  return 2.0 * tf.kv_heads * tf.head_dim;
}

namespace {
int local_layer_count(const TransformerSpec& tf, int layers) {
  if (tf.sliding_window <= 0) return 0;
  const int every = std::max(tf.sliding_window_every, 1);
  // Gemma-2 alternates local and global layers: every `every`-th layer is global.
  return every == 1 ? layers : layers - layers / every;
}
// Causal pairs for n queries after c cached tokens, each seeing at most w keys (w <= 0: unlimited).
double causal_pairs(double n, double c, double w) {
  const double full = n * c + n * (n + 1) / 2;
  if (w <= 0 || c + n <= w) return full;
  // Token i (1-based) sees min(c + i, w) keys.
  double pairs = 0;
  const double i_cross = std::max(0.0, std::min(n, w - c));  // tokens that still see < w keys
  pairs += i_cross * c + i_cross * (i_cross + 1) / 2;
  pairs += (n - i_cross) * w;
  return pairs;
}
}  // namespace

double attention_pairs_per_layer(const TransformerSpec& tf, double new_tokens, double context,
                                 bool causal) {
  if (!causal) return new_tokens * new_tokens;
  const int layers = std::max(tf.layers, 1);
  const int local = local_layer_count(tf, layers);
  const double global_pairs = causal_pairs(new_tokens, context, 0);
  const double local_pairs = causal_pairs(new_tokens, context, tf.sliding_window);
  return ((layers - local) * global_pairs + local * local_pairs) / layers;
}

double attended_kv_tokens_per_layer(const TransformerSpec& tf, double total_tokens) {
  const int layers = std::max(tf.layers, 1);
  const int local = local_layer_count(tf, layers);
  const double local_tokens = std::min<double>(total_tokens, tf.sliding_window);
  return ((layers - local) * total_tokens + local * local_tokens) / layers;
}

}  // namespace mlsysim
