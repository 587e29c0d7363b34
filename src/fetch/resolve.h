// Names to directories: a hub model name (distilbert-base-uncased, org/name) or the dataset name
// goemotions becomes a local folder, found in emotune's cache or the Hugging Face cache, else
// downloaded (unless offline). Paths that exist are used as they are.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace emotune::fetch {

struct FetchOptions {
  bool offline = false;                 // --offline; HF_HUB_OFFLINE=1 also forbids downloads
  std::string revision = "main";        // hub branch, tag or commit
  std::optional<std::filesystem::path> to;  // store here instead of the cache
  bool progress = false;                // progress bars on stderr
  // Take a hub model whose only weights are pytorch_model.bin (a Python pickle) from a download or the
  // Hugging Face cache: `fetch --allow-pickle` or EMOTUNE_ALLOW_PICKLE=1. Local folders are the user's
  // own choice and always load.
  bool allow_pickle = false;
};

// Options for a command-line run: progress bars when stderr is a terminal, pickles as
// EMOTUNE_ALLOW_PICKLE says.
FetchOptions cli_fetch_options(bool offline);

// Whether `arg` has the form of a hub model id: NAME or ORG/NAME.
bool looks_like_repo_id(const std::string& arg);

// A local copy of hub model `repo`: emotune's cache, the Hugging Face cache, or a fresh download.
// `flag` names the option that takes a directory instead, for the error message.
std::filesystem::path fetch_model(const std::string& repo, const FetchOptions& o, const std::string& flag = "--base");

// Puts the model files found in local folder `from` (config.json, weights, tokenizer files) into the
// cache as hub model `repo` (or into o.to), replacing what is there; for files that came another way
// than the hub (a Python package, a copy from a connected machine). Returns the cache folder.
std::filesystem::path import_model(const std::string& repo, const std::filesystem::path& from, const FetchOptions& o);

// A local copy of GoEmotions (train.tsv, dev.tsv, test.tsv, emotions.txt), verified.
std::filesystem::path fetch_goemotions(const FetchOptions& o);

// `arg` if it is a directory, else the model it names (see fetch_model).
std::filesystem::path resolve_model(const std::string& arg, const FetchOptions& o, const std::string& flag);

// `arg` if it is a directory, else GoEmotions when it is the name "goemotions".
std::filesystem::path resolve_data_dir(const std::string& arg, const FetchOptions& o);

}  // namespace emotune::fetch
