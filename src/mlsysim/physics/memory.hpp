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
// The formats a training layer keeps its backward's tensors in (bytes per element). Norm inputs,
// Q/K/V, the attention output and the MLP's intermediates stay in the activation format. A GEMM
// input is kept only for weight gradients: as the base GEMM's own copy (TransformerEngine keeps an
// FP8 run's FP8 cast: 1 B), for a LoRA adapter in 16 bits, and not at all for a frozen linear
// without an adapter.
struct SavedActivations {
  double activation_bytes = 2;
  double attention_input_bytes = 2;  // the QKV projection's input (the attention norm's output)
  double mlp_input_bytes = 2;        // FC1's and FC2's inputs (the FFN norm's and the activation's outputs)
  double projection_copy_bytes = 0;  // a narrower copy of the attention output for the O projection
};
SavedActivations saved_activations(Precision compute, const LoraSpec& lora);
// Saved bytes per token per layer (Korthikanti et al. 2022's inventory for our operator list).
double saved_activation_bytes_per_token_layer(const TransformerSpec& tf, const SavedActivations& s);
// Of those, the ones a TP group replicates without sequence parallelism (the norms' inputs and
// outputs; with full recomputation only the layer input), per token per layer.
double sequence_parallel_split_bytes_per_token_layer(const TransformerSpec& tf, const SavedActivations& s,
                                                     bool full_recompute);
// Full recomputation re-runs one layer at a time: the tensors that layer saves for its backward
// exist once per device while it is recomputed, for `tokens` tokens (included in memory_ledger's
// training activations; the pipeline-training ledger keeps it out of the per-micro-batch stash).
Bytes recompute_working_set(const TransformerSpec& tf, double tokens, double activation_bytes);

}  // namespace mlsysim
