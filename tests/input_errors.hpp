// Shared by the tests of input checking (catalogs, fleet files, command lines): the BadInput message
// a call throws, small edits of a valid test entry that make it invalid, and tables of refusals.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "mlsysim/errors.hpp"

namespace mlsysim::testing {

// The BadInput message of `call()`, or "" when it is accepted.
template <class Call>
std::string bad_input_of(Call&& call) {
  try {
    call();
  } catch (const BadInput& e) {
    return e.what();
  }
  return "";
}

inline bool mentions(const std::string& message, const std::string& part) {
  return message.find(part) != std::string::npos;
}

// `text` with its first `from` replaced by `to` (a test failure when `from` is not there).
inline std::string with(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  if (at == std::string::npos)
    ADD_FAILURE() << "'" << from << "' is not in the test entry";
  else
    text.replace(at, from.size(), to);
  return text;
}

// An input (a catalog entry, a command line) that must be refused, and a part the refusal's message
// must contain.
struct RefusedInput {
  std::string input, needle;
};

// Each input gets a refusal whose message names its needle; `error_of(input)` is the message, or ""
// when the input is accepted.
template <class ErrorOf>
void expect_each_refused(const std::vector<RefusedInput>& inputs, ErrorOf&& error_of) {
  for (const RefusedInput& input : inputs) {
    const std::string error = error_of(input.input);
    EXPECT_TRUE(mentions(error, input.needle)) << input.input << "\n" << error;
  }
}

}  // namespace mlsysim::testing
