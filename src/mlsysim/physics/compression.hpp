// Compression physics: how pruning changes what is stored and what the hardware executes.
//  * Unstructured sparsity: the surviving weights plus an occupancy bitmap (1 bit per weight; our
//    choice of the cheapest general index format). Dense kernels (cuBLAS) still multiply the full
//    matrix, so the run-time shape, FLOPs and bytes are unchanged.
//  * N:M (2:4) sparsity: half the values plus a 2-bit position index per kept value (NVIDIA's
//    compressed format, Mishra et al. 2021, "Accelerating Sparse Deep Neural Networks",
//    arXiv:2104.08378, sec. 3); sparse tensor cores run it at the device's sparse peak.
//  * Structured (width) pruning: a smaller dense model, FFN columns and KV groups (with their query
//    heads) removed (LLM-Pruner, Ma et al. 2023; Sheared LLaMA, Xia et al. 2024).
#pragma once

#include "mlsysim/catalog/hardware.hpp"
#include "mlsysim/catalog/model.hpp"

namespace mlsysim {

enum class SparsityType { Unstructured, Structured, NM24 };
const char* to_string(SparsityType t);

// Stored bytes per original (dense) weight for unstructured or 2:4 sparsity.
double sparse_storage_bytes_per_weight(double dense_bytes_per_weight, double sparsity, SparsityType t);
// Stored bytes of a transformer's block weights relative to the dense format at `dense_bytes_per_
// weight`: 1 for WeightLayout::Dense and for a model that is not a transformer (it has no block
// weights); the 2:4 compressed format's share (values + index) for Sparse24, 0.5625 at 16 bits. The
// embedding and the LM head are not block weights.
double block_weight_storage_fraction(const ModelSpec& m, double dense_bytes_per_weight);
// True when the sparse format is smaller than the dense matrix. Unstructured: its 1-bit bitmap
// costs more than the removed values save below a sparsity of 1 / (8 b) (6.25% at 16 bits), where
// a checkpoint stays dense.
bool sparse_format_pays(double dense_bytes_per_weight, double sparsity, SparsityType t);

// Width-pruned transformer keeping (1 - sparsity) of the FFN columns and of the KV groups (each
// group keeps its heads/kv_heads query heads). Throws BadInput for non-transformers.
ModelSpec prune_structured(const ModelSpec& model, double sparsity);

// True when the device runs 2:4 sparse math at `p` (a sparse peak is listed).
bool has_sparse_path(const HardwareSpec& hw, Precision p);
// The device as weight-only quantization uses it: no math path at the weights' precision, so the
// engine dequantizes them into its 16-bit (else 32-bit) math, as GPTQ/AWQ/Marlin kernels and FP8
// weight-only GEMMs do; memory traffic still moves the narrow weights. Keeps the id: the device's
// standard node (TP all-reduces) and its messages stay its own.
HardwareSpec weight_only_view(const HardwareSpec& hw, Precision weights);
// The device as a 2:4-sparse model sees it: the dense peak replaced by the sparse peak wherever
// one is listed. The compressed weights' smaller traffic comes from the model's layout
// (ModelSpec::block_weights), not from the device.
HardwareSpec sparse_tensor_view(const HardwareSpec& hw);

}  // namespace mlsysim
