#include "families.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "model/family.h"

namespace emotune::tests {

namespace {

const nlohmann::json& table() {
  static const nlohmann::json t = [] {
    std::ifstream f(EMOTUNE_TEST_FAMILIES);
    if (!f) throw std::runtime_error(std::string("cannot read ") + EMOTUNE_TEST_FAMILIES);
    return nlohmann::json::parse(f);
  }();
  return t;
}

// The field each family gives a size; DistilBERT names its own, the rest follow BERT.
const char* field(const std::string& family, const std::string& meaning) {
  const bool distil = family == "distilbert";
  if (meaning == "hidden") return distil ? "dim" : "hidden_size";
  if (meaning == "layers") return distil ? "n_layers" : "num_hidden_layers";
  if (meaning == "heads") return distil ? "n_heads" : "num_attention_heads";
  if (meaning == "intermediate") return distil ? "hidden_dim" : "intermediate_size";
  return nullptr;
}

}  // namespace

std::vector<std::string> test_families() {
  std::vector<std::string> names;
  for (const auto& [name, _] : table().items())
    if (name != "_") names.push_back(name);
  return names;
}

const nlohmann::json& family_entry(const std::string& family) { return table().at(family); }

model::ModelConfig small_config(const std::string& family, const nlohmann::json& overrides) {
  const auto& entry = family_entry(family);
  auto j = entry.at("small");
  for (const auto& [key, value] : overrides.items()) {
    if (const char* f = field(family, key)) {
      j[f] = value;
    } else if (key == "positions") {
      const int64_t pad = j.value("pad_token_id", 0);
      j["max_position_embeddings"] = value.get<int64_t>() + (entry.at("unit_tokenizer") == "byte_level" ? pad + 1 : 0);
    } else if (key == "dropout") {
      for (const auto& d : entry.at("dropouts")) j[d.get<std::string>()] = value;
    } else {
      j[key] = value;
    }
  }
  return model::ModelConfig::parse(j, "tests/families.json: " + family);
}

TEST(Families, TheTestTableNamesEveryRegisteredFamily) {
  std::set<std::string> registered, tested;
  for (const auto* f : model::all_families()) registered.insert(f->config.model_type);
  for (const auto& name : test_families()) tested.insert(name);
  EXPECT_EQ(registered, tested) << "every family in src/model/family.cpp needs its entry in tests/families.json";
  for (const auto& name : test_families()) {
    const auto c = small_config(name);
    EXPECT_EQ(c.model_type, name);
    EXPECT_EQ(family_entry(name).at("classifier"), model::find_family(name, "test").config.architecture);
  }
}

TEST(Families, EveryConfigReaderHasItsFamilyAndNoOther) {
  ASSERT_EQ(model::all_family_configs().size(), model::all_families().size())
      << "model/config.cpp and model/family.cpp must register the same families";
  for (std::size_t i = 0; i < model::all_families().size(); ++i)
    EXPECT_EQ(&model::all_families()[i]->config, model::all_family_configs()[i])
        << "registration order differs at " << i << " (model/config.cpp, model/family.cpp)";
}

}  // namespace emotune::tests
