#include "data/goemotions.h"

#include <algorithm>
#include <fstream>
#include <stdexcept>

#include "text/utf8.h"
#include "util/errors.h"

namespace emotune::data {

namespace {

struct BadLine : std::runtime_error {
  using std::runtime_error::runtime_error;
};

Example parse_line(const std::string& line, const std::vector<int>& group_of) {
  const auto tab = line.find('\t');
  if (tab == std::string::npos) throw BadLine("missing the label column");
  if (!text::is_valid_utf8(line)) throw BadLine("invalid UTF-8");
  Example ex;
  ex.text = line.substr(0, tab);
  const auto tab2 = line.find('\t', tab + 1);
  const std::string ids = line.substr(tab + 1, tab2 == std::string::npos ? std::string::npos : tab2 - tab - 1);
  if (ids.empty()) throw BadLine("no label ids");
  std::size_t start = 0;
  bool first = true;
  while (start <= ids.size()) {
    const auto comma = std::min(ids.find(',', start), ids.size());
    const std::string tok = ids.substr(start, comma - start);
    if (tok.empty() || tok.size() > 3 || !std::all_of(tok.begin(), tok.end(), [](char c) { return c >= '0' && c <= '9'; }))
      throw BadLine("label id '" + tok + "' is not a number");
    const int id = std::stoi(tok);
    if (id >= static_cast<int>(group_of.size()))
      throw BadLine("label id " + tok + " is out of range (0-" + std::to_string(group_of.size() - 1) + ")");
    const int group = group_of[static_cast<std::size_t>(id)];
    if (first) ex.first_label = group;
    first = false;
    if (std::find(ex.labels.begin(), ex.labels.end(), group) == ex.labels.end()) ex.labels.push_back(group);
    start = comma + 1;
  }
  std::sort(ex.labels.begin(), ex.labels.end());
  return ex;
}

}  // namespace

Dataset read_goemotions_tsv(const std::filesystem::path& path, data::Taxonomy taxonomy, bool skip_bad_lines) {
  if (!std::filesystem::exists(path)) throw NotFoundError("data file not found: " + path.string());
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError("cannot read data file " + path.string());
  const std::vector<int> group_of = data::taxonomy_map(taxonomy);
  Dataset ds;
  ds.path = path;
  std::string line;
  std::size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    try {
      ds.examples.push_back(parse_line(line, group_of));
    } catch (const BadLine& e) {
      if (!skip_bad_lines)
        throw InputError(path.string() + ":" + std::to_string(line_no) + ": " + e.what() +
                         " (use {skip_bad_lines} to skip such lines)");
      ++ds.skipped_lines;
    }
  }
  if (ds.examples.empty()) throw InputError(path.string() + ": no examples");
  return ds;
}

}  // namespace emotune::data
