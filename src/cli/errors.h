// How the command line reports a failure: one line for stderr and the exit code, decided here and
// nowhere else. 2: the caller's flags, inputs or machine (util/errors.h's Setting, Input and System
// failures, CLI11's parse errors); 1: a failure of emotune's own (Internal), worded as a bug to report.
#pragma once

#include <exception>
#include <string>

namespace emotune::cli {

struct FailureReport {
  int exit_code;
  std::string line;  // "emotune: error: ..." with settings written as flags, no newline
};

FailureReport report_failure(const std::exception_ptr& failure);

// The first line of a message (libtorch's and CLI11's carry more: backtraces, usage).
std::string first_line(std::string s);

}  // namespace emotune::cli
