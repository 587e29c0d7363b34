// GoEmotions TSV splits (`text<TAB>label ids<TAB>comment id`) read into examples whose labels
// are mapped to a taxonomy (original 28, Ekman 7, sentiment 4).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "data/labels.h"

namespace emotune::data {

struct Example {
  std::string text;
  std::vector<int> labels;  // sorted, distinct ids in the taxonomy's label space
  int first_label = 0;      // the first listed GoEmotions label, mapped (the single-label target)
};

struct Dataset {
  std::filesystem::path path;
  std::vector<Example> examples;
  std::size_t skipped_lines = 0;
};

// Throws naming file and line for a malformed line (missing column, a label id that is not a
// number or not below 28, invalid UTF-8) unless skip_bad_lines, which counts them instead.
Dataset read_goemotions_tsv(const std::filesystem::path& path, data::Taxonomy taxonomy, bool skip_bad_lines);

}  // namespace emotune::data
