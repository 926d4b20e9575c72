#include "mlsysim/physics/precision.hpp"

#include <cctype>

namespace mlsysim {

std::string_view to_string(Precision p) {
  switch (p) {
    case Precision::FP32: return "fp32";
    case Precision::TF32: return "tf32";
    case Precision::FP16: return "fp16";
    case Precision::BF16: return "bf16";
    case Precision::FP8: return "fp8";
    case Precision::INT8: return "int8";
    case Precision::INT4: return "int4";
    case Precision::FP4: return "fp4";
  }
  return "?";
}

std::optional<Precision> parse_precision(std::string_view text) {
  std::string s;
  for (char c : text) s.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  if (s == "float32") s = "fp32";
  if (s == "float16" || s == "half") s = "fp16";
  if (s == "bfloat16") s = "bf16";
  if (s == "fp8-e4m3" || s == "fp8_e4m3" || s == "e4m3") s = "fp8";
  for (Precision p : kAllPrecisions)
    if (to_string(p) == s) return p;
  return std::nullopt;
}

std::string precision_list() {
  std::string out;
  for (Precision p : kAllPrecisions) {
    if (!out.empty()) out += ", ";
    out += to_string(p);
  }
  return out;
}

}  // namespace mlsysim
