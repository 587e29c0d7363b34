// Which words made the model give a label its logit: attributions per token (and per word) toward one
// label's logit, by integrated gradients, gradient x input, or occlusion. All three compare the text
// with a baseline in which every token of the text (not the special tokens around it) is [PAD] or
// [MASK]; the gradients are taken with respect to the word-embedding vectors (Hugging Face's
// inputs_embeds), the way Captum's LayerIntegratedGradients on the word embeddings does.
//   integrated gradients: (x - b) . mean over alpha of dlogit/dx at b + alpha (x - b), alpha at the
//     midpoints of `steps` equal intervals; their sum approaches logit(x) - logit(b) (completeness),
//     and `delta` reports how far it is.
//   gradient x input: (x - b) . dlogit/dx at x (one step; a first-order estimate of the same).
//   occlusion: logit(x) - logit(x with that one token replaced by the baseline token).
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "infer/calibration.h"
#include "model/checkpoint.h"

namespace emotune::explain {

enum class Method { IntegratedGradients, GradientXInput, Occlusion };
enum class Baseline { Pad, Mask };

// "integrated-gradients", "gradient-x-input", "occlusion"; nullopt for anything else.
std::optional<Method> method_named(const std::string& name);
std::string method_name(Method method);
// "pad", "mask"; nullopt for anything else.
std::optional<Baseline> baseline_named(const std::string& name);

struct Options {
  Method method = Method::IntegratedGradients;
  std::size_t steps = 32;  // integrated gradients only
  Baseline baseline = Baseline::Pad;
  std::size_t max_length = 0;  // 0: the model's max_tokens()
  // Interpolated sequences x tokens per forward/backward pass: bounds memory for long texts.
  std::size_t max_batch_tokens = 2048;
};

// Options from their names (as flags and requests spell them); an unknown name throws invalid_argument.
Options options_named(const std::string& method, std::size_t steps, const std::string& baseline,
                      std::size_t max_length = 0);

// Largest accepted --steps: a million interpolation passes per label is nobody's explanation.
inline constexpr std::size_t kMaxSteps = 4096;

struct TokenAttribution {
  std::string token;            // the vocabulary's spelling
  std::size_t start = 0, end = 0;  // code points of the text
  double attribution = 0;
};

// Tokens that touch (no space between them) form one word, except that a token of punctuation or
// symbols alone is a word of its own; whitespace tokens belong to no word.
struct WordAttribution {
  std::string word;             // the text's own characters
  std::size_t start = 0, end = 0;
  double attribution = 0;
};

struct Explanation {
  std::size_t label = 0;
  double score = 0, logit = 0, baseline_logit = 0;
  Method method = Method::IntegratedGradients;
  std::size_t steps = 0;        // integrated gradients: interpolation steps; gradient x input: 1;
                                // occlusion: the occluded tokens (one pass each)
  std::vector<TokenAttribution> tokens;  // the text's tokens, special tokens left out
  std::vector<WordAttribution> words;
  std::optional<double> delta;  // integrated gradients: sum of attributions - (logit - baseline_logit)
  bool truncated = false;       // the text had more tokens than max_length; the rest is not explained
};

// The model of `dir` with plain float weights on `device`, every weight from the checkpoint: what an
// Explainer needs (the packed inference model cannot take gradients).
model::ModelBundle load_model_to_explain(const std::filesystem::path& dir, torch::Device device);

// Asked between passes of an explanation: true stops it with emotune::Cancelled (util/errors.h).
using StopRequested = std::function<bool()>;
// Throws emotune::Cancelled when `stop` is set and says so.
void stop_if_asked(const StopRequested& stop);

class Explainer {
 public:
  // `bundle` must hold plain (not packed) float weights; its parameters stop requiring gradients and
  // the model goes to eval mode (no dropout).
  Explainer(model::ModelBundle& bundle, Options options);

  // The text's scores per label (as predict gives them), for choosing the labels to explain.
  std::vector<float> scores(const std::string& text) const;
  // One explanation per label id, in the order given. `stop` (when set) is asked before every
  // forward/backward pass.
  std::vector<Explanation> explain(const std::string& text, const std::vector<std::size_t>& labels,
                                   const StopRequested& stop = nullptr) const;

  const model::ModelBundle& bundle() const { return bundle_; }
  const Options& options() const { return options_; }

 private:
  model::ModelBundle& bundle_;
  Options options_;
  infer::Calibration calibration_;  // the scores' (bundle.dir's calibration.json), as predict shows them
  std::size_t max_length_;
  std::int32_t baseline_id_;
};

// The labels to explain for a text with these scores: the `named` ones when given; else the top_k
// highest scores when top_k > 0; else those at or above their threshold, or the highest one when none is.
std::vector<std::size_t> labels_to_explain(const std::vector<float>& scores, const std::vector<float>& thresholds,
                                           std::size_t top_k, const std::vector<std::size_t>& named);

// The JSON object of one explanation: text, label, score, logit, baseline_logit, method, steps,
// tokens [{token, start, end}], attributions [...], words [{word, start, end, attribution}], delta
// (integrated gradients), truncated.
nlohmann::ordered_json to_json(const Explanation& e, const std::string& text, const std::vector<std::string>& labels);

}  // namespace emotune::explain
