#include "data/labels.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <stdexcept>

namespace emotune::data {

namespace {

// The official groupings (ekman_mapping.json and sentiment_mapping.json of the GoEmotions release).
const std::map<std::string, std::vector<std::string>>& ekman_groups() {
  static const std::map<std::string, std::vector<std::string>> groups = {
      {"anger", {"anger", "annoyance", "disapproval"}},
      {"disgust", {"disgust"}},
      {"fear", {"fear", "nervousness"}},
      {"joy",
       {"joy", "amusement", "approval", "excitement", "gratitude", "love", "optimism", "relief", "pride", "admiration",
        "desire", "caring"}},
      {"sadness", {"sadness", "disappointment", "embarrassment", "grief", "remorse"}},
      {"surprise", {"surprise", "realization", "confusion", "curiosity"}},
  };
  return groups;
}

const std::map<std::string, std::vector<std::string>>& sentiment_groups() {
  static const std::map<std::string, std::vector<std::string>> groups = {
      {"positive",
       {"amusement", "excitement", "joy", "love", "desire", "optimism", "caring", "pride", "admiration", "gratitude",
        "relief", "approval"}},
      {"negative",
       {"fear", "nervousness", "remorse", "embarrassment", "disappointment", "sadness", "grief", "disgust", "anger",
        "annoyance", "disapproval"}},
      {"ambiguous", {"realization", "surprise", "curiosity", "confusion"}},
  };
  return groups;
}

}  // namespace

Taxonomy parse_taxonomy(const std::string& name) {
  if (name == "original") return Taxonomy::original;
  if (name == "ekman") return Taxonomy::ekman;
  if (name == "sentiment") return Taxonomy::sentiment;
  throw std::invalid_argument("unknown taxonomy '" + name + "' (expected original, ekman or sentiment)");
}

std::string taxonomy_name(Taxonomy t) {
  switch (t) {
    case Taxonomy::original:
      return "original";
    case Taxonomy::ekman:
      return "ekman";
    case Taxonomy::sentiment:
      return "sentiment";
  }
  return "original";
}

const std::vector<std::string>& goemotions_labels() {
  static const std::vector<std::string> labels = {
      "admiration", "amusement",   "anger",       "annoyance", "approval",       "caring",   "confusion",
      "curiosity",  "desire",      "disappointment", "disapproval", "disgust",  "embarrassment", "excitement",
      "fear",       "gratitude",   "grief",       "joy",       "love",           "nervousness", "optimism",
      "pride",      "realization", "relief",      "remorse",   "sadness",        "surprise", "neutral"};
  return labels;
}

const std::vector<std::string>& taxonomy_labels(Taxonomy t) {
  static const std::vector<std::string> ekman = {"anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"};
  static const std::vector<std::string> sentiment = {"positive", "negative", "ambiguous", "neutral"};
  switch (t) {
    case Taxonomy::ekman:
      return ekman;
    case Taxonomy::sentiment:
      return sentiment;
    default:
      return goemotions_labels();
  }
}

std::vector<int> taxonomy_map(Taxonomy t) {
  const auto& emotions = goemotions_labels();
  std::vector<int> map(emotions.size());
  if (t == Taxonomy::original) {
    for (std::size_t i = 0; i < map.size(); ++i) map[i] = static_cast<int>(i);
    return map;
  }
  const auto& groups = t == Taxonomy::ekman ? ekman_groups() : sentiment_groups();
  const auto& names = taxonomy_labels(t);
  for (std::size_t i = 0; i < emotions.size(); ++i) {
    map[i] = static_cast<int>(names.size() - 1);  // neutral
    for (const auto& [group, members] : groups)
      if (std::find(members.begin(), members.end(), emotions[i]) != members.end())
        map[i] = static_cast<int>(std::find(names.begin(), names.end(), group) - names.begin());
  }
  return map;
}

std::vector<std::string> resolve_labels(const std::string& spec) {
  if (spec == "goemotions" || spec == "original") return goemotions_labels();
  if (spec == "ekman") return taxonomy_labels(Taxonomy::ekman);
  if (spec == "sentiment") return taxonomy_labels(Taxonomy::sentiment);
  std::ifstream in(spec);
  if (!in) throw std::runtime_error("labels: not a built-in set (goemotions, ekman, sentiment) nor a readable file: " + spec);
  std::vector<std::string> labels;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (std::find(labels.begin(), labels.end(), line) != labels.end())
      throw std::runtime_error("labels file " + spec + ": label '" + line + "' appears twice");
    labels.push_back(line);
  }
  if (labels.empty()) throw std::runtime_error("labels file " + spec + " has no labels");
  return labels;
}

}  // namespace emotune::data
