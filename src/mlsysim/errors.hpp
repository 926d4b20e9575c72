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

}  // namespace mlsysim
