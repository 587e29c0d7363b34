// Byte-level BPE on a toy vocabulary: the pre-tokenization pattern, merge order and added tokens, as
// the tokenizers library defines them (the oracle test checks real vocabularies against it).
#include <gtest/gtest.h>

#include <thread>

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

TEST(Bpe, RememberedWordsGiveTheSameTokensAndSpansFromAnyThread) {
  const auto t = toy({{"a", "b"}, {"ab", "c"}, {"Ġ", "abc"}});
  const std::string text = "abc abcabc xabc abc ab";
  const auto first_ids = t.encode(text, 64).ids;
  const auto first_spans = t.token_spans(text, 64);
  EXPECT_EQ(tokens(t, text), (V{"<s>", "abc", "Ġabc", "abc", "Ġ", "x", "abc", "Ġabc", "Ġ", "ab", "</s>"}));
  // The second time the words come from the cache; a copy of the tokenizer shares it.
  const ByteLevelBpe copy = t;
  std::vector<std::thread> threads;
  std::vector<bool> same(4, false);
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      bool ok = true;
      for (int r = 0; r < 200; ++r) {
        const auto& tok = i % 2 ? copy : t;
        ok = ok && tok.encode(text, 64).ids == first_ids;
        const auto spans = tok.token_spans(text, 64);
        ok = ok && spans.size() == first_spans.size();
        for (std::size_t k = 0; ok && k < spans.size(); ++k)
          ok = spans[k].start == first_spans[k].start && spans[k].end == first_spans[k].end;
      }
      same[static_cast<std::size_t>(i)] = ok;
    });
  for (auto& th : threads) th.join();
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(same[static_cast<std::size_t>(i)]) << "thread " << i;
}
