#include "infer/prediction_writer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "util/errors.h"

namespace emotune::infer {

namespace {

double round6(double x) { return std::round(x * 1e6) / 1e6; }

}  // namespace

PredictionFormat parse_prediction_format(const std::string& name) {
  if (name == "jsonl") return PredictionFormat::Jsonl;
  if (name == "tsv") return PredictionFormat::Tsv;
  if (name == "pretty") return PredictionFormat::Pretty;
  throw SettingError("{format} must be jsonl, tsv or pretty, not '" + name + "'");
}

PredictionWriter::PredictionWriter(std::ostream& out, PredictionFormat format, const std::vector<std::string>& labels,
                                   std::vector<float> thresholds, std::size_t top_k, bool logits, Explain explain)
    : out_(out),
      format_(format),
      labels_(labels),
      thresholds_(std::move(thresholds)),
      top_k_(top_k),
      logits_(logits),
      explain_(std::move(explain)) {
  if (format_ != PredictionFormat::Tsv) return;
  out_ << "text\tlabels";
  for (const auto& l : labels_) out_ << '\t' << l;
  out_ << '\n';
}

void PredictionWriter::write(const std::string& text, const Prediction& p) {
  const auto ids = select_labels(p.probs, thresholds_, top_k_);
  switch (format_) {
    case PredictionFormat::Jsonl:
      return write_jsonl(text, p, ids);
    case PredictionFormat::Tsv:
      return write_tsv(text, p, ids);
    case PredictionFormat::Pretty:
      return write_pretty(text, p);
  }
}

void windows_json(const Prediction& p, const std::vector<std::string>& labels, nlohmann::ordered_json& j) {
  j["windows"] = nlohmann::ordered_json::array();
  for (const auto& w : p.windows)
    j["windows"].push_back({{"start", w.start}, {"end", w.end}, {"tokens", {w.first_token, w.end_token}}});
  if (p.window_of.size() != labels.size()) return;
  nlohmann::ordered_json from = nlohmann::ordered_json::object();
  for (std::size_t i = 0; i < labels.size(); ++i) from[labels[i]] = p.window_of[i];
  j["window_of"] = std::move(from);
}

void PredictionWriter::write_jsonl(const std::string& text, const Prediction& p, const std::vector<std::size_t>& ids) {
  nlohmann::ordered_json j;
  j["labels"] = nlohmann::json::array();
  for (auto i : ids) j["labels"].push_back(labels_[i]);
  nlohmann::ordered_json scores = nlohmann::ordered_json::object();
  for (std::size_t i = 0; i < labels_.size(); ++i) scores[labels_[i]] = round6(p.probs[i]);
  j["scores"] = std::move(scores);
  if (p.truncated) j["truncated"] = true;
  if (!p.windows.empty()) windows_json(p, labels_, j);
  if (logits_) j["logits"] = p.logits;
  if (explain_) j["explanations"] = explain_(text, ids);
  out_ << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
}

void PredictionWriter::write_tsv(const std::string& text, const Prediction& p, const std::vector<std::size_t>& ids) {
  std::string clean = text;
  std::replace(clean.begin(), clean.end(), '\t', ' ');
  std::replace(clean.begin(), clean.end(), '\r', ' ');
  out_ << clean << '\t';
  for (std::size_t k = 0; k < ids.size(); ++k) out_ << (k ? "," : "") << labels_[ids[k]];
  for (std::size_t i = 0; i < labels_.size(); ++i) out_ << '\t' << round6(p.probs[i]);
  out_ << '\n';
}

void PredictionWriter::write_pretty(const std::string& text, const Prediction& p) {
  constexpr int kBarWidth = 30;
  out_ << printable(text) << (p.truncated ? "  (truncated)" : "")
       << (p.windows.empty() ? "" : "  (" + std::to_string(p.windows.size()) + " windows)") << '\n';  // a terminal: no escape sequences
  std::vector<std::size_t> order(p.probs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) { return p.probs[x] > p.probs[y]; });
  const std::size_t shown = std::min<std::size_t>(top_k_ ? top_k_ : 5, order.size());
  std::size_t width = 0;
  for (const auto& l : labels_) width = std::max(width, l.size());
  for (std::size_t k = 0; k < shown; ++k) {
    const std::size_t i = order[k];
    const int bar = static_cast<int>(std::lround(p.probs[i] * kBarWidth));
    std::string bars;
    for (int b = 0; b < bar; ++b) bars += "\u2588";
    char score[32];
    std::snprintf(score, sizeof score, " %.3f", static_cast<double>(p.probs[i]));
    out_ << "  " << labels_[i] << std::string(width - labels_[i].size() + 1, ' ') << bars
         << std::string(static_cast<std::size_t>(kBarWidth - bar), ' ') << score
         << (p.probs[i] >= thresholds_[i] ? "  *" : "") << '\n';
  }
}

}  // namespace emotune::infer
