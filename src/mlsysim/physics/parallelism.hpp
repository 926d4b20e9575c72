// Formulas of parallel training that are not collectives: pipeline bubbles, in-flight
// micro-batches, activation sharding under sequence parallelism, ZeRO state sharding and the
// per-layer communication volumes of tensor/context/expert parallelism.
#pragma once

#include "mlsysim/catalog/model.hpp"
#include "mlsysim/units/quantity.hpp"

namespace mlsysim {

using namespace units;  // NOLINT

// Pipeline bubble as a fraction of the step (Narayanan et al. 2021, "Efficient Large-Scale Language
// Model Training on GPU Clusters Using Megatron-LM", sec. 2.2): 1F1B / GPipe (p-1)/(m+p-1);
// interleaved with v model chunks per GPU: (p-1)/(v*m+p-1).
double pipeline_bubble_fraction(int stages, int micro_batches, int virtual_stages = 1);
// The same idle time relative to useful compute (bubble time = compute x this): (p-1)/(v*m).
double pipeline_bubble_overhead(int stages, int micro_batches, int virtual_stages = 1);
// Micro-batches whose activations the first stage holds at once under 1F1B: min(p, m)
// (Narayanan et al. 2021 sec. 2.2.1). The interleaved schedule raises it by 1 + (p-1)/(p*v)
// (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models",
// sec. 4.2.3). Returned in micro-batch units.
double pipeline_in_flight_micro_batches(int stages, int micro_batches, int virtual_stages = 1);

// Layers per pipeline stage when p does not divide L: L mod p stages hold ceil(L/p), the rest
// floor(L/p); the first and the last stage, which also run the embedding and the LM head + loss,
// take the smaller share (Dubey et al. 2024, "The Llama 3 Herd of Models", sec. 3.3.2: 126 layers
// on 16 stages, one fewer layer on the first and the last). With interleaving (v chunks per stage)
// the chunks of a stage split its layers; Megatron-LM exposes the same uneven first/last split
// (--decoder-first/last-pipeline-num-layers). `middle` is the most layers on any other stage.
struct StageSplit {
  int first = 0, middle = 0, last = 0;
};
StageSplit pipeline_stage_split(int layers, int stages);

// ZeRO (Rajbhandari et al. 2020) / FSDP: how many ranks share each training state.
struct ZeroSharding {
  double weights = 1, gradients = 1, optimizer = 1;
};
ZeroSharding zero_sharding(int stage, int dp);

// Bytes exchanged per rank per step for the DP gradient synchronisation (Rajbhandari et al. 2020,
// sec. 7): stage 0-2: 2 x psi x grad bytes on a ring all-reduce (or reduce-scatter + all-gather of
// the updated 16-bit weights); stage 3 adds a weight all-gather before forward and backward.
// (Returned for the trace; the solver times each collective.)

// Tensor-parallel traffic (Shoeybi et al. 2019 "Megatron-LM", sec. 3): per layer, 2 all-reduces in
// the forward pass (after attention and after the MLP) and 2 in the backward pass, each of
// b x s x h activations; sequence parallelism (Korthikanti et al. 2022 sec. 4.2.2) replaces each
// by a reduce-scatter + all-gather pair of the same total bytes. Full recomputation re-runs the
// forward: 2 more. Returns the number of all-reduce-equivalents per layer per micro-batch.
int tp_collectives_per_layer(bool full_recompute);

// Tensor-parallel collectives overlapped with the GEMMs that produce or consume them
// (TransformerEngine userbuffers, Megatron-core `--tp-comm-overlap`; Wang et al. 2023, "Overlap
// Communication with Dependent Computation via Decomposition in Large Deep Learning Models",
// ASPLOS '23): each collective is cut into tp chunks, and a chunk moves while the GEMM works on the
// one before it. The first (or last) chunk has no GEMM to hide behind, so at least comm / tp stays
// exposed; communication beyond the GEMMs' other (tp-1)/tp shows too. `comm` and `gemm_window` are
// totals over the same layers (the collectives' time and the time of the GEMMs they pair with).
Seconds overlapped_tp_comm_exposed(Seconds comm, Seconds gemm_window, int tp);

// Pipeline sends and receives posted asynchronously and waited on only when the next model chunk
// needs them (Megatron-core `--overlap-p2p-communication` in the interleaved schedule): in the
// steady state they run under other micro-batches' compute; the warm-up's first receive and the
// cool-down's last send have nothing to hide behind, about one micro-batch's sends in all.
Seconds overlapped_pipeline_sends_exposed(Seconds sends_per_micro_batch, int micro_batches);

// Activation bytes per micro-batch after sequence parallelism: the tensors a TP group would
// otherwise replicate are split across tp (Korthikanti et al. 2022, eq. 4 vs 2): the layer-norm
// inputs and outputs of our saved-tensor inventory, or with full recomputation only each layer's
// input (`replicated_bytes` per token per layer: physics/memory.hpp,
// sequence_parallel_split_bytes_per_token_layer).
Bytes sequence_parallel_activation_savings(double tokens, int layers, int tp, double replicated_bytes);

// Context parallelism (ring attention; Liu et al. 2023, "Ring Attention with Blockwise
// Transformers"): per layer, cp-1 steps each passing this rank's K and V block forward, and K, V
// and their gradients backward: 3 x (cp-1) blocks of tokens/cp x 2 x kv_heads x head_dim.
Bytes context_parallel_bytes_per_layer(const TransformerSpec& shard, double tokens_per_rank, int cp,
                                       double activation_bytes);

// Chinchilla compute-optimal tokens (Hoffmann et al. 2022, Table 3 / approach 1): ~20 per parameter.
constexpr double kChinchillaTokensPerParameter = 20.0;
double chinchilla_tokens(double parameters);

}  // namespace mlsysim
