// The character classes and transformations of BERT's basic tokenizer, on Unicode code points.
// Tables come from utf8proc; what it lacks (Python's full lowercase mapping) is written here.
#pragma once

#include <string>

namespace emotune::text {

// Dropped by the cleaning step: U+0000, U+FFFD and category C* other than \t \n \r.
bool is_dropped_control(char32_t c);
// Mapped to a space by the cleaning step: space, \t, \n, \r and category Zs.
bool is_bert_whitespace(char32_t c);
// Where Python's str.split() also splits once cleaning is done: line/paragraph separators.
bool is_split_separator(char32_t c);
// Category P* or ASCII punctuation/symbols (33-47, 58-64, 91-96, 123-126).
bool is_bert_punctuation(char32_t c);
// CJK Unified Ideographs blocks, their extensions and compatibility blocks.
bool is_cjk_ideograph(char32_t c);
// Category Mn (nonspacing mark), the marks that accent stripping removes.
bool is_nonspacing_mark(char32_t c);

// The classes of the GPT-2/RoBERTa pre-tokenization pattern: \p{L} (Lu Ll Lt Lm Lo), \p{N} (Nd Nl No),
// and \s as Oniguruma and Rust read it (the Unicode White_Space property).
bool is_letter(char32_t c);
bool is_number(char32_t c);
bool is_unicode_whitespace(char32_t c);

// Appends Python's `ch.lower()` for a single character (U+0130 lowercases to two code points).
void append_lower(char32_t c, std::u32string& out);
// Python's `unicodedata.normalize("NFD", s)`.
std::u32string decompose(const std::u32string& word);
// Python's `unicodedata.normalize("NFD", s)` with every Mn character removed.
std::u32string strip_accents(const std::u32string& word);
// Python's `unicodedata.normalize("NFC", s)`.
std::u32string nfc(const std::u32string& word);

}  // namespace emotune::text
