// A model loaded for the Python package (python/emotune/): what emotune.Model calls. One call at a
// time per model (its mutex: packed layers create their oneDNN primitives on first use, and the
// explaining copy is made on first use), so several Python threads may share one; the module
// releases the GIL around every call. Results are plain rows of floats and JSON text, for the bindings.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "infer/predictor.h"

namespace emotune::python {

struct ModelOptions {
  std::string path;               // a model directory, or a hub name ("org/name") through the cache
  std::string device = "cpu";     // cpu | cuda
  std::string precision = "f32";  // f32 | bf16 | int8
  int threads = 0;                // 0: every core
  bool offline = false;           // never download
  std::size_t max_length = 0;     // 0: the model's maximum
  std::size_t batch_size = 32;
  std::string long_text = "truncate";  // truncate | window
  std::size_t window_stride = 0;       // 0: half a window
  std::string window_combine = "max";  // max | mean
};

// Scores of n texts, row after row: n x labels.
struct Scores {
  std::size_t rows = 0, labels = 0;
  std::vector<float> probs, logits;
  std::size_t truncated = 0;  // texts cut to the window (long_text truncate)
};

class Model {
 public:
  explicit Model(const ModelOptions& options);
  ~Model();

  const std::string& directory() const { return directory_; }
  const std::vector<std::string>& labels() const;
  // thresholds.json's per-label thresholds; 0.5 each when the directory has none.
  const std::vector<float>& tuned_thresholds() const { return thresholds_; }
  // Calibrated probabilities (calibration.json) when the directory has them, else the model's own.
  Scores scores(const std::vector<std::string>& texts);
  // The explanations of `text` as a JSON array of the CLI's objects (explain/attribution.h to_json):
  // of `label_ids` when given, else the top_k highest labels when top_k > 0, else the labels at or
  // above their tuned thresholds (the highest one when none is).
  std::string explain(const std::string& text, const std::vector<std::size_t>& label_ids, std::size_t top_k,
                      const std::string& method, std::size_t steps, const std::string& baseline);

 private:
  ModelOptions options_;
  std::string directory_;
  std::mutex mutex_;
  std::unique_ptr<infer::InferenceModel> loaded_;  // the Predictor keeps a reference: never moves
  std::optional<infer::Predictor> predictor_;
  std::vector<float> thresholds_;
  std::unique_ptr<model::ModelBundle> explaining_;  // plain float weights, loaded on the first explain
};

}  // namespace emotune::python
