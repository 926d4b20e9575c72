#include "mlsysim/catalog/named_entries.hpp"

#include <fmt/format.h>

namespace mlsysim {

BadInput name_taken(const char* what, const std::string& id, const std::string& name, const std::string& file,
                    const std::string& other_id, const EntryOrigin& other) {
  const bool name_is_id = normalize_name(name) == normalize_name(id);
  const bool other_by_id = normalize_name(name) == normalize_name(other_id);
  std::string msg = fmt::format("{} [{}]: the {} '{}' is already {} of {}{} '{}' ({})", file, id,
                                name_is_id ? "id" : "alias", name, other_by_id ? "the id" : "an alias",
                                other.builtin ? "built-in " : "", what, other_id, other.file);
  if (name_is_id && other_by_id)  // the same id twice outside the built-in files
    msg += ": each id is defined once (a --catalog entry may replace a built-in entry by reusing its id, "
           "but not another entry from the same catalog)";
  else if (other.builtin)  // the built-in names stay: only an entry with the built-in's id replaces it
    msg += fmt::format(": choose another {}, or give the entry the id '{}' to replace that built-in {}",
                       name_is_id ? "id" : "alias", other_id, what);
  else
    msg += ": rename one of them (each id and alias names one entry; names are compared ignoring case, "
           "with '_' and ' ' read as '-')";
  return BadInput(msg);
}

}  // namespace mlsysim
