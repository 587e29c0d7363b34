#include "serve/tei.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <numeric>

#include "text/utf8.h"
#include "util/json_file.h"

namespace emotune::serve {

using json = nlohmann::json;

namespace {

TeiError validation(std::string message) { return {413, "Validation", std::move(message)}; }
TeiError malformed(std::string message) { return {422, "Validation", std::move(message)}; }

json parse_body(std::string_view body) {
  if (!text::is_valid_utf8(body)) throw malformed("the request body is not valid UTF-8");
  json req = util::parse_json(body);
  if (req.is_discarded()) throw malformed("the request body is " + util::not_json_reason());
  if (!req.is_object()) throw malformed("the request must be a JSON object");
  if (!req.contains("inputs")) throw malformed("missing field `inputs`");
  return req;
}

// "inputs" as texts: a string, a list of strings, or (nested) a list of one-string lists.
std::vector<std::string> texts_of(const json& inputs, bool nested_allowed, bool& batch) {
  std::vector<std::string> texts;
  batch = false;
  if (inputs.is_string()) {
    texts.push_back(inputs.get<std::string>());
    return texts;
  }
  if (!inputs.is_array()) throw malformed("`inputs` must be a string or a list of strings");
  batch = true;
  for (const json& item : inputs) {
    if (item.is_string()) {
      texts.push_back(item.get<std::string>());
    } else if (nested_allowed && item.is_array() && item.size() == 1 && item[0].is_string()) {
      texts.push_back(item[0].get<std::string>());
    } else if (nested_allowed && item.is_array() && item.size() == 2) {
      throw malformed("`inputs` holds a pair of texts: emotune's classifiers read one text at a time");
    } else {
      throw malformed("`inputs` must be a string, a list of strings or a list of [string]");
    }
  }
  return texts;
}

void check_texts(const std::vector<std::string>& texts, const RequestLimits& limits) {
  if (texts.empty()) throw TeiError{400, "Empty", "`inputs` cannot be empty"};
  if (texts.size() > limits.max_texts)
    throw validation("batch size " + std::to_string(texts.size()) + " > maximum allowed batch size " +
                     std::to_string(limits.max_texts));
  for (const auto& t : texts)
    if (text::count_code_points(t) > limits.max_text_chars)
      throw validation("a text has more than " + std::to_string(limits.max_text_chars) + " characters");
}

bool flag(const json& req, const char* key, bool fallback) {
  if (!req.contains(key) || req.at(key).is_null()) return fallback;
  if (!req.at(key).is_boolean()) throw malformed(std::string("`") + key + "` must be true or false");
  return req.at(key).get<bool>();
}

}  // namespace

std::string tei_error_body(const TeiError& e) {
  return json{{"error", e.message}, {"error_type", e.error_type}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

TeiError tei_error_from(const HttpError& e) {
  if (e.status == 429) return {429, "Overloaded", e.message};
  if (e.status == 401 || e.status == 403 || e.status == 415) return {e.status, "Validation", e.message};
  if (e.code == "empty_texts") return {400, "Empty", e.message};
  if (e.status == 413 || e.code == "too_many_texts") return validation(e.message);
  if (e.status >= 500) return {424, "Backend", e.message};
  return malformed(e.message);
}

TeiPredictRequest parse_tei_predict(std::string_view body, const RequestLimits& limits) {
  const json req = parse_body(body);
  TeiPredictRequest r;
  r.texts = texts_of(req.at("inputs"), /*nested_allowed=*/true, r.batch);
  check_texts(r.texts, limits);
  r.raw_scores = flag(req, "raw_scores", false);
  r.truncate = flag(req, "truncate", false);
  if (req.contains("truncation_direction") && !req.at("truncation_direction").is_null()) {
    const json& d = req.at("truncation_direction");
    // TEI spells the directions with a capital (Left, Right) in its schema and accepts lower case too.
    const std::string dir = d.is_string() ? d.get<std::string>() : "";
    if (dir != "left" && dir != "right" && dir != "Left" && dir != "Right")
      throw malformed("`truncation_direction` must be \"left\" or \"right\"");
    r.truncate_left = dir == "left" || dir == "Left";
  }
  return r;
}

InferenceApiRequest parse_inference_api(std::string_view body, const RequestLimits& limits) {
  const json req = parse_body(body);
  InferenceApiRequest r;
  r.texts = texts_of(req.at("inputs"), /*nested_allowed=*/false, r.batch);
  check_texts(r.texts, limits);
  if (!req.contains("parameters") || req.at("parameters").is_null()) return r;
  const json& p = req.at("parameters");
  if (!p.is_object()) throw malformed("`parameters` must be an object");
  if (p.contains("top_k") && !p.at("top_k").is_null()) {
    if (!p.at("top_k").is_number_unsigned() || p.at("top_k").get<std::size_t>() == 0)
      throw malformed("`parameters.top_k` must be a positive integer");
    r.top_k = p.at("top_k").get<std::size_t>();
  }
  if (p.contains("function_to_apply") && !p.at("function_to_apply").is_null()) {
    const json& f = p.at("function_to_apply");
    const std::string name = f.is_string() ? f.get<std::string>() : "";
    if (name == "sigmoid") r.function = ScoreFunction::Sigmoid;
    else if (name == "softmax") r.function = ScoreFunction::Softmax;
    else if (name == "none") r.function = ScoreFunction::None;
    else throw malformed("`parameters.function_to_apply` must be \"sigmoid\", \"softmax\" or \"none\"");
  }
  return r;
}

std::vector<LabelScore> ranked(const std::vector<std::string>& labels, const std::vector<float>& scores,
                               std::optional<std::size_t> top_k) {
  std::vector<std::size_t> order(scores.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  // Ties keep label order, as a stable sort by score does in Python.
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return scores[a] > scores[b]; });
  if (top_k && *top_k < order.size()) order.resize(*top_k);
  std::vector<LabelScore> out;
  for (auto i : order) out.push_back({labels.at(i), scores[i]});
  return out;
}

std::string ranked_json(const std::vector<std::vector<LabelScore>>& per_text, bool nested) {
  auto one = [](const std::vector<LabelScore>& items) {
    json list = json::array();
    for (const auto& s : items) list.push_back(json{{"label", s.label}, {"score", s.score}});
    return list;
  };
  json out = json::array();
  if (!nested) return one(per_text.at(0)).dump(-1, ' ', false, json::error_handler_t::replace);
  for (const auto& items : per_text) out.push_back(one(items));
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace emotune::serve
