// The protocol Hugging Face's own clients speak, read and written without the model: TEI's
// POST /predict (text-embeddings-inference) and the Inference API's POST / (what
// huggingface_hub.InferenceClient.text_classification sends), with TEI's error body
// {"error": "...", "error_type": "..."}. The service (serve/server.cpp) runs the texts; these
// functions only parse requests and lay out answers, so they are fuzzed alone.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "serve/request.h"

namespace emotune::serve {

// A TEI error: its HTTP status and error_type (Validation 413, Empty 400, Overloaded 429, Tokenizer
// 422, Backend 424, as TEI maps them; a body that is not the JSON the route reads is 422 Validation).
struct TeiError {
  int status;
  std::string error_type;
  std::string message;
};
// {"error": message, "error_type": type}
std::string tei_error_body(const TeiError& e);
// An emotune HttpError (limits, back-pressure, bad bodies) as the TEI error a TEI client expects.
TeiError tei_error_from(const HttpError& e);

struct TeiPredictRequest {
  std::vector<std::string> texts;
  bool batch = false;      // "inputs" was a list: the answer is a list of lists
  bool raw_scores = false; // logits instead of probabilities
  bool truncate = false;   // TEI's default: a text over the model's length is an error
  bool truncate_left = false;  // truncation_direction "left": keep the end of the text
};

// {"inputs": "text" | ["text", ...] | [["text"], ...], "raw_scores", "truncate",
// "truncation_direction"}. A flat list is several texts (TEI would read two strings as one pair:
// emotune's classifiers take one text); a pair ["a", "b"] inside the nested form is refused. Throws TeiError.
TeiPredictRequest parse_tei_predict(std::string_view body, const RequestLimits& limits);

// What scores the Inference API answers with: the model's own probabilities, or another function
// of the logits.
enum class ScoreFunction { Model, Sigmoid, Softmax, None };

struct InferenceApiRequest {
  std::vector<std::string> texts;
  bool batch = false;
  std::optional<std::size_t> top_k;  // absent: every label, sorted
  ScoreFunction function = ScoreFunction::Model;
};

// {"inputs": "text" | ["text", ...], "parameters": {"top_k": K, "function_to_apply":
// "sigmoid"|"softmax"|"none"}}. Throws TeiError.
InferenceApiRequest parse_inference_api(std::string_view body, const RequestLimits& limits);

// One text's answer: [{"label", "score"}, ...] sorted by score (highest first), at most top_k.
struct LabelScore {
  std::string label;
  float score;
};
std::vector<LabelScore> ranked(const std::vector<std::string>& labels, const std::vector<float>& scores,
                               std::optional<std::size_t> top_k = std::nullopt);
// [{"label", "score"}, ...] for one text, or a list of those per text when `nested`.
std::string ranked_json(const std::vector<std::vector<LabelScore>>& per_text, bool nested);

}  // namespace emotune::serve
