// `emotune eval`'s work: a model scored on a GoEmotions split with its thresholds fixed, read from a
// file, or tuned on dev (and then saved as the model's thresholds.json); the metrics; and the files
// asked for (per-example probabilities, reports).
#pragma once

#include <torch/types.h>

#include <cstddef>
#include <filesystem>
#include <string>

#include "eval/calibrate.h"
#include "infer/predictor.h"
#include "eval/report.h"
#include "model/checkpoint.h"

namespace emotune::eval {

struct EvaluateOptions {
  std::filesystem::path data_file;  // the split to report
  std::string split;                // its name ("test", or the file's)
  std::filesystem::path dev_file;   // for thresholds "tuned"; empty when there is none
  std::string thresholds = "0.5";   // a number in [0, 1], "tuned", or a thresholds.json file
  std::string taxonomy = "original";
  std::size_t batch_size = 32;
  std::size_t max_length = 0;  // 0: the model's maximum
  std::size_t streams = 1;     // forward passes at once
  infer::LongTextOptions long_text;  // texts longer than max_length: cut, or scored in windows
  std::filesystem::path dump_probs, report_dir;  // empty: not written
};

// Errors: SettingError for options that cannot be used (a max_length past the model's positions,
// thresholds tuned on the split being reported), InputError for data the model cannot be scored on.
EvalResult evaluate(model::ModelBundle& bundle, const std::filesystem::path& model_dir, const EvaluateOptions& o,
                    torch::Device device);

struct CalibrateOptions {
  std::filesystem::path dev_file;
  std::string fit = "auto";
  std::size_t batch_size = 32;
  std::size_t max_length = 0;  // 0: the model's maximum
  std::size_t streams = 1;
};

// `emotune calibrate`'s work: scores dev with the model's own labels (uncalibrated), chooses a
// fit (eval/calibrate.h) and saves it with thresholds re-tuned on the calibrated scores.
CalibrationChoice calibrate(model::ModelBundle& bundle, const std::filesystem::path& model_dir,
                            const CalibrateOptions& o, torch::Device device);

}  // namespace emotune::eval
