// The one tokenizer interface every model family uses: UTF-8 text to the token ids the model reads,
// special tokens included, as Hugging Face's tokenizer for that model gives them. Implementations:
// WordPiece (BERT, DistilBERT; text/wordpiece.h) and byte-level BPE (RoBERTa; text/bpe.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace emotune::text {

// Where a token of an Encoding came from: code points [start, end) of the text, as Hugging Face's
// fast tokenizers give offset_mapping (byte-level tokens lose their leading space, as trim_offsets
// does). The special tokens put around the text are `special`, at {0, 0}.
struct TokenSpan {
  std::size_t start = 0, end = 0;
  bool special = false;
  bool operator==(const TokenSpan&) const = default;
};

struct Encoding {
  std::vector<std::int32_t> ids;  // with the special tokens ([CLS] ... [SEP], <s> ... </s>)
  bool truncated = false;         // tokens were dropped to fit max_length
  std::vector<TokenSpan> spans;   // one per id when a caller asked for them (token_spans); else empty
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Encodes UTF-8 text (invalid bytes count as U+FFFD); at most max_length ids (at least 2),
  // truncated from the end as transformers does with truncation=True.
  virtual Encoding encode(std::string_view utf8, std::size_t max_length = 512) const = 0;
  virtual std::size_t vocab_size() const = 0;
  virtual const std::string& token(std::int32_t id) const = 0;
  virtual std::int32_t pad_id() const = 0;
  // The mask token's id ([MASK], <mask>), when the vocabulary has one.
  virtual std::optional<std::int32_t> mask_id() const = 0;
  // One span per id of encode(utf8, max_length): slower than encode, for explanations.
  virtual std::vector<TokenSpan> token_spans(std::string_view utf8, std::size_t max_length = 512) const = 0;
  // Writes the tokenizer files transformers reads back as `tokenizer_class` (the model family's).
  virtual void save(const std::filesystem::path& dir, const std::string& tokenizer_class) const = 0;
};

using TokenizerPtr = std::shared_ptr<const Tokenizer>;

// A special token's entry in tokenizer_config.json or special_tokens_map.json: a string, or an
// AddedToken object ({"content": ...}); nullopt when absent or null; any other type throws.
std::optional<std::string> special_token_field(const nlohmann::json& j, const char* key);

// The tokenizer of a model directory: vocab.txt (WordPiece, with tokenizer_config.json), else
// tokenizer.json (WordPiece or byte-level BPE), else vocab.json + merges.txt (byte-level BPE).
TokenizerPtr load_tokenizer(const std::filesystem::path& dir);

}  // namespace emotune::text
