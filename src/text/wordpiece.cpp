#include "text/wordpiece.h"

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "text/unicode.h"
#include "text/utf8.h"
#include "util/atomic_file.h"
#include "util/errors.h"
#include "util/json_file.h"

namespace emotune::text {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string read_file(const fs::path& path) { return util::read_small_file(path, std::size_t{256} << 20); }

json read_json(const fs::path& path) { return util::read_json_file(path); }

// Runs `read` over the JSON of `path`; a field of the wrong type throws naming the file.
template <typename Fn>
auto reading(const fs::path& path, Fn read) {
  const json j = read_json(path);
  try {
    return read(j);
  } catch (const json::exception& e) {
    throw std::runtime_error(path.string() + ": a field has the wrong type (" + e.what() + ")");
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(path.string() + ": " + e.what());
  }
}

void apply_special_tokens(const json& j, WordPieceOptions& o) {
  if (auto t = special_token_field(j, "unk_token")) o.unk_token = *t;
  if (auto t = special_token_field(j, "cls_token")) o.cls_token = *t;
  if (auto t = special_token_field(j, "sep_token")) o.sep_token = *t;
  if (auto t = special_token_field(j, "pad_token")) o.pad_token = *t;
  if (auto t = special_token_field(j, "mask_token")) o.mask_token = *t;
}

}  // namespace

WordPiece::WordPiece(std::vector<std::string> vocab, WordPieceOptions options)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  if (vocab_.empty()) throw std::runtime_error("empty vocabulary");
  for (std::size_t id = 0; id < vocab_.size(); ++id) {
    const std::string& t = vocab_[id];
    const auto i = static_cast<std::int32_t>(id);
    // Python's dict keeps the last index of a repeated token; so do we.
    word_start_[t] = i;
    max_piece_chars_ = std::max(max_piece_chars_, count_code_points(t));
    if (t.size() > 2 && t.compare(0, 2, "##") == 0) continuation_[t.substr(2)] = i;
  }
  unk_id_ = require_id(options_.unk_token, "unk_token");
  cls_id_ = require_id(options_.cls_token, "cls_token");
  sep_id_ = require_id(options_.sep_token, "sep_token");
  pad_id_ = require_id(options_.pad_token, "pad_token");
  auto whole = [&](const std::string& t, bool normalized) {
    auto it = word_start_.find(t);
    if (it == word_start_.end() || t.empty()) return;
    for (const auto& w : special_tokens_)
      if (w.id == it->second) return;
    std::u32string cps;
    decode_utf8(t, cps);
    const bool folded = normalized && options_.lower_case;
    if (folded)
      for (auto& c : cps) c = c < 128 ? static_cast<char32_t>(std::tolower(static_cast<int>(c))) : c;
    special_tokens_.push_back({std::move(cps), it->second, folded});
  };
  if (options_.roles_matched_whole)
    for (const std::string* t : {&options_.unk_token, &options_.sep_token, &options_.pad_token, &options_.cls_token,
                                 &options_.mask_token})
      whole(*t, false);
  for (const auto& a : options_.added) whole(a.content, a.normalized);
  // Longest first, so that one special token that prefixes another never wins early.
  std::stable_sort(special_tokens_.begin(), special_tokens_.end(),
                   [](const auto& a, const auto& b) { return a.cps.size() > b.cps.size(); });
}

std::int32_t WordPiece::require_id(const std::string& token, const char* role) const {
  auto it = word_start_.find(token);
  if (it == word_start_.end()) throw std::runtime_error(std::string(role) + " '" + token + "' is not in the vocabulary");
  return it->second;
}

WordPiece WordPiece::from_vocab_file(const fs::path& vocab_txt, WordPieceOptions options) {
  if (!fs::is_regular_file(vocab_txt)) throw NotFoundError("vocabulary file not found: " + vocab_txt.string());
  const std::string text = read_file(vocab_txt);
  if (!is_valid_utf8(text)) throw std::runtime_error("vocabulary file is not valid UTF-8: " + vocab_txt.string());
  std::vector<std::string> vocab;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string token = text.substr(start, end - start);
    // Python reads the file in text mode, so "\r\n" line ends are one newline.
    if (!token.empty() && token.back() == '\r') token.pop_back();
    vocab.push_back(std::move(token));
    start = end + 1;
  }
  try {
    return WordPiece(std::move(vocab), std::move(options));
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(vocab_txt.string() + ": " + e.what());
  }
}

namespace {

// The tokens the post-processor puts around the text: [CLS] A [SEP] (BertProcessing), <s> A </s>
// (RobertaProcessing, MPNet's), or a TemplateProcessing with one special token on each side.
void read_wordpiece_post_processor(const json& post, WordPieceOptions& o) {
  if (!post.is_object()) return;
  const std::string type = post.value("type", "");
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    o.cls_token = post.at("cls").at(0).get<std::string>();
    o.sep_token = post.at("sep").at(0).get<std::string>();
  } else if (type == "TemplateProcessing") {
    const json& single = post.at("single");
    if (!single.is_array() || single.size() != 3 || !single[0].contains("SpecialToken") ||
        !single[1].contains("Sequence") || !single[2].contains("SpecialToken"))
      throw std::runtime_error("post_processor: only templates of one special token, the text, one special token are supported");
    o.cls_token = single[0].at("SpecialToken").at("id").get<std::string>();
    o.sep_token = single[2].at("SpecialToken").at("id").get<std::string>();
  } else {
    throw std::runtime_error("post_processor '" + type + "' is not supported (BertProcessing, RobertaProcessing, TemplateProcessing)");
  }
}

// tokenizer.json's added_tokens (content, normalized, lstrip, rstrip).
std::vector<WordPieceAddedToken> added_tokens_of(const json& j) {
  std::vector<WordPieceAddedToken> added;
  const json tokens = j.value("added_tokens", json::array());
  if (!tokens.is_array()) throw std::runtime_error("added_tokens must be a list");
  for (const json& a : tokens) {
    if (a.value("single_word", false)) throw std::runtime_error("single_word added tokens are not supported");
    added.push_back({a.at("content").get<std::string>(), a.value("normalized", false), a.value("lstrip", false),
                     a.value("rstrip", false)});
  }
  return added;
}

// tokenizer_config.json's added_tokens_decoder ({"id": {"content", "normalized", ...}}), as
// transformers writes it.
std::vector<WordPieceAddedToken> added_tokens_decoder_of(const json& cfg) {
  std::vector<WordPieceAddedToken> added;
  const json decoder = cfg.value("added_tokens_decoder", json::object());
  if (!decoder.is_object()) throw std::runtime_error("added_tokens_decoder must be an object");
  for (const auto& [id, a] : decoder.items())
    added.push_back({a.at("content").get<std::string>(), a.value("normalized", false), a.value("lstrip", false),
                     a.value("rstrip", false)});
  return added;
}

WordPiece wordpiece_from_tokenizer_json(const fs::path& path, const json& j) {
  const json model = j.value("model", json::object());
  // Older files name no type (load_tokenizer took it for WordPiece: it has no merges).
  if (model.value("type", "WordPiece") != "WordPiece")
    throw std::runtime_error(path.string() + ": only WordPiece tokenizers are supported");
  if (model.value("continuing_subword_prefix", "##") != "##")
    throw std::runtime_error(path.string() + ": continuing_subword_prefix must be \"##\"");
  if (!model.contains("vocab") || !model.at("vocab").is_object())
    throw std::runtime_error(path.string() + ": model.vocab missing");

  std::vector<std::string> vocab(model.at("vocab").size());
  for (const auto& [token, id] : model.at("vocab").items()) {
    if (!id.is_number_integer() || id.get<std::int64_t>() < 0 || id.get<std::size_t>() >= vocab.size())
      throw std::runtime_error(path.string() + ": vocab id of '" + token + "' out of range");
    vocab[id.get<std::size_t>()] = token;
  }

  WordPieceOptions o;
  o.unk_token = model.value("unk_token", o.unk_token);
  if (model.contains("max_input_chars_per_word")) {
    if (!model.at("max_input_chars_per_word").is_number_unsigned())
      throw std::runtime_error(path.string() + ": max_input_chars_per_word must be a non-negative integer");
    o.max_input_chars_per_word = model.at("max_input_chars_per_word").get<std::size_t>();
  }
  read_wordpiece_post_processor(j.value("post_processor", json()), o);
  o.added = added_tokens_of(j);
  o.roles_matched_whole = false;
  // Padding and mask roles, which tokenizer.json names only by its padding settings and added tokens.
  const json padding = j.value("padding", json());
  if (padding.is_object() && padding.contains("pad_token") && padding.at("pad_token").is_string())
    o.pad_token = padding.at("pad_token").get<std::string>();
  for (const auto& a : o.added) {
    if (a.content == "<mask>" || a.content == "[MASK]") o.mask_token = a.content;
    if (!padding.is_object() && (a.content == "<pad>" || a.content == "[PAD]")) o.pad_token = a.content;
  }
  const json normalizer = j.value("normalizer", json::object());
  if (normalizer.is_object() && normalizer.value("type", "") == "BertNormalizer") {
    o.lower_case = normalizer.value("lowercase", true);
    o.tokenize_chinese_chars = normalizer.value("handle_chinese_chars", true);
    if (normalizer.contains("strip_accents") && normalizer.at("strip_accents").is_boolean())
      o.strip_accents = normalizer.at("strip_accents").get<bool>();
  }
  try {
    return WordPiece(std::move(vocab), std::move(o));
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(path.string() + ": " + e.what());
  }
}

}  // namespace

WordPiece WordPiece::from_tokenizer_json(const fs::path& path, const json& j) {
  try {
    return wordpiece_from_tokenizer_json(path, j);
  } catch (const json::exception& e) {
    throw std::runtime_error(path.string() + ": a field has the wrong type (" + e.what() + ")");
  }
}

WordPiece WordPiece::from_directory(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw NotFoundError("model directory not found: " + dir.string());
  const fs::path vocab = dir / "vocab.txt";
  if (!fs::exists(vocab)) {
    if (fs::exists(dir / "tokenizer.json")) return from_tokenizer_json(dir / "tokenizer.json", read_json(dir / "tokenizer.json"));
    throw std::runtime_error("no vocab.txt or tokenizer.json in " + dir.string());
  }
  WordPieceOptions o;
  if (fs::exists(dir / "tokenizer_config.json"))
    reading(dir / "tokenizer_config.json", [&](const json& cfg) {
      o.lower_case = cfg.value("do_lower_case", true);
      o.tokenize_chinese_chars = cfg.value("tokenize_chinese_chars", true);
      if (cfg.contains("strip_accents") && cfg.at("strip_accents").is_boolean())
        o.strip_accents = cfg.at("strip_accents").get<bool>();
      apply_special_tokens(cfg, o);
      o.added = added_tokens_decoder_of(cfg);
      return 0;
    });
  // transformers takes a tokenizer's added tokens from tokenizer.json when the folder has one, even
  // for the Python tokenizer built from vocab.txt.
  if (fs::exists(dir / "tokenizer.json"))
    reading(dir / "tokenizer.json", [&](const json& j) {
      o.added = added_tokens_of(j);
      return 0;
    });
  if (fs::exists(dir / "special_tokens_map.json"))
    reading(dir / "special_tokens_map.json", [&](const json& j) {
      apply_special_tokens(j, o);
      return 0;
    });
  return from_vocab_file(vocab, std::move(o));
}

Encoding WordPiece::encode(std::string_view utf8, std::size_t max_length) const {
  return encode_traced(utf8, max_length, nullptr);
}

std::vector<TokenSpan> WordPiece::token_spans(std::string_view utf8, std::size_t max_length) const {
  std::vector<TokenSpan> spans;
  SpanTrace trace{spans, {}};
  encode_traced(utf8, max_length, &trace);
  return spans;
}

std::optional<std::int32_t> WordPiece::mask_id() const {
  const auto it = word_start_.find(options_.mask_token);
  if (it == word_start_.end()) return std::nullopt;
  return it->second;
}

Encoding WordPiece::encode_traced(std::string_view utf8, std::size_t max_length, SpanTrace* trace) const {
  if (max_length < 2) throw std::invalid_argument("max_length must be at least 2 ([CLS] and [SEP])");
  std::u32string text;
  text.reserve(utf8.size());
  decode_utf8(utf8, text);
  Encoding enc;
  enc.ids.reserve(text.size() / 3 + 2);
  enc.ids.push_back(cls_id_);
  if (trace) trace->spans.push_back({0, 0, true});
  tokenize_traced(text, enc.ids, max_length, trace);
  if (enc.ids.size() > max_length - 1) {
    enc.ids.resize(max_length - 1);
    if (trace) trace->spans.resize(max_length - 1);
    enc.truncated = true;
  }
  enc.ids.push_back(sep_id_);
  if (trace) trace->spans.push_back({0, 0, true});
  return enc;
}

bool WordPiece::WholeToken::matches(std::u32string_view text, std::size_t at) const {
  if (text.size() - at < cps.size()) return false;
  for (std::size_t k = 0; k < cps.size(); ++k) {
    char32_t c = text[at + k];
    if (folded && c < 128) c = static_cast<char32_t>(std::tolower(static_cast<int>(c)));
    if (c != cps[k]) return false;
  }
  return true;
}

void WordPiece::tokenize_into(std::u32string_view text, std::vector<std::int32_t>& ids, std::size_t limit) const {
  tokenize_traced(text, ids, limit, nullptr);
}

void WordPiece::tokenize_traced(std::u32string_view text, std::vector<std::int32_t>& ids, std::size_t limit,
                                SpanTrace* trace) const {
  // Special tokens written in the text are kept whole, as Hugging Face's added-token trie does.
  std::size_t piece_start = 0;
  for (std::size_t i = 0; i < text.size() && ids.size() < limit; ++i) {
    for (const auto& special : special_tokens_) {
      if (special.matches(text, i)) {
        basic_tokenize_piece(text.substr(piece_start, i - piece_start), piece_start, ids, limit, trace);
        ids.push_back(special.id);
        if (trace) trace->spans.push_back({i, i + special.cps.size()});
        i += special.cps.size() - 1;
        piece_start = i + 1;
        break;
      }
    }
  }
  if (ids.size() < limit && piece_start < text.size())
    basic_tokenize_piece(text.substr(piece_start), piece_start, ids, limit, trace);
}

void WordPiece::basic_tokenize_piece(std::u32string_view text, std::size_t offset, std::vector<std::int32_t>& ids,
                                     std::size_t limit, SpanTrace* trace) const {
  std::u32string word;
  std::u32string lowered;
  auto flush = [&] {
    if (!word.empty()) word_piece(word, ids, trace);
    word.clear();
    if (trace) trace->word_origin.clear();
  };
  auto keep = [&](char32_t c, std::size_t at) {
    word.push_back(c);
    if (trace) trace->word_origin.push_back(offset + at);
  };
  for (std::size_t at = 0; at < text.size(); ++at) {
    if (ids.size() >= limit) return;
    const char32_t original = text[at];
    lowered.clear();
    // Hugging Face lowercases the text one character at a time before anything else, so a
    // Greek capital sigma always becomes σ (never the final form ς).
    if (options_.lower_case)
      append_lower(original, lowered);
    else
      lowered.push_back(original);
    for (char32_t c : lowered) {
      if (is_bert_whitespace(c) || is_split_separator(c)) {
        flush();
      } else if (is_dropped_control(c)) {
        continue;
      } else if (options_.tokenize_chinese_chars && is_cjk_ideograph(c)) {
        flush();
        keep(c, at);
        flush();
      } else {
        keep(c, at);
      }
    }
  }
  flush();
}

namespace {

// The text's code points [start, end) behind each character of a normalized word, from where each
// raw character came from (`origin`), with the alignment Hugging Face's normalizers keep: decomposing
// character by character, canonical reordering moving characters but not their places in the text,
// accents dropped. Where composition (NFC) changes the word, every character is given the whole word.
std::vector<TokenSpan> normalized_origin(const std::u32string& raw, const std::u32string& word,
                                         const std::vector<std::size_t>& origin, bool strips) {
  std::vector<TokenSpan> from;
  from.reserve(word.size());
  if (raw == word) {
    for (std::size_t o : origin) from.push_back({o, o + 1});
    return from;
  }
  if (strips) {
    std::vector<std::size_t> place;  // per character of the decomposed word
    for (std::size_t k = 0; k < raw.size(); ++k) place.insert(place.end(), decompose(std::u32string(1, raw[k])).size(), origin[k]);
    const std::u32string decomposed = decompose(raw);
    for (std::size_t j = 0; j < decomposed.size() && j < place.size(); ++j)
      if (!is_nonspacing_mark(decomposed[j])) from.push_back({place[j], place[j] + 1});
  }
  if (from.size() != word.size()) from.assign(word.size(), TokenSpan{origin.front(), origin.back() + 1});
  return from;
}

}  // namespace

void WordPiece::word_piece(const std::u32string& raw_word, std::vector<std::int32_t>& ids, SpanTrace* trace) const {
  const bool ascii = std::all_of(raw_word.begin(), raw_word.end(), [](char32_t c) { return c < 0x80; });
  const std::u32string word = ascii ? raw_word : (strips_accents() ? strip_accents(raw_word) : nfc(raw_word));
  std::vector<TokenSpan> from;
  if (trace) from = normalized_origin(raw_word, word, trace->word_origin, strips_accents());
  auto spanning = [&](std::size_t first, std::size_t last) {  // normalized characters [first, last)
    if (trace) trace->spans.push_back({from[first].start, from[last - 1].end});
  };

  // Punctuation characters become words of their own; every word then goes through WordPiece.
  std::size_t i = 0;
  std::string bytes;
  std::vector<std::size_t> offsets;  // byte offset of each code point, plus the end
  while (i < word.size()) {
    std::size_t end = i + 1;
    if (!is_bert_punctuation(word[i]))
      while (end < word.size() && !is_bert_punctuation(word[end])) ++end;
    const std::size_t n = end - i;
    if (n > options_.max_input_chars_per_word) {
      ids.push_back(unk_id_);
      spanning(i, end);
      i = end;
      continue;
    }
    bytes.clear();
    offsets.clear();
    for (std::size_t k = i; k < end; ++k) {
      offsets.push_back(bytes.size());
      append_utf8(word[k], bytes);
    }
    offsets.push_back(bytes.size());

    const std::size_t mark = ids.size();
    std::size_t start = 0;
    while (start < n) {
      const PieceMap& pieces = start == 0 ? word_start_ : continuation_;
      std::size_t stop = std::min(n, start + max_piece_chars_);
      std::int32_t found = -1;
      for (; stop > start; --stop) {
        auto it = pieces.find(std::string_view(bytes).substr(offsets[start], offsets[stop] - offsets[start]));
        if (it != pieces.end()) {
          found = it->second;
          break;
        }
      }
      if (found < 0) {
        // One part matches nothing: the whole word is unknown.
        ids.resize(mark);
        ids.push_back(unk_id_);
        if (trace) {
          trace->spans.resize(mark);
          spanning(i, end);
        }
        break;
      }
      ids.push_back(found);
      spanning(i + start, i + stop);
      start = stop;
    }
    i = end;
  }
}

namespace {

json special_tokens_json(const WordPieceOptions& o) {
  auto tok = [](const std::string& s) {
    return json{{"content", s}, {"lstrip", false}, {"normalized", false}, {"rstrip", false}, {"single_word", false}};
  };
  return json{{"cls_token", tok(o.cls_token)},   {"mask_token", tok(o.mask_token)}, {"pad_token", tok(o.pad_token)},
              {"sep_token", tok(o.sep_token)},   {"unk_token", tok(o.unk_token)}};
}

// The tokenizer class is the family's: DistilBERT's takes no token_type_ids, so a BertTokenizer
// there would hand DistilBERT an input it refuses (transformers' pipeline() does).
json tokenizer_config_json(const WordPieceOptions& o, const std::string& tokenizer_class,
                           const json& added_tokens_decoder) {
  return json{{"tokenizer_class", tokenizer_class},
              {"added_tokens_decoder", added_tokens_decoder},
              {"do_lower_case", o.lower_case},
              {"do_basic_tokenize", true},
              {"tokenize_chinese_chars", o.tokenize_chinese_chars},
              {"strip_accents", o.strip_accents ? json(*o.strip_accents) : json(nullptr)},
              {"model_max_length", 512},
              {"cls_token", o.cls_token},
              {"sep_token", o.sep_token},
              {"pad_token", o.pad_token},
              {"unk_token", o.unk_token},
              {"mask_token", o.mask_token},
              {"clean_up_tokenization_spaces", true}};
}

}  // namespace

void WordPiece::save(const fs::path& dir, const std::string& tokenizer_class) const {
  std::string vocab;
  for (const auto& t : vocab_) vocab += t + "\n";
  util::write_text_atomically(dir / "vocab.txt", vocab);
  // The tokens matched whole, as transformers reads them back (so "<unk>" stays one token there too).
  json decoder = json::object();
  for (const auto& a : options_.added)
    if (auto it = word_start_.find(a.content); it != word_start_.end())
      decoder[std::to_string(it->second)] = json{{"content", a.content}, {"lstrip", a.lstrip}, {"normalized", a.normalized},
                                                 {"rstrip", a.rstrip}, {"single_word", false}, {"special", true}};
  util::write_text_atomically(dir / "tokenizer_config.json",
                              tokenizer_config_json(options_, tokenizer_class, decoder).dump(2) + "\n");
  util::write_text_atomically(dir / "special_tokens_map.json", special_tokens_json(options_).dump(2) + "\n");
}

}  // namespace emotune::text
