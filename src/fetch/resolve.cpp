#include "fetch/resolve.h"

#include "util/atomic_file.h"
#include "util/errors.h"

#include <unistd.h>

#include <array>
#include <cstdlib>
#include <regex>
#include <spdlog/spdlog.h>

#include "fetch/cache.h"
#include "fetch/download.h"
#include "util/atomic_file.h"

namespace emotune::fetch {

namespace fs = std::filesystem;

namespace {

// The published SHA-256 of the GoEmotions splits (google-research, goemotions/data).
struct DataFile {
  const char* name;
  const char* sha256;
};
constexpr std::array<DataFile, 4> kGoEmotionsFiles{{
    {"train.tsv", "1c254a142be5c00e80d819b9ae1bbd36d94b2eeb8f4b1271846508d57e57d9c5"},
    {"dev.tsv", "575489c079c9de1097062a01738f998590d6b7ead66dd1c9fd1d2ba01fd8bc62"},
    {"test.tsv", "0587b2dd8b27b97352adbfc3fb083d46005c8946657fdc2b1ca8b1cc7f1f8be4"},
    {"emotions.txt", ""},
}};
constexpr const char* kGoEmotionsUrl =
    "https://raw.githubusercontent.com/google-research/google-research/master/goemotions/data";

// Files of a hub model that emotune reads: config.json must exist, then the weights (model.safetensors,
// else pytorch_model.bin, which older checkpoints have alone); the tokenizer files that exist.
constexpr std::array<const char*, 9> kModelFiles{"config.json",     "model.safetensors",     "pytorch_model.bin",
                                                  "vocab.txt",       "tokenizer.json",        "tokenizer_config.json",
                                                  "special_tokens_map.json", "vocab.json", "merges.txt"};
constexpr std::size_t kSafetensors = 1, kTorchBin = 2;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

std::string strip_slash(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

bool offline(const FetchOptions& o) { return o.offline || hub_offline_from_env(); }

}  // namespace

FetchOptions cli_fetch_options(bool offline) {
  FetchOptions o;
  o.offline = offline;
  const std::string pickle = env("EMOTUNE_ALLOW_PICKLE");
  o.allow_pickle = pickle == "1" || pickle == "true" || pickle == "yes";
  o.progress = ::isatty(STDERR_FILENO) != 0;
  return o;
}

bool looks_like_repo_id(const std::string& arg) {
  static const std::regex id(R"(^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$)");
  return arg.size() <= 96 && std::regex_match(arg, id) && arg.find("..") == std::string::npos;
}

namespace {

// Branch and tag names as git allows them in the hub's URLs (refs/pr/1 included), or a commit hash;
// never a path out of the cache ('..', absolute paths and parts starting with '.' are refused).
void check_revision(const std::string& rev) {
  static const std::regex name(R"(^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$)");
  const bool ok = rev.size() <= 128 && std::regex_match(rev, name) && rev.find("..") == std::string::npos &&
                  rev.back() != '.' && rev.find(".lock") == std::string::npos;
  if (!ok)
    throw std::invalid_argument("{revision} " + rev + ": not a branch, tag or commit name (letters, digits, . _ - and "
                                "/ between parts; no '..', no leading '/' or '.')");
}

// --to may name a new or empty directory, or an earlier copy of a model: never anything else, which
// replacing would delete.
void check_replaceable(const fs::path& dest) {
  std::error_code ec;
  if (!fs::exists(dest, ec)) return;
  if (!fs::is_directory(dest, ec)) throw std::invalid_argument("{to} " + dest.string() + " exists and is not a directory");
  if (fs::is_empty(dest, ec) || is_complete_model_dir(dest)) return;
  throw std::invalid_argument("{to} " + dest.string() + " holds files that are not a model: choose a new or empty directory");
}

// A hub model whose weights are only a Python pickle: taken on the user's word alone.
InputError pickle_refused(const std::string& repo, const std::string& where) {
  return InputError(where + " " + repo + " with pytorch_model.bin and no model.safetensors: a Python pickle, which can "
                    "run code when loaded and meets libtorch 1.13's unpickler, which has known memory-safety bugs. "
                    "Take it only if you trust its author: `emotune fetch " + repo + " --allow-pickle` (or "
                    "EMOTUNE_ALLOW_PICKLE=1); better, convert it to model.safetensors");
}

}  // namespace

fs::path fetch_model(const std::string& repo, const FetchOptions& o, const std::string& flag) {
  if (!looks_like_repo_id(repo)) throw std::invalid_argument("not a model name (NAME or ORG/NAME): " + repo);
  check_revision(o.revision);
  const fs::path dest = o.to ? *o.to : model_cache_dir(repo, o.revision);
  if (is_complete_model_dir(dest)) return dest;
  if (!o.to)
    if (auto hf = find_in_hf_cache(repo, o.revision)) {
      if (!o.allow_pickle && !fs::exists(*hf / kModelFiles[kSafetensors])) throw pickle_refused(repo, "the Hugging Face cache has");
      return *hf;
    }
  if (offline(o))
    throw std::runtime_error(repo + " is not in the emotune cache (" + dest.string() + ") or the Hugging Face cache (" +
                             hf_hub_cache().string() + "), and downloads are off ({offline} / HF_HUB_OFFLINE)");

  const std::string endpoint = strip_slash(env("HF_ENDPOINT").empty() ? "https://huggingface.co" : env("HF_ENDPOINT"));
  const std::string token = env("HF_TOKEN");
  const auto policy = policy_from_env();
  for (std::size_t i = 0; i < kModelFiles.size(); ++i) {
    const fs::path file = dest / kModelFiles[i];
    if (fs::exists(file)) continue;
    if (i == kTorchBin && fs::exists(dest / kModelFiles[kSafetensors])) continue;
    DownloadRequest r;
    r.url = endpoint + "/" + repo + "/resolve/" + o.revision + "/" + kModelFiles[i];
    r.dest = file;
    if (!token.empty()) r.bearer_token = token;
    r.progress = o.progress;
    try {
      download(r, policy);
    } catch (const FetchError& e) {
      if (e.kind == Failure::not_found && i == kSafetensors) {
        if (!o.allow_pickle) throw pickle_refused(repo, "the hub has");
        continue;  // then pytorch_model.bin
      }
      if (e.kind == Failure::not_found && i == kTorchBin)
        throw FetchError(e.kind, repo + " has neither model.safetensors nor pytorch_model.bin at revision " + o.revision, 404);
      if (e.kind == Failure::not_found && i > kTorchBin) continue;  // optional tokenizer files
      if (e.kind == Failure::not_found && i == 0)
        throw FetchError(e.kind, "no such model: " + repo + " at revision " + o.revision + " (HTTP 404 from " + r.url + ")", 404);
      if (e.kind == Failure::unreachable)
        throw FetchError(e.kind, "cannot reach " + url_host(r.url) + "; download " + repo + " on a connected machine and pass " +
                                     flag + " DIR, or copy its files into " + dest.string());
      throw;
    }
  }
  if (!is_complete_model_dir(dest))
    throw std::runtime_error(repo + " has no tokenizer emotune reads (vocab.txt, tokenizer.json, or vocab.json + merges.txt)");
  return dest;
}

fs::path import_model(const std::string& repo, const fs::path& from, const FetchOptions& o) {
  if (!looks_like_repo_id(repo)) throw std::invalid_argument("not a model name (NAME or ORG/NAME): " + repo);
  if (!is_complete_model_dir(from))
    throw std::runtime_error(from.string() + " is not a model directory (config.json, model.safetensors or " +
                             "pytorch_model.bin, and vocab.txt, tokenizer.json, or vocab.json + merges.txt)");
  check_revision(o.revision);
  const fs::path dest = o.to ? *o.to : model_cache_dir(repo, o.revision);
  check_replaceable(dest);
  util::write_directory_atomically(dest, /*overwrite=*/true, [&](const fs::path& tmp) {
    for (const char* name : kModelFiles)
      if (fs::is_regular_file(from / name)) fs::copy_file(from / name, tmp / name);
  });
  return dest;
}

fs::path fetch_goemotions(const FetchOptions& o) {
  const fs::path dest = o.to ? *o.to : goemotions_cache_dir();
  auto complete = [&] {
    for (const auto& f : kGoEmotionsFiles)
      if (!fs::is_regular_file(dest / f.name)) return false;
    return true;
  };
  if (complete()) return dest;
  if (offline(o))
    throw std::runtime_error("GoEmotions is not in " + dest.string() + " and downloads are off ({offline} / HF_HUB_OFFLINE)");
  const std::string base = strip_slash(env("EMOTUNE_GOEMOTIONS_URL").empty() ? kGoEmotionsUrl : env("EMOTUNE_GOEMOTIONS_URL"));
  const auto policy = policy_from_env();
  for (const auto& f : kGoEmotionsFiles) {
    if (fs::exists(dest / f.name)) continue;
    DownloadRequest r;
    r.url = base + "/" + f.name;
    r.dest = dest / f.name;
    r.sha256 = f.sha256;
    r.progress = o.progress;
    try {
      download(r, policy);
    } catch (const FetchError& e) {
      if (e.kind == Failure::unreachable)
        throw FetchError(e.kind, "cannot reach " + url_host(r.url) +
                                     "; download GoEmotions on a connected machine and pass {data_dir} DIR, or copy "
                                     "train.tsv, dev.tsv, test.tsv and emotions.txt into " + dest.string());
      throw;
    }
  }
  return dest;
}

fs::path resolve_model(const std::string& arg, const FetchOptions& o, const std::string& flag) {
  std::error_code ec;
  if (arg.empty() || fs::is_directory(arg, ec)) return arg;
  if (!looks_like_repo_id(arg)) throw NotFoundError("model directory not found: " + arg);
  spdlog::info("{} is not a directory: resolving it as a Hugging Face model name", arg);
  return fetch_model(arg, o, flag);
}

fs::path resolve_data_dir(const std::string& arg, const FetchOptions& o) {
  std::error_code ec;
  if (arg.empty() || fs::is_directory(arg, ec)) return arg;
  if (arg == "goemotions") return fetch_goemotions(o);
  throw NotFoundError("data directory not found: " + arg + " (or give the name goemotions to use the cached download)");
}

}  // namespace emotune::fetch
