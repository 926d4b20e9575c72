#include "mlsysim/physics/compression.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "mlsysim/errors.hpp"

namespace mlsysim {

const char* to_string(SparsityType t) {
  switch (t) {
    case SparsityType::Unstructured: return "unstructured";
    case SparsityType::Structured: return "structured";
    case SparsityType::NM24: return "n_m";
  }
  return "?";
}

double sparse_storage_bytes_per_weight(double b, double s, SparsityType t) {
  switch (t) {
    case SparsityType::Unstructured: return (1.0 - s) * b + 1.0 / 8.0;  // values + 1-bit bitmap
    case SparsityType::NM24: return 0.5 * b + 0.5 * (2.0 / 8.0);        // values + 2-bit index
    case SparsityType::Structured: return (1.0 - s) * b;
  }
  return b;
}

double block_weight_storage_fraction(const ModelSpec& m, double b) {
  if (m.block_weights == WeightLayout::Dense || !m.is_transformer()) return 1.0;
  return sparse_storage_bytes_per_weight(b, 0.5, SparsityType::NM24) / b;
}

bool sparse_format_pays(double b, double s, SparsityType t) {
  return sparse_storage_bytes_per_weight(b, s, t) < b;
}

ModelSpec prune_structured(const ModelSpec& model, double sparsity) {
  if (!model.is_transformer())
    throw BadInput(model.id + " is not a transformer: structured pruning here removes FFN columns "
                   "and attention heads; use --sparsity-type unstructured");
  ModelSpec m = model;
  TransformerSpec& tf = m.tf;
  const double keep = 1.0 - sparsity;
  const int group = tf.kv_heads > 0 ? tf.heads / tf.kv_heads : 1;
  if (!tf.is_mla() && tf.kv_heads > 0) {
    tf.kv_heads = std::max(1, static_cast<int>(std::lround(tf.kv_heads * keep)));
    tf.heads = tf.kv_heads * group;
  } else {
    tf.heads = std::max(1, static_cast<int>(std::lround(tf.heads * keep)));
  }
  tf.ffn = std::max(1, static_cast<int>(std::lround(tf.ffn * keep)));
  if (tf.moe_ffn > 0) tf.moe_ffn = std::max(1, static_cast<int>(std::lround(tf.moe_ffn * keep)));
  m.published_params.reset();
  m.published_flops.reset();
  m.id = model.id + "-pruned";
  return m;
}

bool has_sparse_path(const HardwareSpec& hw, Precision p) {
  return hw.sparse_peak[index_of(p)].si() > 0;
}

HardwareSpec weight_only_view(const HardwareSpec& hw, Precision weights) {
  HardwareSpec v = hw;
  v.dense_peak[index_of(weights)] = FlopsPerSecond(0);
  v.sparse_peak[index_of(weights)] = FlopsPerSecond(0);
  return v;
}

HardwareSpec sparse_tensor_view(const HardwareSpec& hw) {
  HardwareSpec v = hw;
  for (Precision p : kAllPrecisions)
    if (hw.sparse_peak[index_of(p)].si() > 0) v.dense_peak[index_of(p)] = hw.sparse_peak[index_of(p)];
  v.id = hw.id + "-2:4";
  return v;
}

}  // namespace mlsysim
