#include "mlsysim/catalog/toml_files.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>

#include "mlsysim/catalog/catalog.hpp"
#include "mlsysim/errors.hpp"

namespace mlsysim {

toml::table parse_toml(std::string_view text, const std::string& origin) {
  try {
    return toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream os;
    os << origin << ":" << e.source().begin.line << ": " << e.description();
    throw BadInput(os.str());
  }
}

std::vector<std::pair<std::string, std::string>> read_toml_dir(const std::string& dir,
                                                               const std::string& flag) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir)) throw BadInput(flag + " '" + dir + "' is not a directory of *.toml files");
  std::vector<fs::path> paths;
  for (auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".toml") paths.push_back(e.path());
  std::sort(paths.begin(), paths.end());
  std::vector<std::pair<std::string, std::string>> files;
  for (auto& p : paths) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    files.emplace_back(p.string(), ss.str());
  }
  return files;
}

namespace toml_input {

std::string quoted(std::string_view key) { return fmt::format("'{}'", key); }

std::string describe(const toml::node* n) {
  if (n == nullptr) return "nothing";
  if (auto d = n->value<double>()) return fmt::format("{}", *d);
  if (auto s = n->value<std::string>()) return "\"" + *s + "\"";
  if (auto b = n->value<bool>()) return *b ? "true" : "false";
  if (n->is_array()) return "an array";
  if (n->is_table()) return "a table";
  return "a date or time";
}

// ---- Keys the readers know -------------------------------------------------------------------
// Each table's keys are listed beside the code that reads them; any other key is refused, because a
// misspelt one ('bandwith_gbs', 'num_layers', 'memroy_efficiency') would otherwise leave its field
// at the default without a word.

bool contains(const Keys& keys, std::string_view key) {
  return std::find(keys.begin(), keys.end(), key) != keys.end();
}

namespace {

// The known key a user most likely meant by `key`, or "".
std::string suggest_key(std::string_view key, const Keys& known) {
  // Hugging Face config.json names: entries are often written from one.
  static constexpr std::pair<std::string_view, std::string_view> kHuggingFaceNames[] = {
      {"num_hidden_layers", "layers"},    {"hidden_size", "hidden"},
      {"num_attention_heads", "heads"},   {"num_key_value_heads", "kv_heads"},
      {"intermediate_size", "ffn"},       {"vocab_size", "vocab"},
      {"max_position_embeddings", "max_seq"}, {"hidden_act", "ffn_act"},
      {"tie_word_embeddings", "tied_embeddings"}, {"num_local_experts", "experts"},
      {"n_routed_experts", "experts"},    {"num_experts_per_tok", "experts_per_token"},
      {"moe_intermediate_size", "moe_ffn"}};
  for (const auto& [hf, ours] : kHuggingFaceNames)
    if (key == hf && contains(known, ours)) return std::string(ours);
  std::vector<std::string> candidates(known.begin(), known.end());
  if (std::string best = closest_match(key, candidates); !best.empty()) return best;
  // A known key as the last words of this one ("num_layers" for "layers").
  std::string best;
  for (std::string_view k : known) {
    const std::string tail = fmt::format("_{}", k);
    if (key.size() > tail.size() && key.substr(key.size() - tail.size()) == tail && k.size() > best.size())
      best = std::string(k);
  }
  return best;
}

std::string key_list(const Keys& keys) {
  std::string out;
  for (std::string_view k : keys) out += (out.empty() ? "" : ", ") + std::string(k);
  return out;
}

}  // namespace

void reject_unknown_keys(const toml::table& t, const Keys& known, const std::string& table, const std::string& where,
                         const std::function<std::string(std::string_view)>& elsewhere) {
  for (auto&& [k, v] : t) {
    const std::string_view key = k.str();
    if (contains(known, key)) continue;
    std::string msg = fmt::format("{}: unknown key '{}' in {}", where, key, table);
    if (std::string note = elsewhere ? elsewhere(key) : ""; !note.empty()) throw BadInput(msg + ": " + note);
    if (std::string best = suggest_key(key, known); !best.empty())
      throw BadInput(msg + ": did you mean '" + best + "'?");
    throw BadInput(msg + " (known keys: " + key_list(known) + ")");
  }
}

void reject_unknown_tables(const toml::table& doc, const std::string& origin) {
  reject_unknown_keys(doc, kCatalogFileTables, "the file's top level (each entry goes under [[device]], [[model]], "
                      "[[calibration]], [[fabric]], [[topology]], [[node]] or [[cluster]])", origin);
}

std::vector<const toml::table*> entries(const toml::table& doc, std::string_view key, const std::string& origin,
                                        std::string_view parent) {
  std::vector<const toml::table*> out;
  if (!doc[key]) return out;
  const toml::array* arr = doc[key].as_array();
  if (arr != nullptr)
    for (auto& e : *arr)
      if (auto* t = e.as_table()) out.push_back(t);
  if (arr == nullptr || out.size() != arr->size())
    throw BadInput(fmt::format("{}: '{}' must be an array of tables: write each entry under [[{}{}]] (two brackets)",
                               origin, key, parent.empty() ? "" : std::string(parent) + ".", key));
  return out;
}

// ---- Values ----------------------------------------------------------------------------------

double number_of(const toml::node* n, const std::string& label, const std::string& where) {
  if (auto d = n ? n->value<double>() : std::nullopt) return *d;
  throw BadInput(fmt::format("{}: {} must be a number, got {}", where, label, describe(n)));
}

double finite_non_negative(double x, const std::string& label, const std::string& where) {
  if (!(x >= 0) || !std::isfinite(x))
    throw BadInput(fmt::format("{}: {} must be a finite, non-negative number, got {}", where, label, x));
  return x;
}

double fraction_or(toml::node_view<const toml::node> v, double fallback, const std::string& label,
                   const std::string& where) {
  if (!v) return fallback;
  const double f = number_of(v.node(), label, where);
  if (!(f > 0 && f <= 1)) throw BadInput(fmt::format("{}: {} must be in (0, 1], got {}", where, label, f));
  return f;
}

double non_negative_or(toml::node_view<const toml::node> v, double fallback, const std::string& label,
                       const std::string& where) {
  if (!v) return fallback;
  return finite_non_negative(number_of(v.node(), label, where), label, where);
}

std::string string_or(const toml::table& t, std::string_view key, const std::string& where, std::string fallback) {
  if (!t[key]) return fallback;
  if (auto s = t[key].value<std::string>()) return *s;
  throw BadInput(fmt::format("{}: '{}' must be a string, got {}", where, key, describe(t.get(key))));
}

bool bool_field(const toml::table& t, std::string_view key, bool fallback, const std::string& where) {
  if (!t[key]) return fallback;
  // value_exact: value<bool>() would read the integer 1 as true.
  if (auto b = t[key].value_exact<bool>()) return *b;
  throw BadInput(fmt::format("{}: '{}' must be true or false, got {}", where, key, describe(t.get(key))));
}

std::vector<std::string> string_list(const toml::table& t, std::string_view key, const std::string& where) {
  std::vector<std::string> out;
  if (!t[key]) return out;
  const toml::array* arr = t[key].as_array();
  if (arr == nullptr)
    throw BadInput(fmt::format("{}: '{}' must be an array of strings, got {}", where, key, describe(t.get(key))));
  for (auto& e : *arr) {
    auto s = e.value<std::string>();
    if (!s) throw BadInput(fmt::format("{}: '{}' must hold only strings, got {}", where, key, describe(&e)));
    out.push_back(*s);
  }
  return out;
}

int whole_count(const toml::node* n, const std::string& label, const std::string& where) {
  const auto v = n ? n->value<double>() : std::nullopt;
  if (!v || !(*v >= 0) || *v != std::floor(*v) || *v > std::numeric_limits<int>::max())
    throw BadInput(fmt::format("{}: {} must be a whole number >= 0, got {}", where, label, describe(n)));
  return static_cast<int>(*v);
}

int int_field(const toml::table& t, std::string_view key, int fallback, const std::string& where) {
  if (!t[key]) return fallback;
  return whole_count(t.get(key), quoted(key), where);
}

int positive_count(const toml::table& t, std::string_view key, std::optional<int> fallback, const std::string& where,
                   std::string_view what) {
  if (!t[key] && !fallback) throw BadInput(where + ": missing count '" + std::string(key) + "'");
  const int n = int_field(t, key, fallback.value_or(0), where);
  if (n < 1)
    throw BadInput(fmt::format("{}: '{}' must be a whole number >= 1{}, got {}", where, key,
                               what.empty() ? "" : " (" + std::string(what) + ")", n));
  return n;
}

std::vector<int> int_list(const toml::table& t, std::string_view key, const std::string& where) {
  std::vector<int> out;
  if (!t[key]) return out;
  const toml::array* arr = t[key].as_array();
  if (arr == nullptr)
    throw BadInput(fmt::format("{}: '{}' must be an array of whole numbers, got {}", where, key, describe(t.get(key))));
  for (auto& e : *arr) out.push_back(whole_count(&e, "each entry of '" + std::string(key) + "'", where));
  return out;
}

double plausible_rate(const toml::node* n, const RateRange& range, const std::string& label, const std::string& where,
                      std::string_view if_zero) {
  const auto v = n ? n->value<double>() : std::nullopt;
  if (!v || !(*v > 0) || !std::isfinite(*v))
    throw BadInput(fmt::format("{}: {} must be a number > 0 {}, got {}{}", where, label, range.unit, describe(n),
                               v && *v == 0 && !if_zero.empty() ? " (" + std::string(if_zero) + ")" : ""));
  if (*v < range.lo || *v > range.hi)
    throw BadInput(fmt::format("{}: {} = {} {} is outside the plausible range [{:g}, {:g}] {} ({}); check the "
                               "unit: the value is in {}",
                               where, label, *v, range.unit, range.lo, range.hi, range.unit, range.span, range.unit));
  return *v;
}

std::string one_of_error(std::string_view key, const std::string& got, const std::vector<std::string>& names,
                         const std::string& where) {
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : " | ") + n;
  const std::string best = closest_match(got, names);
  return fmt::format("{}: '{}' must be one of {}, got \"{}\"{}", where, key, list, got,
                     best.empty() ? "" : "; did you mean \"" + best + "\"?");
}

}  // namespace toml_input
}  // namespace mlsysim
