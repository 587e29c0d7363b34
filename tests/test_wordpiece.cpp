#include <gtest/gtest.h>

#include "expect_error.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "text/wordpiece.h"

using namespace emotune::text;
namespace fs = std::filesystem;

namespace {

// A hand-made vocabulary, so every expected id below can be checked by eye.
const std::vector<std::string> kVocab = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",                      // 0-4
    "hello", "world", "un", "##aff", "##able",                         // 5-9
    "cafe", ",", "!", "[", "]",                                        // 10-14
    "name", "love", "i", "οδοσ", "οδος",                               // 15-19
    "中", "文", "a", "##a", ".",                                        // 20-24
    "hel", "##lo", "naive", "'", "s",                                   // 25-29
};

WordPiece tiny() { return WordPiece(kVocab, WordPieceOptions{}); }

std::vector<std::int32_t> ids(const WordPiece& t, const std::string& s, std::size_t max_length = 512) {
  return t.encode(s, max_length).ids;
}

using V = std::vector<std::int32_t>;

}  // namespace

TEST(WordPiece, EmptyTextIsClsSep) { EXPECT_EQ(ids(tiny(), ""), (V{2, 3})); }

TEST(WordPiece, LowercasesAndSplitsOnWhitespaceKinds) {
  // space, tab, newline, no-break space (Zs), line separator U+2028
  EXPECT_EQ(ids(tiny(), "Hello\tWORLD\nhello\u00A0world\u2028hello"), (V{2, 5, 6, 5, 6, 5, 3}));
}

TEST(WordPiece, StripsAccentsAfterDecomposition) {
  EXPECT_EQ(ids(tiny(), "Café NAÏVE"), (V{2, 10, 27, 3}));
  // U+0130 lowercases to i + combining dot, and the dot is stripped.
  EXPECT_EQ(ids(tiny(), "\u0130"), (V{2, 17, 3}));
}

TEST(WordPiece, DropsControlAndZeroWidthCharacters) {
  // U+200B (Cf) and BEL (Cc) vanish and so join their neighbours; U+FFFD and NUL too.
  EXPECT_EQ(ids(tiny(), "hel\u200Blo wor\x07ld he\uFFFDllo"), (V{2, 5, 6, 5, 3}));
  EXPECT_EQ(ids(tiny(), std::string("hel\0lo", 6)), (V{2, 5, 3}));
  // Invalid UTF-8 becomes U+FFFD and is dropped the same way.
  EXPECT_EQ(ids(tiny(), "hel\xFFlo"), (V{2, 5, 3}));
}

TEST(WordPiece, SplitsPunctuationIntoWords) {
  EXPECT_EQ(ids(tiny(), "hello,world!"), (V{2, 5, 11, 6, 12, 3}));
  EXPECT_EQ(ids(tiny(), "love's"), (V{2, 16, 28, 29, 3}));
}

TEST(WordPiece, NamePlaceholderIsThreeWords) { EXPECT_EQ(ids(tiny(), "[NAME]"), (V{2, 13, 15, 14, 3})); }

TEST(WordPiece, SpecialTokensInTextAreKeptWhole) {
  EXPECT_EQ(ids(tiny(), "hello [SEP]world[MASK]"), (V{2, 5, 3, 6, 4, 3}));
  // Lowercase spellings are not special tokens.
  EXPECT_EQ(ids(tiny(), "[sep]"), (V{2, 13, 1, 14, 3}));
}

TEST(WordPiece, EmojiAreNotPunctuation) {
  EXPECT_EQ(ids(tiny(), "love🇨🇦"), (V{2, 1, 3}));
  EXPECT_EQ(ids(tiny(), "love 🇨🇦"), (V{2, 16, 1, 3}));
}

TEST(WordPiece, CjkIdeographsBecomeWords) { EXPECT_EQ(ids(tiny(), "a中文a"), (V{2, 22, 20, 21, 22, 3})); }

TEST(WordPiece, GreekCapitalSigmaLowercasesPerCharacter) {
  // Hugging Face lowercases one character at a time, so the final form ς never appears.
  EXPECT_EQ(ids(tiny(), "ΟΔΟΣ"), (V{2, 18, 3}));
  EXPECT_EQ(ids(tiny(), "οδος"), (V{2, 19, 3}));
}

TEST(WordPiece, WordPieceIsGreedyLongestMatch) {
  EXPECT_EQ(ids(tiny(), "unaffable"), (V{2, 7, 8, 9, 3}));
  EXPECT_EQ(ids(tiny(), "hello"), (V{2, 5, 3}));  // whole word beats hel + ##lo
  // Any part that matches nothing makes the whole word [UNK].
  EXPECT_EQ(ids(tiny(), "unaffablex hello"), (V{2, 1, 5, 3}));
}

TEST(WordPiece, WordsOver100CharactersAreUnknown) {
  V hundred{2, 22};
  hundred.insert(hundred.end(), 99, 23);
  hundred.push_back(3);
  EXPECT_EQ(ids(tiny(), std::string(100, 'a')), hundred);
  EXPECT_EQ(ids(tiny(), std::string(101, 'a')), (V{2, 1, 3}));
  // The length limit applies to each word after punctuation splitting.
  EXPECT_EQ(ids(tiny(), std::string(101, 'a') + "." + std::string(3, 'a')), (V{2, 1, 24, 22, 23, 23, 3}));
}

TEST(WordPiece, TruncatesWordPiecesFromTheEndKeepingSep) {
  const Encoding e = tiny().encode("hello world hello", 4);
  EXPECT_EQ(e.ids, (V{2, 5, 6, 3}));
  EXPECT_TRUE(e.truncated);
  EXPECT_FALSE(tiny().encode("hello world hello", 5).truncated);
  EXPECT_EQ(tiny().encode("hello", 2).ids, (V{2, 3}));
  EXPECT_THROW_MESSAGE(tiny().encode("hello", 1), std::invalid_argument, "max_length must be at least 2");
}

TEST(WordPiece, HugeTextsKeepOnlyWhatFits) {
  std::string huge;
  for (int i = 0; i < 500000; ++i) huge += "hello world ";
  const Encoding e = tiny().encode(huge, 6);
  EXPECT_EQ(e.ids, (V{2, 5, 6, 5, 6, 3}));
  EXPECT_TRUE(e.truncated);
  // Exactly max_length - 2 pieces is not truncation.
  EXPECT_FALSE(tiny().encode("hello world hello world", 6).truncated);
  EXPECT_TRUE(tiny().encode("hello world hello world [SEP]", 6).truncated);
}

TEST(WordPiece, CasedOptionsKeepCaseAndAccents) {
  WordPieceOptions o;
  o.lower_case = false;
  std::vector<std::string> v = kVocab;
  v.push_back("Café");
  WordPiece t(v, o);
  EXPECT_EQ(ids(t, "Café cafe Hello"), (V{2, 30, 10, 1, 3}));
}

TEST(WordPiece, MissingSpecialTokenIsAnError) {
  EXPECT_THROW_MESSAGE(WordPiece(std::vector<std::string>{"[PAD]", "[UNK]", "[CLS]"}, WordPieceOptions{}), std::runtime_error,
                       "is not in the vocabulary");
}

TEST(WordPiece, LoadErrorsNameThePath) {
  try {
    WordPiece::from_directory("/nonexistent/model");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model"), std::string::npos);
  }
}

TEST(WordPiece, LoadsTokenizerJsonWhenItIsTheOnlyFile) {
  const fs::path dir = fs::temp_directory_path() / "emotune_tokjson_test";
  fs::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << R"({"normalizer":{"type":"BertNormalizer","lowercase":true},
    "model":{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##",
    "max_input_chars_per_word":100,"vocab":{"[PAD]":0,"[UNK]":1,"[CLS]":2,"[SEP]":3,"hel":4,"##lo":5}}})";
  const WordPiece t = WordPiece::from_directory(dir);
  EXPECT_EQ(ids(t, "HELLO x"), (V{2, 4, 5, 1, 3}));
  fs::remove_all(dir);
}

// ---- with the real distilbert-base-uncased vocabulary from ../shared ----

namespace {
const char* shared_dir() { return std::getenv("EMOTUNE_SHARED"); }
}  // namespace

#define REQUIRE_SHARED()                                                        \
  if (!shared_dir() || !fs::exists(fs::path(shared_dir()) / "models"))         \
  GTEST_SKIP() << "EMOTUNE_SHARED not set or without models/: skipping test on shared data"

TEST(TokenizerShared, LoadsDistilbertDirectory) {
  REQUIRE_SHARED();
  const WordPiece t = WordPiece::from_directory(fs::path(shared_dir()) / "models/distilbert-base-uncased");
  EXPECT_EQ(t.vocab_size(), 30522u);
  EXPECT_EQ(t.cls_id(), 101);
  EXPECT_EQ(t.sep_id(), 102);
  EXPECT_EQ(t.unk_id(), 100);
  EXPECT_EQ(t.pad_id(), 0);
  const auto e = t.encode("Hello, World!");
  ASSERT_EQ(e.ids.size(), 6u);
  EXPECT_EQ(t.token(e.ids[1]), "hello");
  EXPECT_EQ(t.token(e.ids[2]), ",");
  EXPECT_EQ(t.token(e.ids[3]), "world");
  EXPECT_EQ(t.token(e.ids[4]), "!");
}

TEST(TokenizerShared, TokenizesEveryGoEmotionsText) {
  REQUIRE_SHARED();
  const WordPiece t = WordPiece::from_directory(fs::path(shared_dir()) / "models/distilbert-base-uncased");
  std::size_t texts = 0, unknown = 0, pieces = 0;
  for (const char* split : {"train.tsv", "dev.tsv", "test.tsv"}) {
    std::ifstream in(fs::path(shared_dir()) / "data/goemotions" / split);
    ASSERT_TRUE(in) << split;
    std::string line;
    while (std::getline(in, line)) {
      const std::string text = line.substr(0, line.find('\t'));
      const auto e = t.encode(text, 512);
      ASSERT_GE(e.ids.size(), 2u);
      ASSERT_EQ(e.ids.front(), 101);
      ASSERT_EQ(e.ids.back(), 102);
      for (auto id : e.ids) unknown += id == 100;
      pieces += e.ids.size() - 2;
      ++texts;
    }
  }
  EXPECT_EQ(texts, 54263u);
  // Reddit text: almost everything is in the vocabulary; [UNK] is mostly emoji.
  EXPECT_LT(static_cast<double>(unknown) / pieces, 0.01);
}
