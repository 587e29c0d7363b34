// UTF-8 decoding and encoding. Invalid input never stops a run: each maximal invalid
// subsequence becomes U+FFFD, as Python's bytes.decode("utf-8", "replace") does.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace emotune::text {

inline constexpr char32_t kReplacementChar = 0xFFFD;

// Appends the code points of `bytes` to `out`; returns how many U+FFFD replacements were made.
std::size_t decode_utf8(std::string_view bytes, std::u32string& out);

// True when `bytes` is well-formed UTF-8 (no overlongs, surrogates or values past U+10FFFF).
bool is_valid_utf8(std::string_view bytes);

// Code points in well-formed UTF-8 (bytes that are not continuation bytes).
std::size_t count_code_points(std::string_view bytes);

void append_utf8(char32_t cp, std::string& out);
std::string encode_utf8(std::u32string_view cps);

}  // namespace emotune::text
