// Per-label decision thresholds (thresholds.json), read and written here only, without libtorch.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace emotune::infer {

// Per-label decision thresholds of a model directory: thresholds.json when present
// ({"values": [..label-id order..]} or {"values": {"label": t}}), else 0.5 for every label.
std::vector<float> load_thresholds(const std::filesystem::path& model_dir, const std::vector<std::string>& labels);
// The same from a given thresholds file (which must exist); values must be numbers in [0, 1] and
// names the model's labels.
std::vector<float> load_thresholds_file(const std::filesystem::path& path, const std::vector<std::string>& labels);

// Where saved thresholds came from: tuned on `file` (a dev split) for `taxonomy`'s labels.
struct ThresholdsOrigin {
  std::string source = "dev";
  std::string file;
  std::string taxonomy = "original";
};
// Writes model_dir/thresholds.json (atomically): `values` for `labels`, as a list when `labels` are
// the model's in its order, else by name; `model_labels` must be a permutation of `labels`.
void save_thresholds(const std::filesystem::path& model_dir, const std::vector<std::string>& labels,
                     const std::vector<float>& values, const std::vector<std::string>& model_labels,
                     const ThresholdsOrigin& origin);

}  // namespace emotune::infer
