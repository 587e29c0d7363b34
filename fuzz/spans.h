// What every tokenizer's spans must satisfy, whatever the bytes: one per id, the special tokens
// around the text first and last, and each within the text (an invalid byte counting as one U+FFFD,
// as decoding does).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "text/tokenizer.h"
#include "text/utf8.h"

inline void check_spans(std::string_view text, const std::vector<emotune::text::TokenSpan>& spans, std::size_t ids) {
  std::u32string decoded;
  emotune::text::decode_utf8(text, decoded);
  if (spans.size() != ids || !spans.front().special || !spans.back().special) __builtin_trap();
  for (const auto& s : spans)
    if (s.start > s.end || s.end > decoded.size()) __builtin_trap();
}
