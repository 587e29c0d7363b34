// Alert rules for `emotune monitor`, read from a JSON file: a list of rules (or {"rules": [...]}), each
//   {"name": "sustained distress", "labels": ["sadness", "grief", "fear", "nervousness"],
//    "stat": "mean_max_probability", "above": 0.4, "over_last": 20, "min_messages": 10}
// stat: per message, the largest probability among the labels (mean_max_probability), their mean
// probability (mean_probability), or 1 when any of them reaches its threshold (share); averaged over
// the source's last `over_last` messages, or over the messages of the last `over` (a duration, "24h").
// The rule holds while that average is above `above` (or below `below`) with at least min_messages
// messages in the window; it fires once when it starts to hold, and again only after it stopped.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace emotune::monitor {

enum class Stat { MeanMaxProbability, MeanProbability, Share };

struct Rule {
  std::string name;
  std::vector<std::size_t> labels;  // label ids of the model
  Stat stat = Stat::MeanMaxProbability;
  std::optional<double> above, below;  // exactly one
  std::size_t over_last = 0;           // messages; 0 when `over` is used
  std::int64_t over_ms = 0;            // a duration; 0 when `over_last` is used
  std::size_t min_messages = 1;
};

// Parses and checks the rules file against the model's labels; every error names the file, the rule
// (by name or position) and the field.
std::vector<Rule> load_rules(const std::filesystem::path& path, const std::vector<std::string>& labels);
std::vector<Rule> parse_rules(const std::string& json_text, const std::vector<std::string>& labels,
                              const std::string& where);

// The per-message value a rule averages, from a message's scores and the thresholds.
double rule_value(const Rule& rule, const std::vector<float>& scores, const std::vector<float>& thresholds);

}  // namespace emotune::monitor
