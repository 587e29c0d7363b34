#include "serve/request.h"

#include <nlohmann/json.hpp>

#include "text/utf8.h"

namespace emotune::serve {

using json = nlohmann::json;

PredictRequest parse_predict_request(std::string_view body, const RequestLimits& limits) {
  if (!text::is_valid_utf8(body)) throw HttpError{400, "invalid_utf8", "the request body is not valid UTF-8"};
  json req = json::parse(body, nullptr, false);
  if (req.is_discarded()) throw HttpError{400, "invalid_json", "the request body is not valid JSON"};
  if (!req.is_object()) throw HttpError{400, "invalid_request", "the request must be a JSON object"};
  PredictRequest r;
  if (req.contains("text") == req.contains("texts"))
    throw HttpError{400, "invalid_request", "give exactly one of \"text\" (a string) or \"texts\" (a list of strings)"};
  if (req.contains("text")) {
    if (!req["text"].is_string()) throw HttpError{400, "invalid_request", "\"text\" must be a string"};
    r.texts.push_back(req["text"].get<std::string>());
  } else {
    if (!req["texts"].is_array()) throw HttpError{400, "invalid_request", "\"texts\" must be a list of strings"};
    for (const auto& t : req["texts"]) {
      if (!t.is_string()) throw HttpError{400, "invalid_request", "\"texts\" must be a list of strings"};
      r.texts.push_back(t.get<std::string>());
    }
    if (r.texts.empty()) throw HttpError{400, "empty_texts", "\"texts\" is empty"};
    if (r.texts.size() > limits.max_texts)
      throw HttpError{400, "too_many_texts",
                      std::to_string(r.texts.size()) + " texts; at most " + std::to_string(limits.max_texts) + " per request"};
  }
  for (const auto& t : r.texts)
    if (text::count_code_points(t) > limits.max_text_chars)
      throw HttpError{413, "text_too_long", "a text has more than " + std::to_string(limits.max_text_chars) + " characters"};
  if (req.contains("threshold")) {
    if (!req["threshold"].is_number() || req["threshold"].get<double>() < 0 || req["threshold"].get<double>() > 1)
      throw HttpError{400, "invalid_request", "\"threshold\" must be a number in [0, 1]"};
    r.threshold = req["threshold"].get<float>();
  }
  if (req.contains("top_k")) {
    if (!req["top_k"].is_number_unsigned()) throw HttpError{400, "invalid_request", "\"top_k\" must be a non-negative integer"};
    r.top_k = req["top_k"].get<std::size_t>();
  }
  if (req.contains("taxonomy")) {
    if (!req["taxonomy"].is_string()) throw HttpError{400, "invalid_request", "\"taxonomy\" must be a string"};
    r.taxonomy = req["taxonomy"].get<std::string>();
    if (r.taxonomy != "original" && r.taxonomy != "ekman" && r.taxonomy != "sentiment")
      throw HttpError{400, "invalid_request", "\"taxonomy\" must be original, ekman or sentiment"};
    if (r.taxonomy != "original" && !limits.can_group)
      throw HttpError{400, "invalid_request", "this model does not have the 28 GoEmotions labels to group"};
  }
  if (req.contains("return_all_scores")) {
    if (!req["return_all_scores"].is_boolean()) throw HttpError{400, "invalid_request", "\"return_all_scores\" must be true or false"};
    r.all_scores = req["return_all_scores"].get<bool>();
  }
  return r;
}

}  // namespace emotune::serve
