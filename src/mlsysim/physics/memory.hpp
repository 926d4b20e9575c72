// Memory ledger of one device: weights, KV cache, activations, gradients, optimizer states.
//  * KV cache: 2 x layers x kv_heads x head_dim x tokens x bytes (GQA-aware; MLA stores the
//    compressed latent, DeepSeek-V2 sec. 2.1).
//  * Training states (mixed precision, ZeRO paper, Rajbhandari et al. 2020, sec. 3.1): 16-bit
//    weights and gradients plus fp32 master weights and Adam moments = 16 bytes per parameter.
//  * Saved activations per layer: the tensors the backward pass reads (inputs of every GEMM and
//    norm, FlashAttention's output and log-sum-exp), the same inventory as Korthikanti et al. 2022
//    (sec. 4) for our operator list; full recomputation keeps only each layer's input.
#pragma once

#include "mlsysim/catalog/model.hpp"
#include "mlsysim/physics/operators.hpp"
#include "mlsysim/units/quantity.hpp"

namespace mlsysim {

using namespace units;  // NOLINT

struct MemoryLedger {
  Bytes weights{}, kv_cache{}, activations{}, gradients{}, optimizer_states{};
  [[nodiscard]] Bytes total() const {
    return weights + kv_cache + activations + gradients + optimizer_states;
  }
};

// Bytes of KV cache one token occupies across all layers.
Bytes kv_cache_bytes_per_token(const ModelSpec& m, Precision kv_precision);

// Stored weights: `params` at the weight format, except a language model's token-embedding table
// and output head, stored at `in.embedding_precision` and `in.head_precision` (16 bits where
// quantization leaves them out; the weights' format otherwise). A tied head is the embedding table.
Bytes weight_bytes(const ModelSpec& m, const LoweringInput& in, double params);

// `params`: all the model's; `trainable`: those training updates (all of them, or LoRA's adapters).
MemoryLedger memory_ledger(const ModelSpec& m, const LoweringInput& in, double params, double trainable);
// A GEMM keeps its input for its weight gradient alone, which a frozen weight has none of: under
// LoRA with unadapted MLPs the FFN norm's output (FC1's input, h) and the activation's output (FC2's
// input, per expert visited) are not saved. Bytes per token per layer; 0 otherwise.
double frozen_mlp_input_bytes_per_token_layer(const TransformerSpec& tf, const LoraSpec& lora, double pa);
// Full recomputation re-runs one layer at a time: the tensors that layer saves for its backward
// exist once per device while it is recomputed, for `tokens` tokens (included in memory_ledger's
// training activations; the pipeline-training ledger keeps it out of the per-micro-batch stash).
Bytes recompute_working_set(const TransformerSpec& tf, double tokens, double activation_bytes);

}  // namespace mlsysim
