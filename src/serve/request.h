// The bodies of POST /v1/predict and /v1/explain, read and checked before any model work: what a
// client may send and the one error each mistake earns.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace emotune::serve {

// A request the client got wrong: HTTP status, a stable code and a message.
struct HttpError {
  int status;
  std::string code, message;
};

struct RequestLimits {
  std::size_t max_texts = 32;
  std::size_t max_text_chars = 10000;
  bool can_group = false;  // the model has the 28 GoEmotions labels (ekman/sentiment views)
};

struct PredictRequest {
  std::vector<std::string> texts;
  std::optional<float> threshold;
  std::size_t top_k = 0;  // 0 = no limit
  std::string taxonomy = "original";
  bool all_scores = false;
  std::optional<std::string> long_text;  // "truncate" | "window"; absent: the server's --long-text
};

// {"text": "..."} or {"texts": [...]}, with optional threshold, top_k, taxonomy, return_all_scores,
// long_text.
// Throws HttpError.
PredictRequest parse_predict_request(std::string_view body, const RequestLimits& limits);

struct ExplainRequest {
  PredictRequest predict;       // taxonomy stays "original": explanations are per emotion
  std::vector<std::string> labels;  // each once, in the order first named; empty: the predicted ones (threshold, top_k)
  std::string method = "integrated-gradients";
  std::size_t steps = 32;
  std::string baseline = "pad";
};

// /v1/predict's fields plus "label" (a label name or a list of them), "method"
// (integrated-gradients | gradient-x-input | occlusion), "steps" (1..max_steps; default 32 or
// max_steps when smaller) and "baseline"
// (pad | mask). Label names are checked by the caller, who knows the model. Throws HttpError.
ExplainRequest parse_explain_request(std::string_view body, const RequestLimits& limits, std::size_t max_steps);

}  // namespace emotune::serve
