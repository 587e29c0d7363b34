// `emotune monitor --report DIR`: a self-contained HTML dashboard (SVG time series per source and label
// group, alerts marked on the timeline, a table of alerts) and the summary as JSON.
#pragma once

#include <filesystem>
#include <string>

#include "monitor/monitor.h"

namespace emotune::monitor {

struct ReportInfo {
  std::string model;        // the model directory
  std::string window;       // "last 50 messages", "7d"
  std::size_t bad_lines = 0;
};

std::string dashboard_html(const Monitor& m, const ReportInfo& info);
// DIR/index.html and DIR/summary.json, each replaced atomically.
void write_report(const Monitor& m, const ReportInfo& info, const std::filesystem::path& dir);

}  // namespace emotune::monitor
