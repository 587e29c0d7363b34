// Byte-level BPE with the token ids of Hugging Face's `tokenizers` for GPT-2-style vocabularies
// (RoBERTa and its fine-tunes): added tokens split out first (with lstrip/rstrip), then the GPT-2
// pre-tokenization pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// then each piece's UTF-8 bytes through the byte-to-unicode map and the merges in rank order, then
// the post-processor's special tokens (<s> A </s>).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "text/tokenizer.h"

namespace emotune::text {

// A token matched verbatim in the text before pre-tokenization (tokenizers' AddedToken).
struct AddedToken {
  std::string content;
  std::int32_t id = 0;
  bool lstrip = false;  // the match swallows whitespace on its left
  bool rstrip = false;  // and on its right
  bool special = true;
};

struct BpeOptions {
  bool add_prefix_space = false;
  std::vector<AddedToken> added;
  // Post-processor: ids around the text ({cls} A {sep}); empty adds nothing.
  std::vector<std::int32_t> prefix, suffix;
  std::string bos_token = "<s>", eos_token = "</s>", unk_token = "<unk>", pad_token = "<pad>", mask_token = "<mask>";
};

// GPT-2's printable stand-in for byte `b`, the character byte-level vocabularies spell it with
// (printable Latin-1 bytes stand for themselves; the others take U+0100 on, in byte order).
const std::string& byte_stand_in(unsigned char b);

class ByteLevelBpe : public Tokenizer {
 public:
  // vocab: token -> id (ids need not be contiguous); merges in rank order, as pairs of tokens.
  ByteLevelBpe(const std::unordered_map<std::string, std::int32_t>& vocab,
               const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options);

  // tokenizer.json (already parsed) with a BPE model and a ByteLevel pre-tokenizer; the special
  // tokens' roles (pad, mask, ...) come from the tokenizer_config.json beside it.
  static ByteLevelBpe from_tokenizer_json(const std::filesystem::path& path, const nlohmann::json& j);
  // vocab.json + merges.txt, with tokenizer_config.json / special_tokens_map.json when present
  // (RobertaTokenizer's defaults otherwise: <s> A </s>, <mask> with lstrip).
  static ByteLevelBpe from_vocab_and_merges(const std::filesystem::path& dir);

  Encoding encode(std::string_view utf8, std::size_t max_length = 512) const override;
  // Offsets trimmed of the tokens' leading and trailing spaces, as trim_offsets (RoBERTa's default).
  std::vector<TokenSpan> token_spans(std::string_view utf8, std::size_t max_length = 512) const override;
  // Token ids of the text without the post-processor's tokens; stops once `ids` holds `limit`.
  void tokenize_into(std::string_view utf8, std::vector<std::int32_t>& ids,
                     std::size_t limit = static_cast<std::size_t>(-1)) const;
  std::size_t vocab_size() const override { return tokens_.size(); }
  const std::string& token(std::int32_t id) const override { return tokens_.at(static_cast<std::size_t>(id)); }
  std::int32_t pad_id() const override { return pad_id_; }
  std::optional<std::int32_t> mask_id() const override;
  // vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json.
  void save(const std::filesystem::path& dir, const std::string& tokenizer_class) const override;

 private:
  struct Merge {
    std::int32_t rank, merged;
  };
  Encoding encode_traced(std::string_view utf8, std::size_t max_length, std::vector<TokenSpan>* spans) const;
  void tokenize_traced(std::string_view utf8, std::vector<std::int32_t>& ids, std::size_t limit,
                       std::vector<TokenSpan>* spans) const;
  // `offset`: where `text` starts in the whole text; spans (when wanted) are appended beside the ids.
  void pre_tokenized_into(std::u32string_view text, std::size_t offset, std::vector<std::int32_t>& ids,
                          std::size_t limit, std::vector<TokenSpan>* spans) const;
  // byte_ranges (when wanted) gets the piece's bytes [first, last) behind each id.
  void bpe_into(std::string_view piece, std::vector<std::int32_t>& ids,
                std::vector<std::pair<std::size_t, std::size_t>>* byte_ranges) const;
  const Merge* find_merge(std::int32_t a, std::int32_t b) const;
  // A piece's merged tokens, remembered: the same words come back all the time and merging is most
  // of the work. Shared by copies of this tokenizer (same vocabulary), safe from several threads.
  struct WordCache;
  std::shared_ptr<WordCache> cache_;

  std::vector<std::string> tokens_;  // by id ("" where an id is unused)
  std::unordered_map<std::string, std::int32_t> ids_;
  std::unordered_map<std::uint64_t, Merge> merges_;
  std::vector<std::pair<std::string, std::string>> merge_list_;  // for saving
  std::int32_t byte_ids_[256];  // the vocabulary id of each byte's unicode stand-in; -1 when missing
  BpeOptions options_;
  std::vector<std::pair<std::u32string, AddedToken>> added_;  // longest first
  std::int32_t pad_id_ = 0, unk_id_ = -1;
};

}  // namespace emotune::text
