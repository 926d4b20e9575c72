// Numeric precisions and their storage widths.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace mlsysim {

enum class Precision { FP32, TF32, FP16, BF16, FP8, INT8, INT4, FP4 };
inline constexpr int kPrecisionCount = 8;
inline constexpr std::array<Precision, kPrecisionCount> kAllPrecisions = {
    Precision::FP32, Precision::TF32, Precision::FP16, Precision::BF16,
    Precision::FP8,  Precision::INT8, Precision::INT4, Precision::FP4};

constexpr int index_of(Precision p) { return static_cast<int>(p); }

// Bytes per stored element. TF32 is a compute mode on FP32 storage (4 bytes).
constexpr double bytes_per_element(Precision p) {
  switch (p) {
    case Precision::FP32: case Precision::TF32: return 4.0;
    case Precision::FP16: case Precision::BF16: return 2.0;
    case Precision::FP8: case Precision::INT8: return 1.0;
    case Precision::INT4: case Precision::FP4: return 0.5;
  }
  return 2.0;
}

// Bytes per element of the activations that flow between kernels when the GEMMs run in `math`.
// FP8 and 4-bit math quantize only the GEMM inputs: the GEMMs write 16-bit outputs and norms,
// residual adds, RoPE and activation functions run in 16 bits (NVIDIA TransformerEngine FP8
// recipe; TensorRT-LLM's FP8 and vLLM's W8A8-FP8 checkpoints, whose quantize step is fused into the
// kernel that produces the GEMM input). INT8 engines pass INT8 tensors between fused layers
// (TensorRT INT8, as MLPerf's CNN and BERT engines run). Other formats: their own width.
constexpr double activation_bytes(Precision math) {
  switch (math) {
    case Precision::FP8: case Precision::INT4: case Precision::FP4: return 2.0;
    default: return bytes_per_element(math);
  }
}

std::string_view to_string(Precision p);
std::optional<Precision> parse_precision(std::string_view text);
// "fp32, tf32, fp16, bf16, fp8, int8, int4, fp4" for error messages.
std::string precision_list();

}  // namespace mlsysim
