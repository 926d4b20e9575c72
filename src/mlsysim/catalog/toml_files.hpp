// Shared TOML plumbing for every catalog reader: parse with errors that name file and line, and
// read a directory of *.toml files in a stable order.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#define TOML_HEADER_ONLY 1
#define TOML_EXCEPTIONS 1
#include <toml++/toml.h>

namespace mlsysim {

// Parses `text`; a syntax error becomes BadInput "origin:line: description".
toml::table parse_toml(std::string_view text, const std::string& origin);

// (path, contents) of every *.toml directly under `dir`, sorted by path. BadInput if `dir` is not
// a directory (`flag` names the option that gave it, for the message).
std::vector<std::pair<std::string, std::string>> read_toml_dir(const std::string& dir,
                                                               const std::string& flag);

}  // namespace mlsysim
