#include <gtest/gtest.h>

#include "text/utf8.h"

using namespace emotune::text;

TEST(Utf8, DecodesValidSequencesOfEveryLength) {
  std::u32string out;
  EXPECT_EQ(decode_utf8("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", out), 0u);
  EXPECT_EQ(out, (std::u32string{U'a', 0xE9, 0x20AC, 0x1F600}));
  EXPECT_EQ(encode_utf8(out), "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80");
}

TEST(Utf8, ReplacesMaximalInvalidSubpartsLikePython) {
  std::u32string out;
  // lone continuation, truncated 3-byte sequence, surrogate (ED A0 80 = three replacements), overlong.
  EXPECT_EQ(decode_utf8("\x80x\xE2\x82y\xED\xA0\x80\xC0\xAF", out), 1u + 1u + 3u + 2u);
  EXPECT_EQ(out, (std::u32string{0xFFFD, U'x', 0xFFFD, U'y', 0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD, 0xFFFD}));
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // past U+10FFFF
  EXPECT_TRUE(is_valid_utf8("\xF4\x8F\xBF\xBF"));
  EXPECT_FALSE(is_valid_utf8("abc\xE2"));
}
