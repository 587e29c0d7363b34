// `emotune monitor`'s work: message lines read from a LineReader, scored in chunks, fed to the
// Monitor; alerts written as they fire; the report written at the end and, while following, brought
// up to date when the input pauses.
#pragma once

#include <cstddef>
#include <filesystem>
#include <ostream>
#include <vector>

#include "infer/predictor.h"
#include "monitor/dashboard.h"
#include "monitor/line_reader.h"
#include "monitor/monitor.h"

namespace emotune::monitor {

struct StreamOptions {
  bool follow = false;          // refresh the report every few seconds while the input pauses
  bool keep_text = false;       // the window keeps texts (summary.json)
  bool skip_bad_lines = false;  // count malformed lines instead of stopping at the first
  std::size_t batch_size = 32;
  std::size_t streams = 1;               // forward passes at once
  std::filesystem::path report_dir;      // empty: no report
  ReportInfo report;                     // the model and window the report names
};

struct StreamSummary {
  std::size_t bad_lines = 0;
  std::vector<std::size_t> first_bad_lines;  // their line numbers, the first 20
};

// Reads to the end (or, following, until SIGINT/SIGTERM). A malformed line without skip_bad_lines
// throws InputError naming it, after the messages before it are scored and the report written.
StreamSummary run_stream(LineReader& reader, infer::Predictor& predictor, Monitor& monitor, std::ostream& alerts,
                         const StreamOptions& o);

}  // namespace emotune::monitor
