// The body of POST /v1/predict, read and checked before any model work: what a client may send and
// the one error each mistake earns.
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
};

// {"text": "..."} or {"texts": [...]}, with optional threshold, top_k, taxonomy, return_all_scores.
// Throws HttpError.
PredictRequest parse_predict_request(std::string_view body, const RequestLimits& limits);

}  // namespace emotune::serve
