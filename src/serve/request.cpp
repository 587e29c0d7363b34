#include "serve/request.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "text/utf8.h"
#include "util/json_file.h"

namespace emotune::serve {

using json = nlohmann::json;

namespace {

json parse_object(std::string_view body) {
  if (!text::is_valid_utf8(body)) throw HttpError{400, "invalid_utf8", "the request body is not valid UTF-8"};
  json req = util::parse_json(body);
  if (req.is_discarded()) throw HttpError{400, "invalid_json", "the request body is " + util::not_json_reason()};
  if (!req.is_object()) throw HttpError{400, "invalid_request", "the request must be a JSON object"};
  return req;
}

std::string one_of(const json& req, const char* key, std::string fallback, const std::vector<std::string>& allowed) {
  if (!req.contains(key)) return fallback;
  const json& v = req.at(key);
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  if (!v.is_string() || std::find(allowed.begin(), allowed.end(), v.get<std::string>()) == allowed.end())
    throw HttpError{400, "invalid_request", "\"" + std::string(key) + "\" must be one of " + list};
  return v.get<std::string>();
}

PredictRequest predict_fields(json& req, const RequestLimits& limits) {
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
  if (req.contains("long_text")) r.long_text = one_of(req, "long_text", "", {"truncate", "window"});
  return r;
}

}  // namespace

PredictRequest parse_predict_request(std::string_view body, const RequestLimits& limits) {
  json req = parse_object(body);
  return predict_fields(req, limits);
}

ExplainRequest parse_explain_request(std::string_view body, const RequestLimits& limits, std::size_t max_steps) {
  json req = parse_object(body);
  ExplainRequest r;
  r.predict = predict_fields(req, limits);
  if (r.predict.taxonomy != "original")
    throw HttpError{400, "invalid_request", "explanations are per emotion: \"taxonomy\" must be original"};
  if (req.contains("label")) {
    const json& l = req["label"];
    if (l.is_string()) {
      r.labels.push_back(l.get<std::string>());
    } else if (l.is_array() && !l.empty()) {
      for (const auto& x : l) {
        if (!x.is_string()) throw HttpError{400, "invalid_request", "\"label\" must be a label name or a list of them"};
        // Each label once: repeats would cost an explanation each.
        if (std::find(r.labels.begin(), r.labels.end(), x.get<std::string>()) == r.labels.end())
          r.labels.push_back(x.get<std::string>());
      }
    } else {
      throw HttpError{400, "invalid_request", "\"label\" must be a label name or a list of them"};
    }
  }
  r.steps = std::min(r.steps, max_steps);  // the default too stays within the server's limit
  r.method = one_of(req, "method", r.method, {"integrated-gradients", "gradient-x-input", "occlusion"});
  r.baseline = one_of(req, "baseline", r.baseline, {"pad", "mask"});
  if (req.contains("steps")) {
    const json& v = req["steps"];
    if (!v.is_number_unsigned() || v.get<std::size_t>() < 1 || v.get<std::size_t>() > max_steps)
      throw HttpError{400, "invalid_request", "\"steps\" must be an integer from 1 to " + std::to_string(max_steps)};
    r.steps = v.get<std::size_t>();
  }
  return r;
}

}  // namespace emotune::serve
