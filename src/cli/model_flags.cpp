#include "cli/model_flags.h"

#include "fetch/resolve.h"

namespace emotune::cli {

std::string resolve_model_flag(const std::string& name, bool offline, const char* flag) {
  return fetch::resolve_model(name, fetch::cli_fetch_options(offline), flag).string();
}

}  // namespace emotune::cli
