// Batch inference: texts in, per-label logits and sigmoid probabilities out, in input order.
// Texts are sorted by length inside a call so that each batch pads to similar lengths.
#pragma once

#include <string>
#include <vector>

#include "infer/thresholds.h"
#include "model/checkpoint.h"
#include "data/labels.h"

namespace emotune::infer {

struct Prediction {
  std::vector<float> logits;  // label-id order
  std::vector<float> probs;   // scores_from_logits
  bool truncated = false;     // the text was longer than max_length tokens
};

// Logits [N, num_labels] for token id sequences, in input order; batches of similar lengths. On the
// CPU, streams > 1 runs that many batches at once, each on one thread (for whole datasets; a single
// batch runs on all of libtorch's threads either way).
torch::Tensor compute_logits(model::SequenceClassifier& model,
                             const std::vector<const std::vector<std::int32_t>*>& sequences, std::size_t batch_size,
                             std::int32_t pad_id, torch::Device device, std::size_t streams = 1);

class Predictor {
 public:
  // max_length 0 = the model's max_tokens().
  Predictor(model::ModelBundle& bundle, torch::Device device, std::size_t max_length = 0);

  // streams: see compute_logits.
  std::vector<Prediction> predict(const std::vector<std::string>& texts, std::size_t batch_size = 32,
                                  std::size_t streams = 1);
  // The two halves of predict: tokenizing (thread-safe; the server does it on request threads) and
  // the model over already tokenized texts.
  std::vector<text::Encoding> encode(const std::vector<std::string>& texts) const;
  std::vector<Prediction> predict_encoded(const std::vector<text::Encoding>& encodings, std::size_t batch_size = 32,
                                          std::size_t streams = 1);
  std::size_t max_length() const { return max_length_; }
  const model::ModelBundle& bundle() const { return bundle_; }

 private:
  model::ModelBundle& bundle_;
  torch::Device device_;
  std::size_t max_length_;
};

// Probabilities from logits [N, labels] as the model was trained to give them (config.json's
// problem_type): sigmoid per label for multi-label models, softmax over labels for single-label ones.
torch::Tensor scores_from_logits(const torch::Tensor& logits, const model::ModelConfig& config);

// Label ids whose score reaches their threshold, highest score first, at most top_k (0 = all).
std::vector<std::size_t> select_labels(const std::vector<float>& scores, const std::vector<float>& thresholds,
                                       std::size_t top_k);

// Probabilities of a 28-label GoEmotions model seen through a taxonomy's groups:
// [N, 28] -> [N, groups], a group's probability being the largest of its members'.
torch::Tensor group_probabilities(const torch::Tensor& probs, data::Taxonomy taxonomy);


// A model loaded for inference, and where it runs.
struct InferenceModel {
  std::size_t streams;  // forward passes at once: the threads configured
  torch::Device device;
  model::ModelBundle bundle;
};
// How predict, eval, monitor and serve start: configures this process's threads and `device`, then
// loads `model_dir` packed for inference in `precision`. map_embeddings: model::LoadOptions's (a
// long-lived server passes false).
InferenceModel load_for_inference(const std::string& model_dir, int threads, const std::string& device,
                                  const std::string& precision, bool map_embeddings = true);

}  // namespace emotune::infer
