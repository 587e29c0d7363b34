// Byte-level BPE on a toy vocabulary: the pre-tokenization pattern, merge order and added tokens, as
// the tokenizers library defines them (the oracle test checks real vocabularies against it).
#include <gtest/gtest.h>

#include "text/bpe.h"

using emotune::text::ByteLevelBpe;

namespace {

// Every byte's stand-in, then `merges` (their results appended to the vocabulary), then <mask>.
ByteLevelBpe toy(const std::vector<std::pair<std::string, std::string>>& merges) {
  std::unordered_map<std::string, std::int32_t> vocab{{"<s>", 0}, {"<pad>", 1}, {"</s>", 2}, {"<unk>", 3}};
  auto add = [&](const std::string& t) { vocab.emplace(t, static_cast<std::int32_t>(vocab.size())); };
  for (int b = 0; b < 256; ++b) add(emotune::text::byte_stand_in(static_cast<unsigned char>(b)));
  for (const auto& [a, b] : merges) add(a + b);
  const auto mask = static_cast<std::int32_t>(vocab.size());
  vocab.emplace("<mask>", mask);
  emotune::text::BpeOptions o;
  o.added = {{"<s>", 0}, {"<pad>", 1}, {"</s>", 2}, {"<unk>", 3}, {"<mask>", mask, /*lstrip=*/true, false}};
  o.prefix = {0};
  o.suffix = {2};
  return ByteLevelBpe(vocab, merges, o);
}

std::vector<std::string> tokens(const ByteLevelBpe& t, const std::string& text, std::size_t max_length = 64) {
  std::vector<std::string> out;
  for (auto id : t.encode(text, max_length).ids) out.push_back(t.token(id));
  return out;
}

using V = std::vector<std::string>;

}  // namespace

TEST(Bpe, SpacesAttachToTheFollowingWordAndRunsLeaveOneForIt) {
  const auto t = toy({});
  EXPECT_EQ(tokens(t, "a b"), (V{"<s>", "a", "Ġ", "b", "</s>"}));
  // "a   b": the run keeps its last space for " b" (\s+(?!\S)), so "ĠĠ" then "Ġb".
  EXPECT_EQ(tokens(t, "a   b"), (V{"<s>", "a", "Ġ", "Ġ", "Ġ", "b", "</s>"}));
  EXPECT_EQ(tokens(toy({{"Ġ", "Ġ"}, {"Ġ", "b"}}), "a   b"), (V{"<s>", "a", "ĠĠ", "Ġb", "</s>"}));
  EXPECT_EQ(tokens(toy({{"Ġ", "Ġ"}}), "a  "), (V{"<s>", "a", "ĠĠ", "</s>"}));  // at the end: the whole run
}

TEST(Bpe, ContractionsAreLowercaseOnly) {
  const auto t = toy({{"'", "s"}, {"'", "S"}});
  EXPECT_EQ(tokens(t, "it's"), (V{"<s>", "i", "t", "'s", "</s>"}));
  EXPECT_EQ(tokens(t, "IT'S"), (V{"<s>", "I", "T", "'", "S", "</s>"}));  // "'S" is punctuation, then a letter
}

TEST(Bpe, LowestRankMergesFirstAndLeftmostAmongEquals) {
  // "abc": rank 0 "b c" beats rank 1 "a b", so "a" + "bc" although "ab" also exists.
  EXPECT_EQ(tokens(toy({{"b", "c"}, {"a", "b"}}), "abc"), (V{"<s>", "a", "bc", "</s>"}));
  // "aaa" with "a a": the left pair merges first.
  EXPECT_EQ(tokens(toy({{"a", "a"}}), "aaa"), (V{"<s>", "aa", "a", "</s>"}));
}

TEST(Bpe, AddedTokensAreCutOutFirstAndMaskTakesTheSpaceBeforeIt) {
  const auto t = toy({});
  EXPECT_EQ(tokens(t, "a <mask>b"), (V{"<s>", "a", "<mask>", "b", "</s>"}));
  EXPECT_EQ(tokens(t, "<s>x</s>"), (V{"<s>", "<s>", "x", "</s>", "</s>"}));
}

TEST(Bpe, NonAsciiGoesThroughItsUtf8Bytes) {
  const auto t = toy({});
  EXPECT_EQ(t.encode("é", 64).ids.size(), 4u);  // <s>, two bytes, </s>
}

TEST(Bpe, TruncationKeepsTheEndToken) {
  const auto t = toy({});
  const auto e = t.encode("a b c d e f", 4);
  EXPECT_TRUE(e.truncated);
  EXPECT_EQ(tokens(t, "a b c d e f", 4), (V{"<s>", "a", "Ġ", "</s>"}));
}
