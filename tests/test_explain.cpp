// Explanations on small random models of each family: inputs_embeds computes what the ids do;
// integrated gradients add up to the logit difference; gradient x input is the derivative a finite
// difference measures; occlusion is the logit drop of replacing one token; batching the interpolation
// steps changes nothing; words gather their tokens.
#include <gtest/gtest.h>

#include "expect_error.h"
#include <torch/torch.h>

#include <cmath>
#include <numeric>

#include "explain/attribution.h"
#include "model/checkpoint.h"
#include "text/bpe.h"
#include "text/wordpiece.h"

#include "families.h"

namespace {

namespace m = emotune::model;
namespace x = emotune::explain;
namespace t = emotune::text;

std::shared_ptr<const t::Tokenizer> wordpiece() {
  return std::make_shared<t::WordPiece>(
      std::vector<std::string>{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "##s",
                               "!", "i", "am", "so", "happy", "sad", "today", ",", "you"},
      t::WordPieceOptions{});
}

std::shared_ptr<const t::Tokenizer> byte_level() {
  std::unordered_map<std::string, std::int32_t> vocab{{"<s>", 0}, {"<pad>", 1}, {"</s>", 2}, {"<unk>", 3}};
  for (int b = 0; b < 256; ++b) vocab.emplace(t::byte_stand_in(static_cast<unsigned char>(b)), static_cast<std::int32_t>(vocab.size()));
  const std::vector<std::pair<std::string, std::string>> merges{{"c", "a"}, {"ca", "t"}, {"Ġ", "cat"}, {"Ġ", "s"}};
  for (const auto& [a, b] : merges) vocab.emplace(a + b, static_cast<std::int32_t>(vocab.size()));
  const auto mask = static_cast<std::int32_t>(vocab.size());
  vocab.emplace("<mask>", mask);
  t::BpeOptions o;
  o.added = {{"<s>", 0}, {"<pad>", 1}, {"</s>", 2}, {"<unk>", 3}, {"<mask>", mask, true, false}};
  o.prefix = {0};
  o.suffix = {2};
  return std::make_shared<t::ByteLevelBpe>(vocab, merges, o);
}

// A random classifier of the family, with weights large enough that the logit is far from linear in
// the inputs (the default 0.02 would make every method agree trivially).
m::ModelBundle bundle(const std::string& family) {
  m::ModelBundle b;
  const bool byte_level_family = emotune::tests::family_entry(family).at("unit_tokenizer") == "byte_level";
  b.tokenizer = byte_level_family ? byte_level() : wordpiece();
  auto c = emotune::tests::small_config(
      family, {{"hidden", 32}, {"intermediate", 64}, {"heads", 4}, {"layers", 2}, {"positions", 64},
               {"dropout", 0.1},  // must not act: eval mode
               {"vocab_size", b.tokenizer->vocab_size()}, {"initializer_range", 0.3}});
  c.labels = {"joy", "sadness", "neutral"};
  b.model = m::init_classifier(c, 11);
  return b;
}

const std::vector<std::string> kFamilies = emotune::tests::test_families();
const std::string kText = "the cats sat on the mat, i am so happy today!";

x::Options options(x::Method method, std::size_t steps = 32) {
  x::Options o;
  o.method = method;
  o.steps = steps;
  return o;
}

torch::Tensor ids_of(const t::Tokenizer& tok, const std::string& text) {
  const auto e = tok.encode(text, 64);
  return torch::tensor(std::vector<int64_t>(e.ids.begin(), e.ids.end()), torch::kInt64).unsqueeze(0);
}

}  // namespace

TEST(Explain, InputsEmbedsGiveTheLogitsOfTheIds) {
  for (const auto& family : kFamilies) {
    auto b = bundle(family);
    b.model->eval();
    torch::NoGradGuard no_grad;
    const auto a = ids_of(*b.tokenizer, kText), shorter = ids_of(*b.tokenizer, "the cat sat");
    const auto pad = b.tokenizer->pad_id();
    auto ids = torch::full({2, a.size(1)}, pad, torch::kInt64);
    ids[0] = a[0];
    ids.slice(1, 0, shorter.size(1))[1] = shorter[0];
    const auto mask = ids.ne(pad).to(torch::kInt64);
    const auto from_ids = b.model->forward(ids, mask);
    const auto from_embeds = b.model->forward_embeds(b.model->input_embeddings()(ids), mask);
    EXPECT_TRUE(torch::allclose(from_ids, from_embeds, 1e-5, 1e-5)) << family;
  }
}

TEST(Explain, IntegratedGradientsAddUpToTheLogitDifference) {
  for (const auto& family : kFamilies) {
    auto b = bundle(family);
    const x::Explainer many(b, options(x::Method::IntegratedGradients, 256));
    const x::Explainer few(b, options(x::Method::IntegratedGradients, 2));
    for (std::size_t label = 0; label < 3; ++label) {
      const auto e = many.explain(kText, {label}).at(0);
      const double gap = e.logit - e.baseline_logit;
      double sum = 0;
      for (const auto& tok : e.tokens) sum += tok.attribution;
      ASSERT_TRUE(e.delta.has_value());
      EXPECT_NEAR(*e.delta, sum - gap, 1e-9);
      EXPECT_GT(std::abs(gap), 0.05) << family << " label " << label << ": the test needs a real difference";
      EXPECT_LT(std::abs(*e.delta), 0.01 * std::abs(gap) + 1e-4) << family << " label " << label;
      // Completeness comes from the integral, not by construction: two steps miss it by more.
      EXPECT_GT(std::abs(*few.explain(kText, {label}).at(0).delta), std::abs(*e.delta)) << family << " label " << label;
    }
  }
}

TEST(Explain, GradientTimesInputIsTheDerivativeAFiniteDifferenceMeasures) {
  for (const auto& family : kFamilies) {
    auto b = bundle(family);
    const x::Explainer explainer(b, options(x::Method::GradientXInput));
    const std::size_t label = 1;
    const auto e = explainer.explain(kText, {label}).at(0);
    EXPECT_EQ(e.steps, 1u);
    EXPECT_FALSE(e.delta.has_value());

    torch::NoGradGuard no_grad;
    const auto ids = ids_of(*b.tokenizer, kText);
    const auto n = ids.size(1);
    const auto table = b.model->input_embeddings()->weight;
    const auto xs = table.index_select(0, ids[0]).to(torch::kFloat64);
    const auto base = table[b.tokenizer->pad_id()].to(torch::kFloat64);
    const auto ones = torch::ones({1, n}, torch::kInt64);
    auto logit_at = [&](const torch::Tensor& rows) {
      return b.model->forward_embeds(rows.to(torch::kFloat32).unsqueeze(0), ones)[0][label].item<double>();
    };
    // The text's tokens are positions 1..n-2; along direction d = x_i - b, (f(x + h d) - f(x - h d)) / 2h.
    for (int64_t i = 1; i + 1 < n; ++i) {
      const double h = 1e-2;
      auto up = xs.clone(), down = xs.clone();
      up[i] += h * (xs[i] - base);
      down[i] -= h * (xs[i] - base);
      const double measured = (logit_at(up) - logit_at(down)) / (2 * h);
      const double got = e.tokens.at(static_cast<std::size_t>(i - 1)).attribution;
      EXPECT_NEAR(got, measured, 2e-3 + 0.02 * std::abs(measured)) << family << " token " << i;
    }
  }
}

TEST(Explain, OcclusionIsTheLogitDropWhenOneTokenBecomesTheBaseline) {
  for (const auto& family : kFamilies) {
    auto b = bundle(family);
    x::Options o = options(x::Method::Occlusion);
    o.baseline = x::Baseline::Mask;
    const x::Explainer explainer(b, o);
    const auto e = explainer.explain(kText, {0}).at(0);
    torch::NoGradGuard no_grad;
    const auto ids = ids_of(*b.tokenizer, kText);
    const auto n = ids.size(1);
    const auto ones = torch::ones({1, n}, torch::kInt64);
    const double full = b.model->forward(ids, ones)[0][0].item<double>();
    EXPECT_NEAR(e.logit, full, 1e-5);
    ASSERT_EQ(e.tokens.size(), static_cast<std::size_t>(n - 2));
    EXPECT_EQ(e.steps, e.tokens.size());
    for (int64_t i = 1; i + 1 < n; ++i) {
      auto occluded = ids.clone();
      occluded[0][i] = *b.tokenizer->mask_id();
      const double drop = full - b.model->forward(occluded, ones)[0][0].item<double>();
      EXPECT_NEAR(e.tokens[static_cast<std::size_t>(i - 1)].attribution, drop, 1e-5) << family << " token " << i;
    }
  }
}

TEST(Explain, BatchingTheStepsChangesNothing) {
  for (const auto& family : kFamilies) {
    auto b = bundle(family);
    x::Options one_pass = options(x::Method::IntegratedGradients, 20), many_passes = one_pass;
    many_passes.max_batch_tokens = 1;  // one interpolated sequence per pass
    const auto a = x::Explainer(b, one_pass).explain(kText, {0, 2});
    const auto c = x::Explainer(b, many_passes).explain(kText, {0, 2});
    ASSERT_EQ(a.size(), 2u);
    for (std::size_t l = 0; l < a.size(); ++l)
      for (std::size_t i = 0; i < a[l].tokens.size(); ++i)
        EXPECT_NEAR(a[l].tokens[i].attribution, c[l].tokens[i].attribution, 1e-5) << family;
  }
}

TEST(Explain, WordsGatherTheirPiecesAndPunctuationStandsAlone) {
  auto b = bundle("distilbert");
  const auto e = x::Explainer(b, options(x::Method::GradientXInput)).explain("The cats sat!", {0}).at(0);
  std::vector<std::string> tokens, words;
  for (const auto& tok : e.tokens) tokens.push_back(tok.token);
  for (const auto& w : e.words) words.push_back(w.word);
  EXPECT_EQ(tokens, (std::vector<std::string>{"the", "cat", "##s", "sat", "!"}));
  EXPECT_EQ(words, (std::vector<std::string>{"The", "cats", "sat", "!"}));  // the text's own spelling
  EXPECT_EQ(e.words[1].start, 4u);
  EXPECT_EQ(e.words[1].end, 8u);
  EXPECT_NEAR(e.words[1].attribution, e.tokens[1].attribution + e.tokens[2].attribution, 1e-12);

  auto r = bundle("roberta");
  const auto f = x::Explainer(r, options(x::Method::GradientXInput)).explain("a cat  cats", {0}).at(0);
  words.clear();
  for (const auto& w : f.words) words.push_back(w.word + "@" + std::to_string(w.start));
  // Byte-level tokens keep their space but not in their offsets; the lone space token is no word.
  EXPECT_EQ(words, (std::vector<std::string>{"a@0", "cat@2", "cats@7"}));
}

TEST(Explain, LabelsToExplainFollowTheRequestThenTheThresholds) {
  const std::vector<float> scores{0.2f, 0.9f, 0.6f}, thresholds{0.5f, 0.5f, 0.7f};
  EXPECT_EQ(x::labels_to_explain(scores, thresholds, 0, {2}), (std::vector<std::size_t>{2}));
  EXPECT_EQ(x::labels_to_explain(scores, thresholds, 2, {}), (std::vector<std::size_t>{1, 2}));
  EXPECT_EQ(x::labels_to_explain(scores, thresholds, 0, {}), (std::vector<std::size_t>{1}));
  EXPECT_EQ(x::labels_to_explain({0.1f, 0.3f, 0.2f}, thresholds, 0, {}), (std::vector<std::size_t>{1}));
}

TEST(Explain, RefusesWhatItCannotDo) {
  auto b = bundle("distilbert");
  EXPECT_THROW_MESSAGE(x::Explainer(b, options(x::Method::IntegratedGradients, 0)), std::invalid_argument,
                       "{steps} must be between 1 and");
  const x::Explainer e(b, options(x::Method::IntegratedGradients, 4));
  EXPECT_THROW_MESSAGE(e.explain(kText, {3}), std::out_of_range, "label id 3 is not one of the model's");
  EXPECT_FALSE(x::method_named("lime").has_value());
  EXPECT_EQ(x::method_name(*x::method_named("gradient-x-input")), "gradient-x-input");
}

TEST(TokenSpans, PointIntoTheOriginalText) {
  const auto wp = wordpiece();
  const auto spans = wp->token_spans("The  CATS!", 64);
  ASSERT_EQ(spans.size(), 6u);  // [CLS] the cat ##s ! [SEP]
  EXPECT_TRUE(spans[0].special);
  EXPECT_EQ(spans[1], (t::TokenSpan{0, 3}));
  EXPECT_EQ(spans[2], (t::TokenSpan{5, 8}));
  EXPECT_EQ(spans[3], (t::TokenSpan{8, 9}));
  EXPECT_EQ(spans[4], (t::TokenSpan{9, 10}));
  EXPECT_TRUE(spans[5].special);
  const auto truncated = wp->token_spans("the cat sat on the mat", 4);
  EXPECT_EQ(truncated.size(), 4u);
  EXPECT_EQ(truncated[2], (t::TokenSpan{4, 7}));
}
