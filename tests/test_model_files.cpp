#include <gtest/gtest.h>

#include "expect_error.h"
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/config.h"
#include "util/errors.h"
#include "data/labels.h"
#include "runtime/runtime.h"
#include "weights/safetensors.h"
#include "weights/safetensors_header.h"

using namespace emotune::model;
using namespace emotune::weights;
using namespace emotune::data;
namespace fs = std::filesystem;

namespace {
// Per process: ctest runs each case as its own process, several at once.
fs::path temp_path(const std::string& name) {
  return fs::temp_directory_path() / ("emotune_test_" + std::to_string(::getpid()) + "_" + name);
}
}  // namespace

TEST(Safetensors, RoundTripsNamesShapesAndValues) {
  const auto path = temp_path("rt.safetensors");
  auto a = torch::randn({3, 5});
  auto b = torch::arange(7, torch::kFloat32);
  save_safetensors(path, {{"x.weight", a}, {"y.bias", b}});
  const SafetensorsFile f(path);
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.tensors().at("x.weight").shape, (std::vector<int64_t>{3, 5}));
  EXPECT_TRUE(torch::equal(f.load_f32("x.weight"), a));
  EXPECT_TRUE(torch::equal(f.load_f32("y.bias"), b));
  // The data section starts 8-byte aligned.
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ((8 + n) % 8, 0u);
  fs::remove(path);
}

TEST(Safetensors, ReadsHalfPrecisionAsFloat32) {
  const auto path = temp_path("half.safetensors");
  // 1.5 in F16 is 0x3E00; in BF16 it is 0x3FC0.
  const std::string header = R"({"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},)"
                             R"("b":{"dtype":"BF16","shape":[1],"data_offsets":[4,6]},"__metadata__":{"k":"v"}})";
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header;
  const unsigned char data[] = {0x00, 0x3E, 0x00, 0xBC, 0xC0, 0x3F};  // 1.5, -1.0, 1.5
  out.write(reinterpret_cast<const char*>(data), sizeof data);
  out.close();
  const SafetensorsFile f(path);
  auto h = f.load_f32("h");
  EXPECT_EQ(h.scalar_type(), torch::kFloat32);
  EXPECT_FLOAT_EQ(h[0].item<float>(), 1.5f);
  EXPECT_FLOAT_EQ(h[1].item<float>(), -1.0f);
  EXPECT_FLOAT_EQ(f.load_f32("b")[0].item<float>(), 1.5f);
  fs::remove(path);
}

TEST(Safetensors, RejectsByteCountsThatDisagreeWithTheShape) {
  const auto path = temp_path("bad.safetensors");
  const std::string header = R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})";
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = header.size();
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header << std::string(8, '\0');
  out.close();
  EXPECT_THROW_MESSAGE(SafetensorsFile{path}, std::runtime_error, "bytes for a");
  fs::remove(path);
}

TEST(Safetensors, RejectsTensorsThatShareBytes) {
  // Each alone is inside the data and agrees with its shape; together b's bytes lie inside a's.
  const std::string overlapping = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                  R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})";
  try {
    parse_safetensors_header(overlapping, 8);
    FAIL() << "overlapping data_offsets were accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'a' and 'b' share bytes"), std::string::npos) << e.what();
  }
  const std::string adjacent = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                               R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},)"
                               R"("empty":{"dtype":"F32","shape":[0],"data_offsets":[8,8]}})";
  EXPECT_EQ(parse_safetensors_header(adjacent, 8).size(), 3u);
}

TEST(Config, ReadsSizesAndLabelsAndRejectsNonsense) {
  const auto path = temp_path("config.json");
  std::ofstream(path) << R"({"model_type":"distilbert","dim":64,"n_heads":4,"n_layers":1,"hidden_dim":8,
                             "id2label":{"1":"b","0":"a"}})";
  const auto c = ModelConfig::load(path);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.vocab_size, 30522);
  EXPECT_EQ(c.labels, (std::vector<std::string>{"a", "b"}));
  const auto j = c.to_classifier_json();
  EXPECT_EQ(j["label2id"]["b"], 1);
  EXPECT_EQ(j["problem_type"], "multi_label_classification");
  std::ofstream(path) << R"({"model_type":"distilbert","dim":10,"n_heads":4})";
  EXPECT_THROW_MESSAGE(ModelConfig::load(path), std::runtime_error, "a multiple of the head count");
  std::ofstream(path) << R"({"model_type":"gpt2"})";
  EXPECT_THROW_MESSAGE(ModelConfig::load(path), std::runtime_error, "gpt2");
  fs::remove(path);
}

TEST(Config, ReadsBertFieldsAndWritesThemBack) {
  const auto path = temp_path("config.json");
  std::ofstream(path) << R"({"model_type":"bert","hidden_size":48,"num_attention_heads":4,"num_hidden_layers":2,
                             "intermediate_size":96,"hidden_act":"gelu","hidden_dropout_prob":0.05,
                             "attention_probs_dropout_prob":0.02,"classifier_dropout":null,"layer_norm_eps":1e-7,
                             "type_vocab_size":2,"vocab_size":100,"max_position_embeddings":64})";
  const auto c = ModelConfig::load(path);
  EXPECT_EQ(c.model_type, "bert");
  EXPECT_EQ(c.hidden_size, 48);
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.num_heads, 4);
  EXPECT_EQ(c.intermediate_size, 96);
  EXPECT_EQ(c.type_vocab_size, 2);
  EXPECT_DOUBLE_EQ(c.hidden_dropout, 0.05);
  EXPECT_DOUBLE_EQ(c.attention_dropout, 0.02);
  EXPECT_DOUBLE_EQ(c.classifier_dropout, 0.05) << "classifier_dropout null falls back to hidden_dropout_prob";
  EXPECT_DOUBLE_EQ(c.layer_norm_eps, 1e-7);
  const auto j = c.to_classifier_json();
  EXPECT_EQ(j["architectures"][0], "BertForSequenceClassification");
  EXPECT_EQ(j["num_hidden_layers"], 2);
  EXPECT_EQ(j.count("dim"), 0u) << "no DistilBERT field names in a BERT config";
  std::ofstream(path) << R"({"model_type":"bert","position_embedding_type":"relative_key"})";
  EXPECT_THROW_MESSAGE(ModelConfig::load(path), std::runtime_error, "relative_key");
  std::ofstream(path) << R"({"model_type":"bert","hidden_act":"swish"})";
  EXPECT_THROW_MESSAGE(ModelConfig::load(path), std::runtime_error, "swish");
  fs::remove(path);
}

TEST(Labels, TaxonomiesGroupEveryEmotion) {
  EXPECT_EQ(goemotions_labels().size(), 28u);
  EXPECT_EQ(goemotions_labels()[27], "neutral");
  const auto ekman = taxonomy_map(Taxonomy::ekman);
  const auto& groups = taxonomy_labels(Taxonomy::ekman);
  EXPECT_EQ(groups[ekman[27]], "neutral");
  EXPECT_EQ(groups[ekman[0]], "joy");       // admiration
  EXPECT_EQ(groups[ekman[3]], "anger");     // annoyance
  EXPECT_EQ(groups[ekman[22]], "surprise"); // realization
  const auto senti = taxonomy_map(Taxonomy::sentiment);
  EXPECT_EQ(taxonomy_labels(Taxonomy::sentiment)[senti[6]], "ambiguous");  // confusion
}

TEST(Labels, MatchTheSharedGoEmotionsFiles) {
  const char* shared = std::getenv("EMOTUNE_SHARED");
  if (!shared || !fs::exists(fs::path(shared) / "data/goemotions/emotions.txt"))
    GTEST_SKIP() << "EMOTUNE_SHARED not set: skipping comparison with the GoEmotions files";
  const fs::path dir = fs::path(shared) / "data/goemotions";
  std::ifstream in(dir / "emotions.txt");
  std::vector<std::string> names;
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) names.push_back(l);
  EXPECT_EQ(names, goemotions_labels());
  for (auto [t, file] : {std::pair{Taxonomy::ekman, "ekman_mapping.json"}, {Taxonomy::sentiment, "sentiment_mapping.json"}}) {
    std::ifstream jf(dir / file);
    const auto j = nlohmann::json::parse(jf);
    const auto map = taxonomy_map(t);
    const auto& groups = taxonomy_labels(t);
    std::size_t mapped = 0;
    for (const auto& [group, members] : j.items())
      for (const auto& m : members) {
        const auto idx = std::find(names.begin(), names.end(), m.get<std::string>()) - names.begin();
        EXPECT_EQ(groups[map[idx]], group) << m;
        ++mapped;
      }
    EXPECT_EQ(mapped, 27u);
  }
}

TEST(Runtime, OpenBlasFallbackKernelsAreReplacedOnlyWhenTheCpuOutgrowsThem) {
  using emotune::runtime::better_openblas_core;
  EXPECT_EQ(better_openblas_core("Prescott", true, true), "SkylakeX");  // the Xeon OpenBLAS 0.3.21 does not know
  EXPECT_EQ(better_openblas_core("Sandybridge", true, false), "Haswell");
  EXPECT_EQ(better_openblas_core("Unknown", true, true), "SkylakeX");
  EXPECT_EQ(better_openblas_core("Prescott", false, false), std::nullopt);  // an old CPU: its kernels are right
  EXPECT_EQ(better_openblas_core("Haswell", true, true), std::nullopt);  // a deliberate choice is left alone
  EXPECT_EQ(better_openblas_core("SkylakeX", true, true), std::nullopt);
  EXPECT_EQ(better_openblas_core("Cooperlake", true, true), std::nullopt);
  EXPECT_EQ(better_openblas_core("Zen", true, false), std::nullopt);
}

namespace {

TEST(Config, OnePlaceChoosesTheMaxLengthForEveryCommand) {
  ModelConfig c;  // 512 positions
  EXPECT_EQ(c.choose_max_length(0), 512u);
  EXPECT_EQ(c.choose_max_length(0, 128), 128u);
  EXPECT_EQ(c.choose_max_length(64, 128), 64u);
  c.max_position_embeddings = 66;
  c.position_offset = 2;  // RoBERTa: 64 real tokens
  EXPECT_EQ(c.choose_max_length(0, 128), 64u);
  for (std::size_t bad : {std::size_t{1}, std::size_t{65}}) {
    try {
      c.choose_max_length(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const emotune::SettingError& e) {
      EXPECT_EQ(std::string(e.what()), "{max_length} " + std::to_string(bad) + " is outside 2..64 (the model's positions)");
    }
  }
}

}  // namespace
