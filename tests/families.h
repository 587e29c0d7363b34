// The family table of tests/families.json, for the C++ tests: every test that runs per family
// iterates test_families(), so a family registered in src/model/family.cpp cannot be left out
// silently (Families.TheTestTableNamesEveryRegisteredFamily checks the table against the registry).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/config.h"

namespace emotune::tests {

// The table's family names (its model_type keys), in its order.
std::vector<std::string> test_families();
// The family's entry (classifier, tokenizer, unit_tokenizer, dropouts, small).
const nlohmann::json& family_entry(const std::string& family);
// Its small config.json with `overrides` (transformers' field names, or the sizes below) applied,
// read as emotune reads config.json. Overrides by meaning, whatever the family calls them:
// "hidden", "layers", "heads", "intermediate", "positions" (real tokens: the family's position
// offset is added), "dropout" (every dropout field).
model::ModelConfig small_config(const std::string& family, const nlohmann::json& overrides = nlohmann::json::object());

}  // namespace emotune::tests
