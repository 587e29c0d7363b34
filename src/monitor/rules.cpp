#include "monitor/rules.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "monitor/message.h"
#include "util/json_file.h"

namespace emotune::monitor {

using json = nlohmann::json;

namespace {

constexpr std::size_t kMaxWindowMessages = 1000000;

Rule parse_rule(const json& r, const std::vector<std::string>& labels, const std::string& where) {
  if (!r.is_object()) throw std::runtime_error(where + ": a rule must be a JSON object");
  Rule rule;
  if (!r.contains("name") || !r["name"].is_string() || r["name"].get<std::string>().empty())
    throw std::runtime_error(where + ": \"name\" must be a non-empty string");
  rule.name = r["name"].get<std::string>();
  const std::string at = where + " (rule '" + rule.name + "')";
  for (const auto& [key, v] : r.items()) {
    static const std::vector<std::string> known = {"name", "labels", "stat", "above", "below", "over_last", "over",
                                                   "min_messages"};
    if (std::find(known.begin(), known.end(), key) == known.end())
      throw std::runtime_error(at + ": unknown field \"" + key + "\"");
  }
  if (!r.contains("labels") || !r["labels"].is_array() || r["labels"].empty())
    throw std::runtime_error(at + ": \"labels\" must be a non-empty list of label names");
  for (const auto& l : r["labels"]) {
    const auto it = l.is_string() ? std::find(labels.begin(), labels.end(), l.get<std::string>()) : labels.end();
    if (it == labels.end())
      throw std::runtime_error(at + ": \"labels\": " + l.dump() + " is not one of the model's labels");
    rule.labels.push_back(static_cast<std::size_t>(it - labels.begin()));
  }
  const std::string stat = r.value("stat", json("mean_max_probability")).is_string()
                               ? r.value("stat", std::string("mean_max_probability"))
                               : std::string("?");
  if (stat == "mean_max_probability")
    rule.stat = Stat::MeanMaxProbability;
  else if (stat == "mean_probability")
    rule.stat = Stat::MeanProbability;
  else if (stat == "share")
    rule.stat = Stat::Share;
  else
    throw std::runtime_error(at + ": \"stat\" must be mean_max_probability, mean_probability or share");
  for (const char* key : {"above", "below"}) {
    if (!r.contains(key)) continue;
    if (!r[key].is_number() || !std::isfinite(r[key].get<double>()))
      throw std::runtime_error(at + ": \"" + key + "\" must be a number");
    (std::string(key) == "above" ? rule.above : rule.below) = r[key].get<double>();
  }
  if (rule.above.has_value() == rule.below.has_value())
    throw std::runtime_error(at + ": give exactly one of \"above\" or \"below\"");
  if (r.contains("over_last") == r.contains("over"))
    throw std::runtime_error(at + ": give exactly one of \"over_last\" (messages) or \"over\" (a duration such as \"24h\")");
  if (r.contains("over_last")) {
    if (!r["over_last"].is_number_unsigned() || r["over_last"].get<std::size_t>() < 1 ||
        r["over_last"].get<std::size_t>() > kMaxWindowMessages)
      throw std::runtime_error(at + ": \"over_last\" must be an integer from 1 to " + std::to_string(kMaxWindowMessages));
    rule.over_last = r["over_last"].get<std::size_t>();
  } else {
    const auto d = r["over"].is_string() ? parse_duration(r["over"].get<std::string>()) : std::nullopt;
    if (!d) throw std::runtime_error(at + ": \"over\" must be a duration such as \"30m\", \"24h\" or \"7d\"");
    rule.over_ms = *d;
  }
  if (r.contains("min_messages")) {
    if (!r["min_messages"].is_number_unsigned() || r["min_messages"].get<std::size_t>() < 1 ||
        r["min_messages"].get<std::size_t>() > kMaxWindowMessages)
      throw std::runtime_error(at + ": \"min_messages\" must be a positive integer");
    rule.min_messages = r["min_messages"].get<std::size_t>();
    if (rule.over_last && rule.min_messages > rule.over_last)
      throw std::runtime_error(at + ": \"min_messages\" exceeds \"over_last\": the rule could never fire");
  }
  return rule;
}

}  // namespace

std::vector<Rule> parse_rules(const std::string& json_text, const std::vector<std::string>& labels,
                              const std::string& where) {
  json j = util::parse_json(json_text);
  if (j.is_discarded()) throw std::runtime_error(where + ": " + util::not_json_reason());
  if (j.is_object() && j.contains("rules")) j = j["rules"];
  if (!j.is_array()) throw std::runtime_error(where + ": expected a list of rules (or {\"rules\": [...]})");
  std::vector<Rule> rules;
  for (std::size_t i = 0; i < j.size(); ++i) {
    rules.push_back(parse_rule(j[i], labels, where + ": rule " + std::to_string(i + 1)));
    for (std::size_t k = 0; k + 1 < rules.size(); ++k)
      if (rules[k].name == rules.back().name)
        throw std::runtime_error(where + ": two rules are named '" + rules.back().name + "'");
  }
  return rules;
}

std::vector<Rule> load_rules(const std::filesystem::path& path, const std::vector<std::string>& labels) {
  return parse_rules(util::read_small_file(path, std::size_t{16} << 20), labels, path.string());
}

double rule_value(const Rule& rule, const std::vector<float>& scores, const std::vector<float>& thresholds) {
  double v = 0;
  switch (rule.stat) {
    case Stat::MeanMaxProbability:
      for (auto l : rule.labels) v = std::max(v, static_cast<double>(scores[l]));
      return v;
    case Stat::MeanProbability:
      for (auto l : rule.labels) v += scores[l];
      return v / static_cast<double>(rule.labels.size());
    case Stat::Share:
      for (auto l : rule.labels)
        if (scores[l] >= thresholds[l]) return 1.0;
      return 0.0;
  }
  return v;
}

}  // namespace emotune::monitor
