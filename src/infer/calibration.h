// Calibrated probabilities (calibration.json): score = sigmoid(logit / temperature + bias) per label,
// fitted on dev by `emotune calibrate` or at the end of `train` (eval/calibrate.h). Read and written
// here only, without libtorch, so that the reader is fuzzed like the other files of a model directory.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace emotune::infer {

// The kinds of fit, from the fewest parameters to the most. Temperature scaling alone cannot move a
// label's scores down as a whole, which a model trained with positive-class weights needs; the bias
// of Platt scaling can.
inline const std::vector<std::string>& calibration_fits() {
  static const std::vector<std::string> fits{"temperature", "temperature-per-label", "platt", "platt-per-label"};
  return fits;
}

struct Calibration {
  std::string fit;                 // one of calibration_fits(); empty: none (plain sigmoid)
  std::vector<float> temperature;  // per label, in the model's label order; > 0
  std::vector<float> bias;         // per label; 0 for the temperature fits
  bool applies() const { return !temperature.empty(); }
};

// The calibration of a model directory: calibration.json when present, else none.
Calibration load_calibration(const std::filesystem::path& model_dir, const std::vector<std::string>& labels);
// The same from a given file, which must exist: labels by name (every one of the model's, once),
// temperatures finite in [1e-3, 1e3], biases finite within +-1e3. Errors: std::runtime_error naming
// the file and the field.
Calibration load_calibration_file(const std::filesystem::path& path, const std::vector<std::string>& labels);

// Writes model_dir/calibration.json atomically, labels by name (`labels` is the model's order);
// `about` (where it was fitted, the comparison it was chosen by) is kept under "fitted_on".
void save_calibration(const std::filesystem::path& model_dir, const std::vector<std::string>& labels,
                      const Calibration& calibration, const nlohmann::ordered_json& about);

}  // namespace emotune::infer
