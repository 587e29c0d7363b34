#include "fetch/cache.h"

#include <cstdlib>
#include <fstream>

namespace emotune::fetch {

namespace fs = std::filesystem;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

fs::path home_dir() {
  const std::string h = env("HOME");
  if (h.empty()) throw std::runtime_error("HOME is not set: set EMOTUNE_HOME to choose the cache folder");
  return h;
}

// "org/name" -> "org--name", as the hub cache names its folders.
std::string flat(const std::string& repo) {
  std::string out;
  for (char c : repo) out += c == '/' ? std::string("--") : std::string(1, c);
  return out;
}

}  // namespace

fs::path emotune_home() {
  if (const auto e = env("EMOTUNE_HOME"); !e.empty()) return e;
  if (const auto x = env("XDG_CACHE_HOME"); !x.empty()) return fs::path(x) / "emotune";
  return home_dir() / ".cache" / "emotune";
}

fs::path hf_hub_cache() {
  if (const auto c = env("HF_HUB_CACHE"); !c.empty()) return c;
  if (const auto h = env("HF_HOME"); !h.empty()) return fs::path(h) / "hub";
  return home_dir() / ".cache" / "huggingface" / "hub";
}

bool hub_offline_from_env() {
  std::string v = env("HF_HUB_OFFLINE");
  for (auto& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return v == "1" || v == "true" || v == "yes" || v == "on";
}

fs::path model_cache_dir(const std::string& repo, const std::string& revision) {
  return emotune_home() / "models" / flat(repo) / flat(revision);  // refs/pr/1: one folder, refs--pr--1
}

fs::path goemotions_cache_dir() { return emotune_home() / "datasets" / "goemotions"; }

bool is_complete_model_dir(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "config.json", ec) &&
         (fs::is_regular_file(dir / "model.safetensors", ec) || fs::is_regular_file(dir / "pytorch_model.bin", ec)) &&
         (fs::is_regular_file(dir / "vocab.txt", ec) || fs::is_regular_file(dir / "tokenizer.json", ec) ||
          (fs::is_regular_file(dir / "vocab.json", ec) && fs::is_regular_file(dir / "merges.txt", ec)));
}

std::optional<fs::path> find_in_hf_cache(const std::string& repo, const std::string& revision) {
  const fs::path root = hf_hub_cache() / ("models--" + flat(repo));
  std::string commit = revision;
  if (std::ifstream ref(root / "refs" / revision); ref) std::getline(ref, commit);
  const fs::path snapshot = root / "snapshots" / commit;
  if (commit.empty() || !is_complete_model_dir(snapshot)) return std::nullopt;
  return snapshot;
}

}  // namespace emotune::fetch
