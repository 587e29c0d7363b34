// Batch inference: texts in, per-label logits and sigmoid probabilities out, in input order.
// Texts are sorted by length inside a call so that each batch pads to similar lengths.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "infer/calibration.h"
#include "infer/thresholds.h"
#include "model/checkpoint.h"
#include "data/labels.h"

namespace emotune::infer {

// Texts longer than the model's window: cut to it (as transformers and TEI do), or scored in
// overlapping windows of the window's length whose logits are combined per label.
enum class LongText { truncate, window };
enum class WindowCombine { max, mean };  // max: each label from its highest window; mean: the windows' mean logit
struct LongTextOptions {
  LongText mode = LongText::truncate;
  std::size_t stride = 0;  // tokens from one window's start to the next; 0: half a window
  WindowCombine combine = WindowCombine::max;
};
LongText parse_long_text(const std::string& name);            // "truncate" | "window"; SettingError otherwise
WindowCombine parse_window_combine(const std::string& name);  // "max" | "mean"; SettingError otherwise

// The part of a text one window scored: its tokens [first_token, end_token) (not counting the special
// tokens), and the code points [start, end) of the text they came from.
struct TextWindow {
  std::size_t first_token = 0, end_token = 0;
  std::size_t start = 0, end = 0;
};

struct Prediction {
  std::vector<float> logits;  // label-id order
  std::vector<float> probs;   // scores_from_logits, calibrated when the model directory has calibration.json
  bool truncated = false;     // the text was longer than max_length tokens and was cut
  std::vector<TextWindow> windows;       // a text scored in several windows: each (else empty)
  std::vector<std::uint32_t> window_of;  // combined by max: the window each label's score came from
};

// Logits [N, num_labels] for token id sequences, in input order; batches of similar lengths. On the
// CPU, streams > 1 runs that many batches at once, each on one thread (for whole datasets; a single
// batch runs on all of libtorch's threads either way).
torch::Tensor compute_logits(model::SequenceClassifier& model,
                             const std::vector<const std::vector<std::int32_t>*>& sequences, std::size_t batch_size,
                             std::int32_t pad_id, torch::Device device, std::size_t streams = 1);

// Logits [N, labels] of token id sequences of any length (each with one special token at each end):
// a sequence within its window length (window_lengths[i]; SIZE_MAX: never windowed) in one pass, a
// longer one in windows of that many ids (its special tokens around window length - 2 of its tokens,
// one window every `options.stride` tokens, the last one reaching its end) combined per label as
// options.combine says. windows/window_of: per sequence, as in Prediction.
struct WindowedLogits {
  torch::Tensor logits;
  std::vector<std::vector<TextWindow>> windows;
  std::vector<std::vector<std::uint32_t>> window_of;
};
WindowedLogits windowed_logits(model::SequenceClassifier& model, const std::vector<const std::vector<std::int32_t>*>& sequences,
                               const std::vector<std::size_t>& window_lengths, const LongTextOptions& options,
                               std::size_t batch_size, std::int32_t pad_id, torch::Device device, std::size_t streams = 1);

// The length of the windows long texts are scored in: `requested` when given (checked against the
// model's positions), else the length the model was fine-tuned on when its directory says
// (training_args.json's max_length: a model trained on 128-token texts reads a 128-token window as it
// read those, where a 512-token window of mostly other text dilutes one sentence), else the model's
// maximum.
std::size_t window_length_for(const model::ModelBundle& bundle, std::size_t requested);

class Predictor {
 public:
  // max_length 0 = the model's max_tokens(). Reads the calibration of bundle.dir (calibration.json).
  // long_text: what happens to texts longer than max_length tokens: cut (with one warning per
  // Predictor; the default), or scored in windows of window_length_for(bundle, max_length) tokens.
  Predictor(model::ModelBundle& bundle, torch::Device device, std::size_t max_length = 0,
            LongTextOptions long_text = {});

  // streams: see compute_logits.
  std::vector<Prediction> predict(const std::vector<std::string>& texts, std::size_t batch_size = 32,
                                  std::size_t streams = 1);
  // The two halves of predict: tokenizing (thread-safe; the server does it on request threads) and
  // the model over already tokenized texts.
  // In window mode a text longer than a window is encoded whole, with its token spans (the windows'
  // places); predict_encoded scores those, and only those, in windows.
  std::vector<text::Encoding> encode(const std::vector<std::string>& texts) const;
  std::vector<text::Encoding> encode(const std::vector<std::string>& texts, LongText mode) const;
  std::vector<Prediction> predict_encoded(const std::vector<text::Encoding>& encodings, std::size_t batch_size = 32,
                                          std::size_t streams = 1);
  std::size_t max_length() const { return max_length_; }
  std::size_t window_length() const { return window_length_; }
  const LongTextOptions& long_text() const { return long_text_; }
  const model::ModelBundle& bundle() const { return bundle_; }
  const Calibration& calibration() const { return calibration_; }

 private:
  model::ModelBundle& bundle_;
  Calibration calibration_;
  torch::Device device_;
  std::size_t max_length_;     // where a text is cut
  std::size_t window_length_;  // the windows of a long text
  LongTextOptions long_text_;
  mutable std::atomic<bool> warned_of_a_cut_{false};
};

// Probabilities from logits [N, labels] as the model was trained to give them (config.json's
// problem_type): sigmoid per label for multi-label models, softmax over labels for single-label ones;
// with a calibration, sigmoid(logit / temperature + bias).
torch::Tensor scores_from_logits(const torch::Tensor& logits, const model::ModelConfig& config,
                                 const Calibration& calibration = {});
// logits [N, labels] / temperature + bias, per label (the logits themselves without a calibration).
torch::Tensor calibrated_logits(const torch::Tensor& logits, const Calibration& calibration);
// The calibration of a loaded model's directory; InputError when a single-label model has one (it
// rescales sigmoid scores, which such a model does not give).
Calibration load_model_calibration(const model::ModelBundle& bundle);

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
