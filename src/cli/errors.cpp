#include "cli/errors.h"

#include <c10/util/Exception.h>

#include <new>

#include "util/errors.h"

namespace emotune::cli {

std::string first_line(std::string s) {
  const auto nl = s.find('\n');
  if (nl != std::string::npos) s.resize(nl);
  return s;
}

namespace {

FailureReport internal(const std::string& what) {
  return {1, "emotune: internal error: " + printable(first_line(what)) +
                 " (a bug in emotune, not in your input: please report it with the command that caused it)"};
}

}  // namespace

FailureReport report_failure(const std::exception_ptr& failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const std::bad_alloc&) {
    return {2, "emotune: error: out of memory (a smaller --batch-size or --max-length, or a smaller model, needs less)"};
  } catch (const c10::Error& e) {
    return internal(e.what_without_backtrace());
  } catch (const std::exception& e) {
    if (classify(e) == Failure::Internal) return internal(e.what());
    return {2, "emotune: error: " + printable(first_line(render_settings(e.what(), /*as_flags=*/true)))};
  } catch (...) {
    return internal("an exception that is not a std::exception");
  }
}

}  // namespace emotune::cli
