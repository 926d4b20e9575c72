// The catalog: hardware and models, loaded from the TOML files compiled into the binary plus any
// user directory. Lookup is by canonical id or alias; case-insensitive, '-' == '_' == '.'-free
// spelling; unknown names get a "did you mean" suggestion.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "mlsysim/catalog/hardware.hpp"
#include "mlsysim/catalog/model.hpp"

namespace mlsysim {

class Catalog {
 public:
  // The built-in catalog (parsed once, on first use).
  static const Catalog& builtin();
  // Built-in entries plus every *.toml under `dir` (user entries replace built-ins with the same id).
  static Catalog with_user_dir(const std::string& dir);

  [[nodiscard]] const HardwareSpec& hardware(std::string_view name) const;
  [[nodiscard]] const ModelSpec& model(std::string_view name) const;
  [[nodiscard]] const std::vector<HardwareSpec>& all_hardware() const { return hardware_; }
  [[nodiscard]] const std::vector<ModelSpec>& all_models() const { return models_; }

  void add_toml(std::string_view text, const std::string& origin);
  void add_hardware(HardwareSpec hw);
  void add_model(ModelSpec m);
  // Applies calibration TOML (efficiency profiles keyed by device id).
  void add_calibration_toml(std::string_view text, const std::string& origin);

 private:
  friend struct CatalogLoader;  // catalog.cpp: applies parsed TOML without re-parsing it
  std::vector<HardwareSpec> hardware_;
  std::vector<ModelSpec> models_;
  std::unordered_map<std::string, size_t> hardware_index_, model_index_;
};

// Normalizes a user-typed name: lower case, '_' and ' ' become '-'.
std::string normalize_name(std::string_view name);
// A looser key, for names written the way vendors and Hugging Face write them, tried when the exact
// name is not in the catalog: case, spaces and punctuation dropped ("RTX 4090" = "rtx4090"), a
// leading vendor or organization dropped ("NVIDIA H100", "meta-llama/Meta-Llama-3-8B"), and a
// fine-tuning suffix dropped ("Llama-3.1-8B-Instruct" has the Llama-3.1-8B architecture). A loose
// key that fits several entries resolves to none.
std::string loose_name(std::string_view name);
// Closest candidate by edit distance, or "" if nothing is reasonably close.
std::string closest_match(std::string_view wanted, const std::vector<std::string>& candidates);

// Reads a Hugging Face config.json (llama, mistral, mixtral, qwen2, gemma, gemma2, deepseek_v3).
ModelSpec model_from_hf_config(const std::string& path);

}  // namespace mlsysim
