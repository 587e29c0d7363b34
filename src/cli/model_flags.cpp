#include "cli/model_flags.h"

#include "fetch/resolve.h"

namespace emotune::cli {

std::string resolve_model_flag(const std::string& name, bool offline, const char* flag) {
  return fetch::resolve_model(name, fetch::cli_fetch_options(offline), flag).string();
}

void add_long_text_options(CLI::App* cmd, LongTextFlags& flags) {
  cmd->add_option("--long-text", flags.mode,
                  "Texts longer than the model's window: truncate (cut, as transformers and TEI do; the default) | "
                  "window (score overlapping windows, combine per label)")
      ->check(CLI::IsMember({"truncate", "window"}));
  cmd->add_option("--window-stride", flags.stride, "With --long-text window: tokens from one window's start to the next "
                                                   "(default: half a window)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
  cmd->add_option("--window-combine", flags.combine,
                  "With --long-text window: max (each label from its highest window; default) | mean (the windows' mean logit)")
      ->check(CLI::IsMember({"max", "mean"}));
}

}  // namespace emotune::cli
