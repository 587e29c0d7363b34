// Calibration fitted on dev (`emotune calibrate`, and `train` at its end): which of the fits in
// infer::calibration_fits() to use is chosen by held-out dev log-loss (two-fold cross-fitting: fit on
// the even rows, score the odd ones, and the other way round), then that fit is made on all of dev;
// the thresholds are re-tuned on the calibrated dev scores. Each fit minimises the binary
// cross-entropy of sigmoid(a * logit + c) by Newton's method (the loss is convex in a and c), with
// temperature = 1 / a and bias = c (c = 0 for the temperature fits).
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "infer/calibration.h"

namespace emotune::eval {

// One fit (one of infer::calibration_fits()) of logits [N, L] against multi-hot targets [N, L].
infer::Calibration fit_calibration(const torch::Tensor& logits, const torch::Tensor& targets, const std::string& fit);

// Mean binary cross-entropy of the calibrated scores (every example and label).
double calibrated_log_loss(const torch::Tensor& logits, const torch::Tensor& targets, const infer::Calibration& c);

struct CalibrationChoice {
  infer::Calibration calibration;
  nlohmann::ordered_json heldout_log_loss;  // {fit: cross-fitted dev log-loss} for each fit compared
  double log_loss_before = 0, log_loss_after = 0;  // on all of dev, before and after
  double ece_before = 0, ece_after = 0;
  std::vector<float> thresholds;  // tuned on the calibrated dev scores
};

// fit: "auto" (compare them all) or one of infer::calibration_fits(). logits [N, L] (uncalibrated),
// gold: label ids per example. SettingError for an unknown fit, InputError for fewer than 2 examples.
CalibrationChoice choose_calibration(const torch::Tensor& logits, const std::vector<std::vector<int>>& gold,
                                     const std::string& fit);

// Saves the choice into model_dir: calibration.json and thresholds.json (tuned on `dev_file`).
// `labels`: the columns the choice was fitted on, a permutation of the model's labels.
void save_choice(const std::filesystem::path& model_dir, const std::vector<std::string>& labels,
                 const std::vector<std::string>& model_labels, const CalibrationChoice& choice,
                 const std::string& dev_file, const std::string& taxonomy = "original");

}  // namespace emotune::eval
