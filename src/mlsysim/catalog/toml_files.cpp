#include "mlsysim/catalog/toml_files.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

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

}  // namespace mlsysim
