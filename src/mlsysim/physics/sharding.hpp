// Model parallelism as a smaller model: the per-GPU shard of a transformer under tensor
// parallelism (Megatron-LM, Shoeybi et al. 2019: attention heads and FFN columns split across
// `tp` GPUs; the vocabulary-parallel embedding and LM head too) and pipeline parallelism (a
// contiguous block of layers per stage). Solving the shard with the single-device engine gives
// the per-GPU compute and memory time; the collectives are added by the caller.
#pragma once

#include <string>

#include "mlsysim/catalog/model.hpp"

namespace mlsysim {

struct ShardPlan {
  int tp = 1;  // tensor-parallel degree
  int pp = 1;  // pipeline stages (the shard holds ceil(layers / pp) layers)
  int ep = 1;  // expert-parallel degree (routed experts split across ep GPUs)
};

// Throws BadInput when the shape cannot be split (heads or KV heads not divisible by tp, more
// stages than layers, experts not divisible by ep), naming the valid choices.
ModelSpec shard_transformer(const ModelSpec& model, const ShardPlan& plan);

// The tensor-parallel degree a remedy can suggest after `tp`: 2 x tp when the model's attention
// heads (and KV heads, unless fewer than it) split over it and it stays within `max_tp` GPUs;
// 0 when no such doubling exists (Falcon-180B's 232 heads stop at tp 8).
int doubled_tensor_parallel(const ModelSpec& model, int tp, int max_tp);
// "use --tp 16" (with `flag`), or a clause saying why no larger tensor parallelism helps.
std::string more_tensor_parallel_remedy(const ModelSpec& model, int tp, int max_tp, const char* flag = "--tp");

}  // namespace mlsysim
