// Label sets: GoEmotions' 28 emotions and its Ekman and sentiment groupings, or a user's list.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace emotune::data {

enum class Taxonomy { original, ekman, sentiment };

Taxonomy parse_taxonomy(const std::string& name);  // "original" | "ekman" | "sentiment"
std::string taxonomy_name(Taxonomy t);

// The 28 GoEmotions labels in emotions.txt order (27 = neutral).
const std::vector<std::string>& goemotions_labels();
// Group names of a taxonomy; `original` gives goemotions_labels().
const std::vector<std::string>& taxonomy_labels(Taxonomy t);
// For each of the 28 GoEmotions labels, its group id in `t` (neutral maps to neutral).
std::vector<int> taxonomy_map(Taxonomy t);

// "goemotions" | "ekman" | "sentiment" | a file with one label per line.
std::vector<std::string> resolve_labels(const std::string& spec);

}  // namespace emotune::data
