// Predictions as `emotune predict` writes them: JSON lines ({labels, scores, truncated, windows,
// window_of, logits, explanations}), TSV with a header row (text, labels, one column per label), or bars for a person
// at a terminal (the five best labels, * where a label passes its threshold).
#pragma once

#include <cstddef>
#include <functional>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "infer/predictor.h"

namespace emotune::infer {

enum class PredictionFormat { Jsonl, Tsv, Pretty };
// "jsonl" | "tsv" | "pretty"; anything else is a SettingError naming {format}.
PredictionFormat parse_prediction_format(const std::string& name);

// A text scored in windows: "windows" [{start, end, tokens: [first, end]}] (code points of the text,
// tokens without the special ones) and, combined by max, "window_of" {label: the window its score came
// from}. The server writes the same fields.
void windows_json(const Prediction& p, const std::vector<std::string>& labels, nlohmann::ordered_json& j);

class PredictionWriter {
 public:
  // The explanations of a text's selected labels (label ids), as JSON (JSON lines only).
  using Explain = std::function<nlohmann::ordered_json(const std::string& text, const std::vector<std::size_t>& ids)>;

  // Writes the TSV header at once. top_k 0: every label that passes its threshold (pretty: 5).
  PredictionWriter(std::ostream& out, PredictionFormat format, const std::vector<std::string>& labels,
                   std::vector<float> thresholds, std::size_t top_k, bool logits, Explain explain = {});
  void write(const std::string& text, const Prediction& p);

 private:
  void write_jsonl(const std::string& text, const Prediction& p, const std::vector<std::size_t>& ids);
  void write_tsv(const std::string& text, const Prediction& p, const std::vector<std::size_t>& ids);
  void write_pretty(const std::string& text, const Prediction& p);

  std::ostream& out_;
  PredictionFormat format_;
  const std::vector<std::string>& labels_;
  std::vector<float> thresholds_;
  std::size_t top_k_;
  bool logits_;
  Explain explain_;
};

}  // namespace emotune::infer
