#include "mlsysim/physics/memory.hpp"

#include <algorithm>

#include "mlsysim/physics/compression.hpp"
#include "mlsysim/physics/transformer.hpp"

namespace mlsysim {

Bytes kv_cache_bytes_per_token(const ModelSpec& m, Precision kv_precision) {
  if (!m.is_language_model()) return Bytes(0);
  const int layers = m.kind == ModelKind::EncoderDecoder ? m.tf.decoder_layers : m.tf.layers;
  return Bytes(layers * kv_elements_per_token_per_layer(m.tf) * bytes_per_element(kv_precision));
}

SavedActivations saved_activations(Precision compute, const LoraSpec& lora) {
  SavedActivations s;
  s.activation_bytes = activation_bytes(compute);
  const double copy = std::min(s.activation_bytes, bytes_per_element(compute));
  // A GEMM input is kept for the weight gradients it feeds: the base weight's, as the copy the GEMM
  // read (TransformerEngine keeps an FP8 run's FP8 cast), and a LoRA adapter's, in 16 bits.
  const auto kept = [&](LinearKind kind) {
    if (!lora.enabled()) return copy;
    return lora.adapts(kind) ? s.activation_bytes : 0.0;
  };
  s.attention_input_bytes = kept(LinearKind::Attention);
  s.mlp_input_bytes = kept(LinearKind::Mlp);
  // The output projection's input is the attention output, which the attention backward keeps in
  // 16 bits; a narrower cast for the projection's weight gradient is a second copy.
  s.projection_copy_bytes = !lora.enabled() && copy < s.activation_bytes ? copy : 0.0;
  return s;
}

double sequence_parallel_split_bytes_per_token_layer(const TransformerSpec& tf, const SavedActivations& s,
                                                     bool full_recompute) {
  if (full_recompute) return tf.hidden * s.activation_bytes;  // the layer input only
  return tf.hidden * (2.0 * s.activation_bytes + s.attention_input_bytes + s.mlp_input_bytes);
}

double saved_activation_bytes_per_token_layer(const TransformerSpec& tf, const SavedActivations& s) {
  const double pa = s.activation_bytes;
  const double h = tf.hidden, H = tf.heads;
  const double q = tf.is_mla() ? H * (tf.qk_nope_head_dim + tf.qk_rope_head_dim) : H * tf.head_dim;
  const double kv = tf.is_mla() ? H * (tf.qk_nope_head_dim + tf.v_head_dim)
                                : 2.0 * tf.kv_heads * tf.head_dim;
  const double attn_out = tf.is_mla() ? H * tf.v_head_dim : H * tf.head_dim;
  double bytes = 0;
  bytes += h * (pa + s.attention_input_bytes);  // attention norm input, and its output (QKV input)
  bytes += (q + kv) * pa;                       // Q, K, V
  bytes += attn_out * (pa + s.projection_copy_bytes) + H * 4.0;  // attention output (O-proj input), fp32 LSE
  bytes += h * (pa + s.mlp_input_bytes);        // FFN norm input, and its output (FC1 input)
  const bool gated = is_gated(tf.act);
  double inner = tf.ffn, tokens_factor = 1.0;
  if (tf.is_moe()) {
    inner = tf.moe_ffn;
    tokens_factor = tf.experts_per_token + tf.shared_experts;  // each token visits k experts
    bytes += tf.experts * 4.0;                                 // router logits (fp32)
  }
  // up/gate outputs (the activation's input), and the activation's output (FC2 input)
  bytes += tokens_factor * inner * ((gated ? 2 : 1) * pa + s.mlp_input_bytes);
  return bytes;
}

Bytes recompute_working_set(const TransformerSpec& tf, double tokens, double activation_bytes) {
  SavedActivations sixteen_bit;  // the working set is priced as a 16-bit full-training layer
  sixteen_bit.activation_bytes = sixteen_bit.attention_input_bytes = sixteen_bit.mlp_input_bytes = activation_bytes;
  return Bytes(tokens * saved_activation_bytes_per_token_layer(tf, sixteen_bit));
}

Bytes weight_bytes(const ModelSpec& m, const LoweringInput& in, double params) {
  const double dense_pw = bytes_per_element(in.weight_precision);
  // Block weights as stored: 2:4-compressed blocks are smaller; the embedding and head stay dense.
  const double pw = dense_pw * block_weight_storage_fraction(m, dense_pw);
  const double pe = bytes_per_element(in.embedding_precision), ph = bytes_per_element(in.head_precision);
  if ((pe == pw && ph == pw) || !m.is_language_model()) return Bytes(params * pw);
  const ParamBreakdown b = transformer_params(m.tf, m.kind);
  const double embedding = std::min(params, b.embedding);
  const double head = std::min(params - embedding, b.lm_head);
  return Bytes((params - embedding - head) * pw + embedding * pe + head * ph);
}

MemoryLedger memory_ledger(const ModelSpec& m, const LoweringInput& in, double params, double trainable) {
  MemoryLedger ledger;
  const double pw = bytes_per_element(in.weight_precision);
  const double pa = activation_bytes(in.compute_precision);
  const bool training = in.phase == Phase::Train;
  ledger.weights = weight_bytes(m, in, params);

  if (training) {
    // Mixed precision keeps an fp32 master copy and two fp32 Adam moments (12 B/param) plus a
    // 16-bit gradient; pure fp32 training keeps fp32 gradients and the two moments. Under LoRA
    // only the adapters train: stored, with their gradients, in the head's 16-bit format (the
    // format append_lora_adapters computes in), beside the frozen base.
    const double pt = in.lora.enabled() ? bytes_per_element(in.head_precision) : pw;
    if (in.lora.enabled()) ledger.weights += Bytes(trainable * pt);
    const bool mixed = pt < 4.0;
    ledger.gradients = Bytes(trainable * (mixed ? pt : 4.0));
    ledger.optimizer_states = Bytes(trainable * (mixed ? 12.0 : 8.0));
  }

  const double B = in.batch;
  if (m.is_transformer()) {
    const TransformerSpec& tf = m.tf;
    const double tokens = in.phase == Phase::Decode ? 1.0 : in.seq_len;
    if (m.is_language_model() && !training) {
      const double cached = in.phase == Phase::Decode ? in.context + 1.0 : in.context + tokens;
      ledger.kv_cache = kv_cache_bytes_per_token(m, in.kv_precision) * (B * cached);
      if (m.kind == ModelKind::EncoderDecoder)  // cross-attention K/V of the encoder output
        ledger.kv_cache += Bytes(B * tf.encoder_seq * tf.decoder_layers * 2.0 * tf.kv_heads *
                                 tf.head_dim * bytes_per_element(in.kv_precision));
    }
    const int layers = m.kind == ModelKind::EncoderDecoder ? tf.encoder_layers + tf.decoder_layers
                                                           : tf.layers;
    const double N = B * tokens;
    if (training) {
      double per_layer = in.recompute == Recompute::Full
                             ? tf.hidden * pa  // layer input only, the rest is recomputed
                             : saved_activation_bytes_per_token_layer(tf, saved_activations(in.compute_precision, in.lora));
      // Materialized attention also saves the softmax output and, with dropout, its 1-byte mask
      // and output: H x S scores per token (Korthikanti et al. 2022's 5as/h term with dropout).
      // Selective recomputation recomputes exactly these.
      if (in.attention == AttentionKernel::Materialized && in.recompute == Recompute::None)
        per_layer += tf.heads * tokens * (pa + (tf.train_dropout > 0 ? 1.0 + pa : 0.0));
      // + one layer's full working set during recomputation, + fp32 logits and their gradient.
      const Bytes working = in.recompute == Recompute::Full ? recompute_working_set(tf, N, pa) : Bytes(0);
      ledger.activations = Bytes(N * per_layer * layers + N * static_cast<double>(tf.vocab) * 8.0) + working;
    } else {
      // Inference keeps only the live tensors of the widest operator (freed layer by layer).
      const double widest = std::max({3.0 * tf.ffn, 3.0 * tf.moe_ffn * tf.experts_per_token,
                                      3.0 * tf.hidden + 2.0 * tf.heads * tf.head_dim});
      const double logits_rows = m.kind == ModelKind::Encoder ? 0.0 : B;
      ledger.activations = Bytes(N * widest * pa + logits_rows * tf.vocab * 4.0);
    }
  } else if (m.kind == ModelKind::CNN) {
    // Largest input + output pair of any layer (inference); all outputs when training.
    double peak = 0, all = 0;
    for (const auto& l : m.cnn_layers) {
      const double out = static_cast<double>(l.cout) * l.h_out * l.w_out;
      const double inp = static_cast<double>(l.cin) * l.h_out * l.w_out * l.stride_h * l.stride_w;
      peak = std::max(peak, inp + out);
      all += out;
    }
    ledger.activations = Bytes(B * (training ? all * 2.0 : peak) * pa);
  } else if (m.kind == ModelKind::Opaque) {
    ledger.activations = Bytes(B * m.opaque.activation_bytes_per_sample * (pa / 2.0) *
                               (training ? 1.0 : 0.25));
  } else if (m.kind == ModelKind::DLRM) {
    double widest = 0;
    for (int w : m.dlrm.top_mlp) widest = std::max<double>(widest, w);
    const double tables = static_cast<double>(m.dlrm.rows_per_table.size());
    ledger.activations = Bytes(B * (widest * 2 + (tables + 1) * m.dlrm.embedding_dim) * pa);
  }
  return ledger;
}

}  // namespace mlsysim
