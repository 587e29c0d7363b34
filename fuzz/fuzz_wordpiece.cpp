// WordPiece encoding of arbitrary bytes, uncased and cased, at any max_length; each token's span lies
// in the text, one per id.
#include <cstdint>
#include <string_view>

#include "spans.h"
#include "text/wordpiece.h"

using emotune::text::WordPiece;
using emotune::text::WordPieceOptions;

namespace {

WordPiece make(bool lower) {
  WordPieceOptions o;
  o.lower_case = lower;
  return WordPiece({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "##a", "##b", "ab", "é", "中", "!", ",",
                    "##é", "hello", "world", "##s", "x", "##x"},
                   o);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  static const WordPiece uncased = make(true), cased = make(false);
  if (size == 0) return 0;
  const std::size_t max_length = 2 + data[0] % 64;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  for (const WordPiece* t : {&uncased, &cased}) {
    const auto e = t->encode(text, max_length);
    if (e.ids.size() > max_length || e.ids.size() < 2) __builtin_trap();
    for (auto id : e.ids)
      if (id < 0 || static_cast<std::size_t>(id) >= t->vocab_size()) __builtin_trap();
    check_spans(text, t->token_spans(text, max_length), e.ids.size());
  }
  return 0;
}
