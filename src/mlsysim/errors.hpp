// Errors every front end maps the same way: bad input (CLI exit 1, Python ValueError) and a
// workload that does not fit in memory (CLI exit 2, Python OOMError). Messages say what was wrong,
// the valid range, and what to do instead.
#pragma once

#include <stdexcept>
#include <string>

namespace mlsysim {

class BadInput : public std::invalid_argument {
 public:
  explicit BadInput(const std::string& what) : std::invalid_argument(what) {}
};

class DoesNotFit : public std::runtime_error {
 public:
  DoesNotFit(const std::string& what, double required_bytes, double available_bytes)
      : std::runtime_error(what), required_bytes(required_bytes), available_bytes(available_bytes) {}
  double required_bytes, available_bytes;
};

// BadInput for a file that is not valid JSON: `origin` and the parser's own account of where
// (nlohmann's text without its "[json.exception.parse_error.101] " tag, which means nothing to a
// person reading it).
inline BadInput invalid_json(const std::string& origin, std::string parser_message) {
  const std::string tag = "[json.exception.";
  if (parser_message.rfind(tag, 0) == 0) {
    const auto end = parser_message.find("] ");
    if (end != std::string::npos) parser_message.erase(0, end + 2);
  }
  return BadInput(origin + ": not valid JSON (" + parser_message + ")");
}

}  // namespace mlsysim
