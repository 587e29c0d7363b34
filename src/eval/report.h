// Evaluation reports: report.json (fields other tools read), report.md, a self-contained
// report.html with SVG charts, and the headline table for the terminal.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "eval/metrics.h"

namespace emotune::eval {

struct EvalResult {
  std::string split;           // "dev", "test", or the data file's name
  std::filesystem::path data_path, model_dir;
  std::string taxonomy;
  std::vector<std::string> labels;
  double loss = 0;
  Metrics metrics;
  std::vector<float> thresholds;
  std::string threshold_source;  // "fixed" | "dev" | "file"
  std::string threshold_origin;  // the split or file they came from
  std::string model_sha256, data_sha256;
  torch::Tensor probs;                    // [N, L], as served (calibrated when the model is)
  torch::Tensor uncalibrated_probs;       // [N, L] the plain sigmoid's; undefined when the model has no calibration
  std::string calibration;                // calibration.json's fit; empty: none
  double ece_uncalibrated = 0;            // ECE of uncalibrated_probs (= metrics.ece without a calibration)
  std::vector<std::vector<int>> gold;
};

nlohmann::ordered_json prf_json(const PRF& p);  // {precision, recall, f1}
nlohmann::ordered_json report_json(const EvalResult& r);
std::string report_markdown(const EvalResult& r);
std::string report_html(const EvalResult& r);
void print_headline(const EvalResult& r, std::ostream& out);

// Writes report.json, report.md and report.html into `dir` (each atomically).
void write_reports(const EvalResult& r, const std::filesystem::path& dir);

}  // namespace emotune::eval
