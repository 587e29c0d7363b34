// Per-label decision thresholds (thresholds.json), read without libtorch.
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

}  // namespace emotune::infer
