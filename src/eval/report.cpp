#include "eval/report.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <sstream>

#include "eval/svg.h"
#include "util/atomic_file.h"

namespace emotune::eval {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;

namespace {

// The figures of the DistilBERT report that emotune answers (single-label fine-tune, dev split).
constexpr double kReferenceLoss = 1.686;
constexpr double kReferenceAccuracy = 0.524;

std::string f3(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  return buf;
}

// " (calibrated: FIT; uncalibrated 0.123)" after the served ECE, when the model has a calibration.
std::string calibration_note(const EvalResult& r) {
  if (r.calibration.empty()) return "";
  return " (calibrated: " + r.calibration + "; uncalibrated " + f3(r.ece_uncalibrated) + ")";
}

// A reliability diagram of probs against gold: per bin, positive rate against mean probability.
std::string reliability_figure(const torch::Tensor& probs, const std::vector<std::vector<int>>& gold,
                               const std::string& title) {
  std::vector<double> mp, pr, share;
  const double total = static_cast<double>(probs.numel());
  for (const auto& b : calibration_bins(probs, gold)) {
    mp.push_back(b.mean_probability);
    pr.push_back(b.positive_rate);
    share.push_back(total > 0 ? static_cast<double>(b.count) / total : 0);
  }
  return svg::reliability(title, mp, pr, share);
}

std::vector<std::size_t> by_f1(const Metrics& m) {
  std::vector<std::size_t> order(m.per_label.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return m.per_label[a].prf.f1 > m.per_label[b].prf.f1; });
  return order;
}

// Training and dev curves from the model directory's metrics.jsonl, when it has one.
struct Curves {
  std::vector<double> train_step, train_loss, eval_step, eval_loss, eval_macro_f1;
};

std::optional<Curves> read_curves(const fs::path& model_dir) {
  std::ifstream in(model_dir / "metrics.jsonl");
  if (!in) return std::nullopt;
  Curves c;
  for (std::string line; std::getline(in, line);) {
    try {
      const auto j = nlohmann::json::parse(line);
      const double step = j.at("step").get<double>();
      if (j.contains("loss")) {
        c.train_step.push_back(step);
        c.train_loss.push_back(j.at("loss").get<double>());
      } else if (j.contains("eval")) {
        c.eval_step.push_back(step);
        c.eval_loss.push_back(j.at("eval").at("loss").get<double>());
        c.eval_macro_f1.push_back(j.at("eval").at("macro").at("f1").get<double>());
      }
    } catch (const nlohmann::json::exception&) {
      // A line being written while we read, or a foreign line: curves are a courtesy, skip it.
    }
  }
  if (c.train_step.empty()) return std::nullopt;
  return c;
}

}  // namespace

json prf_json(const PRF& p) { return json{{"precision", p.precision}, {"recall", p.recall}, {"f1", p.f1}}; }

json report_json(const EvalResult& r) {
  const Metrics& m = r.metrics;
  json per_label = json::array();
  for (std::size_t l = 0; l < r.labels.size(); ++l) {
    const auto& s = m.per_label[l];
    per_label.push_back(json{{"label", r.labels[l]},
                             {"precision", s.prf.precision},
                             {"recall", s.prf.recall},
                             {"f1", s.prf.f1},
                             {"support", s.support},
                             {"predicted", s.predicted},
                             {"roc_auc", s.roc_auc ? json(*s.roc_auc) : json(nullptr)},
                             {"threshold", r.thresholds[l]}});
  }
  json excluded = json::array();
  for (int l : m.roc_auc_excluded) excluded.push_back(r.labels[static_cast<std::size_t>(l)]);
  return json{{"split", r.split},
              {"n_examples", m.n_examples},
              {"taxonomy", r.taxonomy},
              {"loss", r.loss},
              {"exact_match", m.exact_match},
              {"hamming_loss", m.hamming_loss},
              {"micro", prf_json(m.micro)},
              {"macro", prf_json(m.macro)},
              {"weighted", prf_json(m.weighted)},
              {"roc_auc_macro", m.roc_auc_macro ? json(*m.roc_auc_macro) : json(nullptr)},
              {"roc_auc_excluded", excluded},
              {"ece", m.ece},
              {"ece_uncalibrated", r.ece_uncalibrated},
              {"calibration", r.calibration.empty() ? json(nullptr) : json(r.calibration)},
              {"top1_accuracy_first_label", m.top1_accuracy_first_label},
              {"top1_accuracy_any_label", m.top1_accuracy_any_label},
              {"thresholds", json{{"source", r.threshold_source}, {"from", r.threshold_origin}, {"values", r.thresholds}}},
              {"per_label", per_label},
              {"model", json{{"dir", r.model_dir.string()}, {"sha256", r.model_sha256}}},
              {"data", json{{"file", r.data_path.string()}, {"sha256", r.data_sha256}}},
              {"reference", json{{"validation_loss", kReferenceLoss}, {"accuracy", kReferenceAccuracy}}}};
}

std::string report_markdown(const EvalResult& r) {
  const Metrics& m = r.metrics;
  std::ostringstream o;
  o << "# emotune evaluation: " << r.split << " (" << m.n_examples << " texts, " << r.taxonomy << " labels)\n\n"
    << "Model `" << r.model_dir.string() << "`, data `" << r.data_path.string() << "`. Thresholds: "
    << r.threshold_source << " (" << r.threshold_origin << ").\n\n"
    << "| metric | value |\n| --- | --- |\n"
    << "| loss | " << f3(r.loss) << " |\n"
    << "| exact match | " << f3(m.exact_match) << " |\n"
    << "| Hamming loss | " << f3(m.hamming_loss) << " |\n"
    << "| micro P / R / F1 | " << f3(m.micro.precision) << " / " << f3(m.micro.recall) << " / " << f3(m.micro.f1) << " |\n"
    << "| macro P / R / F1 | " << f3(m.macro.precision) << " / " << f3(m.macro.recall) << " / " << f3(m.macro.f1) << " |\n"
    << "| weighted P / R / F1 | " << f3(m.weighted.precision) << " / " << f3(m.weighted.recall) << " / "
    << f3(m.weighted.f1) << " |\n"
    << "| ROC-AUC (macro) | " << (m.roc_auc_macro ? f3(*m.roc_auc_macro) : std::string("n/a")) << " |\n"
    << "| ECE (15 bins) | " << f3(m.ece) << calibration_note(r) << " |\n\n"
    << "## Single-label figures\n\n"
    << "The often-quoted DistilBERT result (Hugging Face Trainer, softmax on the first label, dev split) is "
    << "validation loss " << kReferenceLoss << " and accuracy " << kReferenceAccuracy * 100 << "%.\n\n"
    << "| figure | this model | reference |\n| --- | --- | --- |\n"
    << "| top-1 accuracy, first gold label | " << f3(m.top1_accuracy_first_label) << " | " << kReferenceAccuracy << " |\n"
    << "| top-1 accuracy, any gold label | " << f3(m.top1_accuracy_any_label) << " | |\n"
    << "| loss | " << f3(r.loss) << " | " << kReferenceLoss << " (softmax CE) |\n\n"
    << "## Per label (sorted by F1)\n\n| label | precision | recall | F1 | support | predicted | ROC-AUC | threshold |\n"
    << "| --- | --- | --- | --- | --- | --- | --- | --- |\n";
  for (std::size_t l : by_f1(m)) {
    const auto& s = m.per_label[l];
    o << "| " << r.labels[l] << " | " << f3(s.prf.precision) << " | " << f3(s.prf.recall) << " | " << f3(s.prf.f1)
      << " | " << s.support << " | " << s.predicted << " | " << (s.roc_auc ? f3(*s.roc_auc) : "n/a") << " | "
      << f3(r.thresholds[l]) << " |\n";
  }
  if (!m.roc_auc_excluded.empty()) {
    o << "\nLeft out of the macro ROC-AUC (only one class present):";
    for (int l : m.roc_auc_excluded) o << " " << r.labels[static_cast<std::size_t>(l)];
    o << "\n";
  }
  return o.str();
}

std::string report_html(const EvalResult& r) {
  const Metrics& m = r.metrics;
  const std::size_t L = r.labels.size();
  std::ostringstream o;
  o << "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
       "content=\"width=device-width, initial-scale=1\"><title>emotune evaluation: "
    << svg::escape(r.split) << "</title><style>"
    << "body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}"
       "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
       "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}"
       ".charts{display:flex;flex-wrap:wrap;gap:24px}.chart{background:#fff;border:1px solid #e3e3e3}"
       ".title{font-size:15px;font-weight:600}.tick{font-size:11px;fill:#444}.label{font-size:12px;fill:#222}"
       ".legend{font-size:12px}.axis{stroke:#333}.grid{stroke:#eee}.diagonal{stroke:#999;stroke-dasharray:4 4}"
       "</style></head><body>";
  o << "<h1>emotune evaluation: " << svg::escape(r.split) << "</h1><p>" << m.n_examples << " texts, "
    << svg::escape(r.taxonomy) << " labels. Model <code>" << svg::escape(r.model_dir.string())
    << "</code>; thresholds " << svg::escape(r.threshold_source) << " (" << svg::escape(r.threshold_origin)
    << ").</p>";
  o << "<table><tr><th>metric</th><th>value</th></tr>"
    << "<tr><td>loss</td><td>" << f3(r.loss) << "</td></tr><tr><td>exact match</td><td>" << f3(m.exact_match)
    << "</td></tr><tr><td>micro F1</td><td>" << f3(m.micro.f1) << "</td></tr><tr><td>macro F1</td><td>"
    << f3(m.macro.f1) << "</td></tr><tr><td>weighted F1</td><td>" << f3(m.weighted.f1)
    << "</td></tr><tr><td>ROC-AUC (macro)</td><td>" << (m.roc_auc_macro ? f3(*m.roc_auc_macro) : "n/a")
    << "</td></tr><tr><td>ECE</td><td>" << f3(m.ece) << svg::escape(calibration_note(r)) << "</td></tr><tr><td>top-1 accuracy (first label)</td><td>"
    << f3(m.top1_accuracy_first_label) << " (reference " << kReferenceAccuracy << ")</td></tr></table>";

  o << "<div class=\"charts\">";
  // 1. per-label precision / recall / F1, sorted by F1
  std::vector<std::string> cats;
  svg::Series p{"precision", "#1f77b4", {}}, rc{"recall", "#ff7f0e", {}}, f{"F1", "#2ca02c", {}};
  for (std::size_t l : by_f1(m)) {
    cats.push_back(r.labels[l]);
    p.values.push_back(m.per_label[l].prf.precision);
    rc.values.push_back(m.per_label[l].prf.recall);
    f.values.push_back(m.per_label[l].prf.f1);
  }
  o << "<figure id=\"per-label\">" << svg::grouped_bars("Per-label precision, recall and F1", cats, {p, rc, f})
    << "</figure>";

  // 2. F1 against one global threshold
  std::vector<double> ts, micro, macro;
  for (int k = 1; k <= 19; ++k) {
    const double t = k * 0.05;
    const auto mt = compute_metrics(r.probs, r.gold, std::vector<float>(L, static_cast<float>(t)));
    ts.push_back(t);
    micro.push_back(mt.micro.f1);
    macro.push_back(mt.macro.f1);
  }
  o << "<figure id=\"threshold\">"
    << svg::lines("F1 against a global threshold", "threshold", "F1", ts,
                  {{"micro F1", "#1f77b4", micro}, {"macro F1", "#d62728", macro}}, true)
    << "</figure>";

  // 3. reliability diagram, before and after the calibration when the model has one
  if (r.uncalibrated_probs.defined())
    o << "<figure id=\"calibration-before\">"
      << reliability_figure(r.uncalibrated_probs, r.gold, "Reliability before calibration (ECE " + f3(r.ece_uncalibrated) + ")")
      << "</figure>";
  o << "<figure id=\"calibration\">"
    << reliability_figure(r.probs, r.gold,
                          std::string(r.uncalibrated_probs.defined() ? "Reliability, calibrated (" + r.calibration + ", " : "Reliability (") +
                              "ECE " + f3(m.ece) + ")")
    << "</figure>";

  // 4. gold co-occurrence next to predicted-vs-gold confusion
  std::vector<std::vector<double>> co(L, std::vector<double>(L, 0)), conf(L, std::vector<double>(L, 0));
  const auto probs = r.probs.contiguous();
  const auto pa = probs.accessor<float, 2>();
  for (std::size_t i = 0; i < r.gold.size(); ++i) {
    std::vector<std::size_t> predicted;
    for (std::size_t l = 0; l < L; ++l)
      if (pa[static_cast<int64_t>(i)][static_cast<int64_t>(l)] >= r.thresholds[l]) predicted.push_back(l);
    for (int g : r.gold[i]) {
      for (int h : r.gold[i]) co[static_cast<std::size_t>(g)][static_cast<std::size_t>(h)] += g != h;
      for (std::size_t q : predicted) conf[static_cast<std::size_t>(g)][q] += 1;
    }
  }
  o << "<figure id=\"cooccurrence\">"
    << svg::heatmap("Gold labels that occur together", "gold label", "co-occurring gold label", r.labels, co)
    << "</figure><figure id=\"confusion\">"
    << svg::heatmap("Predicted labels for each gold label", "gold label", "predicted label", r.labels, conf)
    << "</figure>";

  // 5. training curves
  if (const auto c = read_curves(r.model_dir)) {
    o << "<figure id=\"training-loss\">"
      << svg::lines("Training loss", "step", "loss", c->train_step, {{"train loss", "#1f77b4", c->train_loss}}, false)
      << "</figure>";
    if (!c->eval_step.empty())
      o << "<figure id=\"dev-curves\">"
        << svg::lines("Dev loss and macro-F1", "step", "value", c->eval_step,
                      {{"dev loss", "#ff7f0e", c->eval_loss}, {"dev macro-F1", "#2ca02c", c->eval_macro_f1}}, false)
        << "</figure>";
  }
  o << "</div>";

  o << "<h2>Per label</h2><table><tr><th>label</th><th>precision</th><th>recall</th><th>F1</th><th>support</th>"
       "<th>predicted</th><th>ROC-AUC</th><th>threshold</th></tr>";
  for (std::size_t l : by_f1(m)) {
    const auto& s = m.per_label[l];
    o << "<tr><td>" << svg::escape(r.labels[l]) << "</td><td>" << f3(s.prf.precision) << "</td><td>"
      << f3(s.prf.recall) << "</td><td>" << f3(s.prf.f1) << "</td><td>" << s.support << "</td><td>" << s.predicted
      << "</td><td>" << (s.roc_auc ? f3(*s.roc_auc) : "n/a") << "</td><td>" << f3(r.thresholds[l]) << "</td></tr>";
  }
  o << "</table></body></html>\n";
  return o.str();
}

void print_headline(const EvalResult& r, std::ostream& out) {
  const Metrics& m = r.metrics;
  char buf[256];
  out << "split " << r.split << ": " << m.n_examples << " texts, " << r.taxonomy << " labels, thresholds "
      << r.threshold_source << " (" << r.threshold_origin << ")\n";
  std::snprintf(buf, sizeof buf, "  %-22s %8s %8s %8s\n", "", "precision", "recall", "F1");
  out << buf;
  for (auto [name, v] : {std::pair{"micro", m.micro}, {"macro", m.macro}, {"weighted", m.weighted}}) {
    std::snprintf(buf, sizeof buf, "  %-22s %8.3f %8.3f %8.3f\n", name, v.precision, v.recall, v.f1);
    out << buf;
  }
  std::snprintf(buf, sizeof buf,
                "  loss %.4f | exact match %.3f | Hamming loss %.4f | ROC-AUC %s | ECE %.4f%s\n"
                "  top-1 accuracy: first label %.3f, any label %.3f (reference: loss 1.686, accuracy 0.524)\n",
                r.loss, m.exact_match, m.hamming_loss, m.roc_auc_macro ? f3(*m.roc_auc_macro).c_str() : "n/a", m.ece,
                calibration_note(r).c_str(),
                m.top1_accuracy_first_label, m.top1_accuracy_any_label);
  out << buf;
}

void write_reports(const EvalResult& r, const fs::path& dir) {
  fs::create_directories(dir);
  util::write_text_atomically(dir / "report.json", report_json(r).dump(2) + "\n");
  util::write_text_atomically(dir / "report.md", report_markdown(r));
  util::write_text_atomically(dir / "report.html", report_html(r));
}

}  // namespace emotune::eval
