#include "mlsysim/physics/sharding.hpp"

#include <fmt/format.h>

#include <algorithm>

#include <string>

#include "mlsysim/errors.hpp"

namespace mlsysim {
namespace {

std::string divisors_up_to(int n, int limit) {
  std::string out;
  for (int d = 1; d <= std::min(n, limit); ++d)
    if (n % d == 0) out += (out.empty() ? "" : ", ") + std::to_string(d);
  return out;
}

}  // namespace

ModelSpec shard_transformer(const ModelSpec& model, const ShardPlan& plan) {
  if (!model.is_transformer())
    throw BadInput(model.id + " is " + a_kind_model(model.kind) +
                   ": tensor/pipeline sharding applies to transformers");
  if (plan.tp < 1 || plan.pp < 1 || plan.ep < 1)
    throw BadInput("tp, pp and ep must be >= 1");
  ModelSpec s = model;
  TransformerSpec& tf = s.tf;
  const int tp = plan.tp;
  if (tf.heads % tp != 0)
    throw BadInput(model.id + " has " + std::to_string(tf.heads) + " attention heads: tp must " +
                   "divide them (valid: " + divisors_up_to(tf.heads, 64) + ")");
  tf.heads /= tp;
  // KV heads fewer than tp are replicated (each GPU keeps one), as Megatron and vLLM do.
  tf.kv_heads = tf.kv_heads >= tp ? tf.kv_heads / tp : 1;
  if (model.tf.kv_heads >= tp && model.tf.kv_heads % tp != 0)
    throw BadInput(model.id + " has " + std::to_string(model.tf.kv_heads) + " KV heads: tp must " +
                   "divide them or exceed them (valid: " + divisors_up_to(model.tf.kv_heads, 64) + ")");
  // ceil(width / tp), in 64 bits: a width near 2^31 plus tp would wrap an int negative.
  const auto split = [tp](int width) { return static_cast<int>((static_cast<long long>(width) + tp - 1) / tp); };
  tf.ffn = split(tf.ffn);
  tf.moe_ffn = split(tf.moe_ffn);
  tf.vocab = split(tf.vocab);
  // The hidden size stays (activations are replicated between the two all-reduces of a layer),
  // but the projections now produce heads/tp: head_dim is unchanged.
  if (plan.ep > 1) {
    if (tf.experts == 0) throw BadInput(model.id + " has no experts: ep must be 1");
    if (tf.experts % plan.ep != 0)
      throw BadInput(model.id + " has " + std::to_string(tf.experts) +
                     " experts: ep must divide them (valid: " + divisors_up_to(tf.experts, 1024) + ")");
    tf.experts /= plan.ep;
    tf.experts_per_token = std::max(1, tf.experts_per_token / plan.ep);
  }
  auto split_layers = [&](int& layers, const char* what) {
    if (layers <= 0) return;
    if (plan.pp > layers)
      throw BadInput(model.id + " has " + std::to_string(layers) + " " + what +
                     ": pp must be <= that");
    layers = static_cast<int>((static_cast<long long>(layers) + plan.pp - 1) / plan.pp);
  };
  split_layers(tf.layers, "layers");
  split_layers(tf.encoder_layers, "encoder layers");
  split_layers(tf.decoder_layers, "decoder layers");
  // The shard is the busiest stage: ceil(L/p) layers, and where the first layers are dense (an MoE
  // model's first_dense_layers, DeepSeek-V3's 3 of 61) the last stage's, which holds the fewest of
  // them (the heaviest layers being the MoE ones): the dense layers beyond the other stages' share.
  const int layers_before_last_stage = model.tf.layers - tf.layers;
  tf.first_dense_layers =
      std::clamp(model.tf.first_dense_layers - layers_before_last_stage, 0, tf.layers);
  s.published_params.reset();
  return s;
}

int doubled_tensor_parallel(const ModelSpec& model, int tp, int max_tp) {
  const int next = 2 * tp;
  if (!model.is_transformer() || next > max_tp || model.tf.heads % next != 0) return 0;
  if (model.tf.kv_heads >= next && model.tf.kv_heads % next != 0) return 0;
  return next;
}

std::string more_tensor_parallel_remedy(const ModelSpec& model, int tp, int max_tp, const char* flag) {
  if (const int next = doubled_tensor_parallel(model, tp, max_tp)) return fmt::format("use {} {}", flag, next);
  if (2 * tp > max_tp) return fmt::format("a larger {} cannot help (tensor parallelism stops at {} GPUs)", flag, max_tp);
  return fmt::format("a larger {} cannot help ({}'s {} attention heads do not split over {} GPUs)", flag, model.id,
                     model.tf.heads, 2 * tp);
}

}  // namespace mlsysim
