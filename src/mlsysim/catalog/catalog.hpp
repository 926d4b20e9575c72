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

// Where a named entry was defined (its file), and whether it is built in: built-in entries (sealed
// once the embedded files are read) are the only ones a later entry with the same id may replace
// (named_entries.hpp).
struct EntryOrigin {
  std::string file;
  bool builtin = false;
};

class Catalog {
 public:
  // The built-in catalog (parsed once, on first use).
  static const Catalog& builtin();
  // Built-in entries plus every *.toml under `dir`. A user entry with a built-in entry's id replaces
  // it (an override, keeping the built-in's aliases); any other clash of ids or aliases is BadInput.
  static Catalog with_user_dir(const std::string& dir);

  [[nodiscard]] const HardwareSpec& hardware(std::string_view name) const;
  [[nodiscard]] const ModelSpec& model(std::string_view name) const;
  [[nodiscard]] const std::vector<HardwareSpec>& all_hardware() const { return hardware_; }
  [[nodiscard]] const std::vector<ModelSpec>& all_models() const { return models_; }

  void add_toml(std::string_view text, const std::string& origin);
  // `origin` (a file) names where the entry came from in duplicate-name errors.
  void add_hardware(HardwareSpec hw, const std::string& origin = "(added in code)");
  void add_model(ModelSpec m, const std::string& origin = "(added in code)");
  // Applies calibration TOML (efficiency profiles keyed by device id).
  void add_calibration_toml(std::string_view text, const std::string& origin);

 private:
  friend struct CatalogLoader;  // catalog.cpp: applies parsed TOML without re-parsing it
  std::vector<HardwareSpec> hardware_;
  std::vector<ModelSpec> models_;
  // Where each entry was defined (named_entries.hpp), parallel to hardware_ / models_.
  std::vector<EntryOrigin> hardware_origin_, model_origin_;
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

// Shape rules every transformer meets, whether it came from a catalog entry or a config.json:
// layers, hidden and heads >= 1; key/value heads that divide the heads; a head dim and an MLP width
// >= 1; routed experts per token in [1, experts] (none without experts); a vocabulary for a model
// that embeds tokens. `where` (file and entry) starts the BadInput message.
void check_transformer_shape(const TransformerSpec& tf, ModelKind kind, const std::string& where);
// hidden / heads, the head width of a model that gives no head_dim. BadInput unless the heads split
// the hidden size evenly (512 over 7 heads is not 73 each: the projections would not be square).
int default_head_dim(int hidden, int heads, const std::string& where);

// Reads a Hugging Face config.json (llama, mistral, mixtral, qwen2, gemma, gemma2, deepseek_v3).
ModelSpec model_from_hf_config(const std::string& path);

}  // namespace mlsysim
