// BERT WordPiece tokenizer with the token ids of Hugging Face's BertTokenizer:
// clean -> CJK spacing -> whitespace split -> lowercase/strip accents -> punctuation split
// -> greedy longest-match WordPiece -> [CLS] ... [SEP], truncated to a maximum length.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <vector>

#include "text/tokenizer.h"

namespace emotune::text {

// A token matched whole in the text before word splitting (tokenizers' added_tokens; transformers'
// added_tokens_decoder), beyond the five special roles below. `normalized` ones match the text as
// normalized: with lower_case, whatever the case of its ASCII letters (MPNet's "<unk>").
struct WordPieceAddedToken {
  std::string content;
  bool normalized = false;
  bool lstrip = false;
  bool rstrip = false;
};

struct WordPieceOptions {
  bool lower_case = true;
  // Hugging Face's `strip_accents`: unset means "follow lower_case".
  std::optional<bool> strip_accents;
  bool tokenize_chinese_chars = true;
  std::size_t max_input_chars_per_word = 100;
  std::string unk_token = "[UNK]";
  std::string cls_token = "[CLS]";
  std::string sep_token = "[SEP]";
  std::string pad_token = "[PAD]";
  std::string mask_token = "[MASK]";
  std::vector<WordPieceAddedToken> added;
  // Whether the five roles above are matched whole in the text too (transformers' tokenizers built
  // from vocab.txt); tokenizer.json matches its added_tokens only.
  bool roles_matched_whole = true;
};

class WordPiece : public Tokenizer {
 public:
  // vocab: token strings in id order.
  WordPiece(std::vector<std::string> vocab, WordPieceOptions options);

  // A model directory: vocab.txt (+ tokenizer_config.json / special_tokens_map.json),
  // or tokenizer.json with a WordPiece model when that is the only tokenizer file.
  static WordPiece from_directory(const std::filesystem::path& dir);
  // A bare vocab.txt with the uncased defaults.
  static WordPiece from_vocab_file(const std::filesystem::path& vocab_txt, WordPieceOptions options = {});
  // tokenizer.json (already parsed) with a WordPiece model and a BertNormalizer.
  static WordPiece from_tokenizer_json(const std::filesystem::path& path, const nlohmann::json& j);

  // Invalid bytes count as U+FFFD (and are then dropped by cleaning); max_length counts [CLS] and [SEP].
  Encoding encode(std::string_view utf8, std::size_t max_length = 512) const override;
  std::vector<TokenSpan> token_spans(std::string_view utf8, std::size_t max_length = 512) const override;
  // vocab.txt, tokenizer_config.json, special_tokens_map.json.
  void save(const std::filesystem::path& dir, const std::string& tokenizer_class) const override;
  // Word pieces of text without special tokens or truncation, appended to `ids`. Stops early once
  // `ids` holds `limit` entries, so that a huge text costs no more than the part that is kept.
  void tokenize_into(std::u32string_view text, std::vector<std::int32_t>& ids,
                     std::size_t limit = static_cast<std::size_t>(-1)) const;

  const std::string& token(std::int32_t id) const override { return vocab_.at(static_cast<std::size_t>(id)); }
  std::size_t vocab_size() const override { return vocab_.size(); }
  std::int32_t cls_id() const { return cls_id_; }
  std::int32_t sep_id() const { return sep_id_; }
  std::int32_t pad_id() const override { return pad_id_; }
  std::optional<std::int32_t> mask_id() const override;
  std::int32_t unk_id() const { return unk_id_; }
  const WordPieceOptions& options() const { return options_; }
  const std::vector<std::string>& vocab() const { return vocab_; }

 private:
  struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  using PieceMap = std::unordered_map<std::string, std::int32_t, StringHash, std::equal_to<>>;

  // Where tokens come from while encoding (token_spans): the code point of the text each character
  // being tokenized came from, and the spans found so far (null: not wanted, as in encode).
  struct SpanTrace {
    std::vector<TokenSpan>& spans;
    std::vector<std::size_t> word_origin;  // per character of the word being collected
  };
  std::int32_t require_id(const std::string& token, const char* role) const;
  Encoding encode_traced(std::string_view utf8, std::size_t max_length, SpanTrace* trace) const;
  void tokenize_traced(std::u32string_view text, std::vector<std::int32_t>& ids, std::size_t limit,
                       SpanTrace* trace) const;
  void basic_tokenize_piece(std::u32string_view text, std::size_t offset, std::vector<std::int32_t>& ids,
                            std::size_t limit, SpanTrace* trace) const;
  void word_piece(const std::u32string& word, std::vector<std::int32_t>& ids, SpanTrace* trace) const;
  bool strips_accents() const { return options_.strip_accents.value_or(options_.lower_case); }

  std::vector<std::string> vocab_;
  WordPieceOptions options_;
  PieceMap word_start_;    // pieces that may begin a word
  PieceMap continuation_;  // "##x" pieces, keyed without the prefix
  std::size_t max_piece_chars_ = 1;
  struct WholeToken {
    std::u32string cps;  // lowercase ASCII when `folded`
    std::int32_t id;
    bool folded;  // matched whatever the case of the text's ASCII letters
    bool matches(std::u32string_view text, std::size_t at) const;
  };
  std::vector<WholeToken> special_tokens_;  // matched whole in the text
  std::int32_t cls_id_ = 0, sep_id_ = 0, pad_id_ = 0, unk_id_ = 0;
};

}  // namespace emotune::text
