// Byte-level BPE encoding of arbitrary bytes: every byte's stand-in, a few merges and RoBERTa's added
// tokens (<mask> with lstrip), at any max_length; each token's span lies in the text, one per id.
#include <cstdint>
#include <string_view>

#include "spans.h"
#include "text/bpe.h"

using emotune::text::ByteLevelBpe;

namespace {

ByteLevelBpe make() {
  std::unordered_map<std::string, std::int32_t> vocab{{"<s>", 0}, {"<pad>", 1}, {"</s>", 2}, {"<unk>", 3}};
  auto add = [&](const std::string& t) { vocab.emplace(t, static_cast<std::int32_t>(vocab.size())); };
  for (int b = 0; b < 256; ++b) add(emotune::text::byte_stand_in(static_cast<unsigned char>(b)));
  const std::vector<std::pair<std::string, std::string>> merges{
      {"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}, {"a", "a"}, {"aa", "aa"}, {"l", "l"}, {"'", "s"}, {"Ġ", "Ġ"}};
  for (const auto& [a, b] : merges) add(a + b);
  const auto mask = static_cast<std::int32_t>(vocab.size());
  vocab.emplace("<mask>", mask);
  emotune::text::BpeOptions o;
  o.added = {{"<s>", 0}, {"<pad>", 1}, {"</s>", 2}, {"<unk>", 3}, {"<mask>", mask, true, false}};
  o.prefix = {0};
  o.suffix = {2};
  return ByteLevelBpe(vocab, merges, o);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  static const ByteLevelBpe bpe = make();
  if (size == 0) return 0;
  const std::size_t max_length = 2 + data[0] % 64;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const auto e = bpe.encode(text, max_length);
  if (e.ids.size() > max_length || e.ids.size() < 2 || e.ids.front() != 0 || e.ids.back() != 2) __builtin_trap();
  for (auto id : e.ids)
    if (id < 0 || static_cast<std::size_t>(id) >= bpe.vocab_size()) __builtin_trap();
  check_spans(text, bpe.token_spans(text, max_length), e.ids.size());
  return 0;
}
