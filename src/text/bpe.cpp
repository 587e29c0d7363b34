#include "text/bpe.h"

#include <algorithm>
#include <array>
#include <limits>
#include <mutex>
#include <queue>
#include <stdexcept>

#include "text/unicode.h"
#include "text/utf8.h"
#include "util/atomic_file.h"
#include "util/json_file.h"

namespace emotune::text {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::uint64_t pair_key(std::int32_t a, std::int32_t b) {
  return static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32 | static_cast<std::uint32_t>(b);
}

// The end of the pre-tokenization pattern's match at `i` (see bpe.h): its alternatives are tried in
// order, as a backtracking regex engine does, and one always matches.
std::size_t match_end(std::u32string_view t, std::size_t i) {
  const std::size_t n = t.size();
  const char32_t c = t[i];
  if (c == U'\'' && i + 1 < n) {
    const char32_t a = t[i + 1];
    if (a == U's' || a == U't' || a == U'm' || a == U'd') return i + 2;
    if (i + 2 < n) {
      const char32_t b = t[i + 2];
      if ((a == U'r' && b == U'e') || (a == U'v' && b == U'e') || (a == U'l' && b == U'l')) return i + 3;
    }
  }
  const std::size_t body = i + (c == U' ' ? 1 : 0);  // after the optional leading space
  auto run = [&](std::size_t k, auto in_class) {
    while (k < n && in_class(t[k])) ++k;
    return k;
  };
  auto other = [](char32_t x) { return !is_unicode_whitespace(x) && !is_letter(x) && !is_number(x); };
  if (body < n && is_letter(t[body])) return run(body, is_letter);
  if (body < n && is_number(t[body])) return run(body, is_number);
  if (body < n && other(t[body])) return run(body, other);
  // \s+(?!\S) leaves the last space of a run for the word after it; \s+ takes a lone space.
  const std::size_t end = run(i, is_unicode_whitespace);
  if (end == n || end - i == 1) return end;
  return end - 1;
}

// A token id in a JSON file: a non-negative integer that fits (a float such as 1e40 is not an id).
std::int32_t token_id(const json& v, const std::string& what) {
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > std::numeric_limits<std::int32_t>::max())
    throw std::runtime_error(what + " is not a token id (a non-negative integer)");
  return static_cast<std::int32_t>(v.get<int64_t>());
}


std::vector<std::pair<std::string, std::string>> parse_merges_json(const json& merges) {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merges.size());
  for (const json& m : merges) {
    if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      out.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const auto space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
        throw std::runtime_error("merge '" + s + "' is not two tokens separated by one space");
      out.emplace_back(s.substr(0, space), s.substr(space + 1));
    } else {
      throw std::runtime_error("a merge is neither \"a b\" nor [\"a\", \"b\"]");
    }
  }
  return out;
}

std::unordered_map<std::string, std::int32_t> parse_vocab_json(const json& vocab) {
  if (!vocab.is_object()) throw std::runtime_error("the vocabulary is not an object of token -> id");
  std::unordered_map<std::string, std::int32_t> out;
  out.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    out.emplace(token, token_id(id, "the id of '" + token + "'"));
  }
  return out;
}

// The special tokens the post-processor puts around the text, as ids.
void read_post_processor(const json& post, BpeOptions& o) {
  if (post.is_null()) return;
  const std::string type = post.value("type", "");
  auto id_of = [](const json& pair) {
    if (!pair.is_array() || pair.size() != 2) throw std::runtime_error("post_processor: expected [token, id]");
    return token_id(pair[1], "post_processor: a special token's id");
  };
  if (type == "RobertaProcessing" || type == "BertProcessing") {
    o.prefix = {id_of(post.at("cls"))};
    o.suffix = {id_of(post.at("sep"))};
  } else if (type == "TemplateProcessing") {
    const json& special = post.value("special_tokens", json::object());
    bool seen_text = false;
    for (const json& piece : post.at("single")) {
      if (piece.contains("Sequence")) {
        seen_text = true;
        continue;
      }
      const std::string name = piece.at("SpecialToken").at("id").get<std::string>();
      for (const json& id : special.at(name).at("ids")) (seen_text ? o.suffix : o.prefix).push_back(token_id(id, "post_processor: '" + name + "'"));
    }
  } else if (type != "ByteLevel") {
    throw std::runtime_error("post_processor '" + type + "' is not supported (RobertaProcessing, TemplateProcessing)");
  }
}

// The roles of the special tokens (bos, eos, unk, pad, mask, cls, sep) from the tokenizer_config.json
// and special_tokens_map.json of `dir`, RobertaTokenizer's names where they say nothing.
struct SpecialNames {
  std::string cls, sep;
};
SpecialNames read_special_names(const fs::path& dir, BpeOptions& o) {
  json cfg = json::object(), map = json::object();
  const fs::path cfg_path = dir / "tokenizer_config.json", map_path = dir / "special_tokens_map.json";
  if (fs::exists(cfg_path)) cfg = util::read_json_file(cfg_path);
  if (fs::exists(map_path)) map = util::read_json_file(map_path);
  try {
    auto special = [&](const char* key, const std::string& fallback) {
      return special_token_field(map, key).value_or(special_token_field(cfg, key).value_or(fallback));
    };
    o.bos_token = special("bos_token", o.bos_token);
    o.eos_token = special("eos_token", o.eos_token);
    o.unk_token = special("unk_token", o.unk_token);
    o.pad_token = special("pad_token", o.pad_token);
    o.mask_token = special("mask_token", o.mask_token);
    o.add_prefix_space = cfg.value("add_prefix_space", o.add_prefix_space);
    return {special("cls_token", o.bos_token), special("sep_token", o.eos_token)};
  } catch (const std::exception& e) {
    throw std::runtime_error(cfg_path.string() + " or " + map_path.filename().string() + ": " + e.what());
  }
}

}  // namespace

const std::string& byte_stand_in(unsigned char b) {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    char32_t next = 256;
    for (int c = 0; c < 256; ++c) {
      const bool printable = (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255);
      append_utf8(printable ? static_cast<char32_t>(c) : next++, t[static_cast<std::size_t>(c)]);
    }
    return t;
  }();
  return table[b];
}

struct ByteLevelBpe::WordCache {
  struct Token {
    std::int32_t id;
    std::uint32_t first, last;  // the piece's bytes it spells
  };
  // Lookups by string_view without building a std::string.
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, std::vector<Token>, Hash, std::equal_to<>> words;
  };
  // Bounded as tokenizers' own cache is (10,000 words, its DEFAULT_CACHE_CAPACITY): once a shard is
  // full, new words are merged every time.
  static constexpr std::size_t kShards = 16, kWordsPerShard = 625, kLongestWord = 64;
  std::array<Shard, kShards> shards;

  Shard& shard_of(std::string_view piece) { return shards[Hash{}(piece) % kShards]; }

  static void append(const std::vector<Token>& tokens, std::vector<std::int32_t>& ids,
                     std::vector<std::pair<std::size_t, std::size_t>>* byte_ranges) {
    for (const Token& t : tokens) {
      ids.push_back(t.id);
      if (byte_ranges) byte_ranges->emplace_back(t.first, t.last);
    }
  }

  // Appends the remembered tokens of `piece`; false when it is not remembered.
  bool append(std::string_view piece, std::vector<std::int32_t>& ids,
              std::vector<std::pair<std::size_t, std::size_t>>* byte_ranges) {
    Shard& s = shard_of(piece);
    std::lock_guard<std::mutex> lock(s.mutex);
    const auto it = s.words.find(piece);
    if (it == s.words.end()) return false;
    append(it->second, ids, byte_ranges);
    return true;
  }

  void remember(std::string_view piece, std::vector<Token> tokens) {
    if (piece.size() > kLongestWord) return;
    Shard& s = shard_of(piece);
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.words.size() < kWordsPerShard) s.words.emplace(std::string(piece), std::move(tokens));
  }
};

ByteLevelBpe::ByteLevelBpe(const std::unordered_map<std::string, std::int32_t>& vocab,
                           const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options)
    : cache_(std::make_shared<WordCache>()), ids_(vocab), merge_list_(merges), options_(std::move(options)) {
  std::int32_t top = -1;
  for (const auto& [t, id] : ids_) top = std::max(top, id);
  for (const auto& a : options_.added) {
    if (a.id < 0) throw std::runtime_error("added token '" + a.content + "' has a negative id");
    top = std::max(top, a.id);
  }
  if (top < 0) throw std::runtime_error("empty vocabulary");
  // Ids number the tokens 0..N-1 (a few gaps at most): a stray huge id is a broken file, not a reason
  // to allocate millions of entries.
  if (static_cast<std::size_t>(top) >= 2 * (ids_.size() + options_.added.size()) + 1024)
    throw std::runtime_error("token id " + std::to_string(top) + " is far beyond the " + std::to_string(ids_.size()) +
                             " tokens of the vocabulary");
  tokens_.assign(static_cast<std::size_t>(top) + 1, std::string());
  for (const auto& [t, id] : ids_) tokens_[static_cast<std::size_t>(id)] = t;
  for (const auto& a : options_.added) {
    tokens_[static_cast<std::size_t>(a.id)] = a.content;
    ids_.emplace(a.content, a.id);
  }
  for (int b = 0; b < 256; ++b) {
    const auto it = ids_.find(byte_stand_in(static_cast<unsigned char>(b)));
    byte_ids_[b] = it == ids_.end() ? -1 : it->second;
  }
  merges_.reserve(merges.size());
  for (std::size_t r = 0; r < merges.size(); ++r) {
    const auto& [a, b] = merges[r];
    const auto ia = ids_.find(a), ib = ids_.find(b), im = ids_.find(a + b);
    if (ia == ids_.end() || ib == ids_.end() || im == ids_.end())
      throw std::runtime_error("merge '" + a + " " + b + "' (rank " + std::to_string(r) + ") uses a token not in the vocabulary");
    merges_.emplace(pair_key(ia->second, ib->second), Merge{static_cast<std::int32_t>(r), im->second});
  }
  for (const auto& a : options_.added) {
    if (a.content.empty()) continue;
    std::u32string cps;
    decode_utf8(a.content, cps);
    added_.emplace_back(std::move(cps), a);
  }
  std::stable_sort(added_.begin(), added_.end(), [](const auto& x, const auto& y) { return x.first.size() > y.first.size(); });
  const auto pad = ids_.find(options_.pad_token);
  if (pad == ids_.end()) throw std::runtime_error("pad_token '" + options_.pad_token + "' is not in the vocabulary");
  pad_id_ = pad->second;
  if (const auto unk = ids_.find(options_.unk_token); unk != ids_.end()) unk_id_ = unk->second;
  for (const auto* ids : {&options_.prefix, &options_.suffix})
    for (auto id : *ids)
      if (id < 0 || static_cast<std::size_t>(id) >= tokens_.size()) throw std::runtime_error("a special token id is out of range");
}

const ByteLevelBpe::Merge* ByteLevelBpe::find_merge(std::int32_t a, std::int32_t b) const {
  const auto it = merges_.find(pair_key(a, b));
  return it == merges_.end() ? nullptr : &it->second;
}

// Merges the piece's byte symbols, always the pair of lowest rank first (leftmost among equals),
// as tokenizers' BPE does with its priority queue: O(n log n) even for a huge unbroken word.
void ByteLevelBpe::bpe_into(std::string_view piece, std::vector<std::int32_t>& ids,
                            std::vector<std::pair<std::size_t, std::size_t>>* byte_ranges) const {
  if (cache_->append(piece, ids, byte_ranges)) return;
  struct Symbol {
    std::int32_t id;
    std::int32_t prev, next;
    std::uint32_t first, last;  // the piece's bytes it spells
  };
  struct Candidate {
    std::int32_t rank, pos, merged;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<Symbol> symbols;
  symbols.reserve(piece.size());
  for (std::size_t b = 0; b < piece.size(); ++b) {
    const auto byte = static_cast<unsigned char>(piece[b]);
    const std::int32_t id = byte_ids_[byte] >= 0 ? byte_ids_[byte] : unk_id_;
    if (id < 0) continue;  // a byte the vocabulary cannot spell, and no unknown token: dropped
    const auto i = static_cast<std::int32_t>(symbols.size());
    symbols.push_back({id, i - 1, i + 1, static_cast<std::uint32_t>(b), static_cast<std::uint32_t>(b + 1)});
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  auto consider = [&](std::int32_t left) {
    if (left < 0 || symbols[static_cast<std::size_t>(left)].next < 0) return;
    const auto& l = symbols[static_cast<std::size_t>(left)];
    if (const Merge* m = find_merge(l.id, symbols[static_cast<std::size_t>(l.next)].id)) queue.push({m->rank, left, m->merged});
  };
  for (std::int32_t i = 0; i + 1 < static_cast<std::int32_t>(symbols.size()); ++i) consider(i);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& left = symbols[static_cast<std::size_t>(c.pos)];
    if (left.id < 0 || left.next < 0) continue;  // merged away, or nothing to its right any more
    Symbol& right = symbols[static_cast<std::size_t>(left.next)];
    const Merge* m = find_merge(left.id, right.id);
    if (!m || m->rank != c.rank || m->merged != c.merged) continue;  // the pair changed since
    left.id = c.merged;
    left.last = right.last;
    right.id = -1;
    left.next = right.next;
    if (left.next >= 0) symbols[static_cast<std::size_t>(left.next)].prev = c.pos;
    consider(left.prev);
    consider(c.pos);
  }
  std::vector<WordCache::Token> merged;
  for (std::int32_t i = 0; i >= 0; i = symbols[static_cast<std::size_t>(i)].next) {
    const Symbol& s = symbols[static_cast<std::size_t>(i)];
    merged.push_back({s.id, s.first, s.last});
  }
  WordCache::append(merged, ids, byte_ranges);
  cache_->remember(piece, std::move(merged));
}

namespace {

// The number of space stand-ins ("Ġ", U+0120) at the start and at the end of a token's string.
std::pair<std::size_t, std::size_t> spaces_around(const std::string& token) {
  static const std::string space = byte_stand_in(' ');
  std::size_t lead = 0, trail = 0;
  while ((lead + 1) * space.size() <= token.size() && token.compare(lead * space.size(), space.size(), space) == 0) ++lead;
  while ((trail + 1) * space.size() <= token.size() &&
         token.compare(token.size() - (trail + 1) * space.size(), space.size(), space) == 0)
    ++trail;
  return {lead, trail};
}

}  // namespace

void ByteLevelBpe::pre_tokenized_into(std::u32string_view text, std::size_t offset, std::vector<std::int32_t>& ids,
                                      std::size_t limit, std::vector<TokenSpan>* spans) const {
  std::u32string prefixed;
  std::size_t added_space = 0;  // the prefix space is not in the text
  if (options_.add_prefix_space && !text.empty() && text.front() != U' ') {
    prefixed = U" ";
    prefixed += text;
    text = prefixed;
    added_space = 1;
  }
  std::string piece;
  std::vector<std::size_t> char_of_byte;
  std::vector<std::pair<std::size_t, std::size_t>> byte_ranges;
  for (std::size_t i = 0; i < text.size() && ids.size() < limit;) {
    const std::size_t end = match_end(text, i);
    piece.clear();
    char_of_byte.clear();
    for (std::size_t k = i; k < end; ++k) {
      append_utf8(text[k], piece);
      char_of_byte.resize(piece.size(), k);
    }
    const std::size_t first_new = ids.size();
    bpe_into(piece, ids, spans ? &byte_ranges : nullptr);
    i = end;
    if (!spans) continue;
    for (std::size_t t = 0; t < byte_ranges.size(); ++t) {
      auto in_text = [&](std::size_t k) { return offset + (k >= added_space ? k - added_space : 0); };
      TokenSpan span{in_text(char_of_byte[byte_ranges[t].first]), in_text(char_of_byte[byte_ranges[t].second - 1] + 1)};
      // tokenizers' ByteLevel offset trimming, rule for rule: only spaces count, and the prefix
      // space of a first token counts as part of it.
      auto [lead, trail] = spaces_around(tokens_[static_cast<std::size_t>(ids[first_new + t])]);
      if (lead == 1 && options_.add_prefix_space && span.start == 0) lead = 0;
      if (lead > 0) span.start = std::min(span.start + lead, span.end);
      if (trail > 0 && span.end >= trail) span.end = std::max(span.end - trail, span.start);
      spans->push_back(span);
    }
    byte_ranges.clear();
  }
}

void ByteLevelBpe::tokenize_into(std::string_view utf8, std::vector<std::int32_t>& ids, std::size_t limit) const {
  tokenize_traced(utf8, ids, limit, nullptr);
}

void ByteLevelBpe::tokenize_traced(std::string_view utf8, std::vector<std::int32_t>& ids, std::size_t limit,
                                   std::vector<TokenSpan>* spans) const {
  std::u32string text;
  text.reserve(utf8.size());
  decode_utf8(utf8, text);
  const std::u32string_view view(text);
  // Added tokens are cut out first (leftmost, then longest); lstrip/rstrip take the whitespace beside them.
  std::size_t segment = 0;
  for (std::size_t i = 0; i < text.size() && ids.size() < limit; ++i) {
    for (const auto& [cps, token] : added_) {
      if (text[i] != cps.front() || text.compare(i, cps.size(), cps) != 0) continue;
      std::size_t start = i, end = i + cps.size();
      if (token.lstrip)
        while (start > segment && is_unicode_whitespace(text[start - 1])) --start;
      if (token.rstrip)
        while (end < text.size() && is_unicode_whitespace(text[end])) ++end;
      if (start > segment) pre_tokenized_into(view.substr(segment, start - segment), segment, ids, limit, spans);
      ids.push_back(token.id);
      if (spans) spans->push_back({i, i + cps.size()});
      segment = end;
      i = end - 1;
      break;
    }
  }
  if (segment < text.size() && ids.size() < limit) pre_tokenized_into(view.substr(segment), segment, ids, limit, spans);
}

Encoding ByteLevelBpe::encode(std::string_view utf8, std::size_t max_length) const {
  return encode_traced(utf8, max_length, nullptr);
}

std::vector<TokenSpan> ByteLevelBpe::token_spans(std::string_view utf8, std::size_t max_length) const {
  std::vector<TokenSpan> spans;
  encode_traced(utf8, max_length, &spans);
  return spans;
}

std::optional<std::int32_t> ByteLevelBpe::mask_id() const {
  const auto it = ids_.find(options_.mask_token);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

Encoding ByteLevelBpe::encode_traced(std::string_view utf8, std::size_t max_length, std::vector<TokenSpan>* spans) const {
  const std::size_t specials = options_.prefix.size() + options_.suffix.size();
  if (max_length < std::max<std::size_t>(specials, 1))
    throw std::invalid_argument("max_length must leave room for the special tokens");
  Encoding enc;
  enc.ids = options_.prefix;
  if (spans) spans->assign(options_.prefix.size(), TokenSpan{0, 0, true});
  const std::size_t keep = max_length - options_.suffix.size();  // ids before the suffix
  tokenize_traced(utf8, enc.ids, keep + 1, spans);
  if (enc.ids.size() > keep) {
    enc.ids.resize(keep);
    if (spans) spans->resize(keep);
    enc.truncated = true;
  }
  enc.ids.insert(enc.ids.end(), options_.suffix.begin(), options_.suffix.end());
  if (spans) spans->insert(spans->end(), options_.suffix.size(), TokenSpan{0, 0, true});
  return enc;
}

ByteLevelBpe ByteLevelBpe::from_tokenizer_json(const fs::path& path, const json& j) {
  const std::string where = path.string();
  try {
    const json& model = j.at("model");
    if (model.contains("dropout") && !model.at("dropout").is_null() && model.at("dropout").get<double>() != 0)
      throw std::runtime_error("BPE dropout is not supported");
    if (!model.value("continuing_subword_prefix", json("")).is_null() && model.value("continuing_subword_prefix", json("")) != "")
      throw std::runtime_error("continuing_subword_prefix is not supported for byte-level BPE");
    if (model.value("byte_fallback", false)) throw std::runtime_error("byte_fallback is not supported");
    const json& pre = j.value("pre_tokenizer", json());
    if (!pre.is_object() || pre.value("type", "") != "ByteLevel")
      throw std::runtime_error("only the ByteLevel pre-tokenizer is supported with BPE");
    if (!pre.value("use_regex", true)) throw std::runtime_error("ByteLevel without use_regex is not supported");
    if (!j.value("normalizer", json()).is_null()) throw std::runtime_error("normalizers are not supported with byte-level BPE");
    BpeOptions o;
    read_special_names(path.parent_path(), o);
    o.add_prefix_space = pre.value("add_prefix_space", false);
    read_post_processor(j.value("post_processor", json()), o);
    for (const json& a : j.value("added_tokens", json::array())) {
      if (a.value("single_word", false)) throw std::runtime_error("single_word added tokens are not supported");
      o.added.push_back({a.at("content").get<std::string>(), token_id(a.at("id"), "an added token's id"), a.value("lstrip", false),
                         a.value("rstrip", false), a.value("special", true)});
    }
    if (model.contains("unk_token") && model.at("unk_token").is_string()) o.unk_token = model.at("unk_token").get<std::string>();
    return ByteLevelBpe(parse_vocab_json(model.at("vocab")), parse_merges_json(model.at("merges")), std::move(o));
  } catch (const json::exception& e) {
    throw std::runtime_error(where + ": a field is missing or has the wrong type (" + e.what() + ")");
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(where + ": " + e.what());
  }
}

ByteLevelBpe ByteLevelBpe::from_vocab_and_merges(const fs::path& dir) {
  const fs::path vocab_path = dir / "vocab.json", merges_path = dir / "merges.txt";
  const auto vocab = [&] {
    try {
      return parse_vocab_json(util::read_json_file(vocab_path, std::size_t{256} << 20));
    } catch (const std::runtime_error& e) {
      throw std::runtime_error(vocab_path.string() + ": " + e.what());
    }
  }();
  const std::string text = util::read_small_file(merges_path, std::size_t{256} << 20);
  std::vector<std::pair<std::string, std::string>> merges;
  std::size_t line_no = 0;
  for (std::size_t start = 0; start < text.size();) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    const auto space = line.find(' ');
    if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
      throw std::runtime_error(merges_path.string() + ":" + std::to_string(line_no) + ": expected two tokens separated by one space");
    merges.emplace_back(line.substr(0, space), line.substr(space + 1));
  }
  BpeOptions o;
  const auto [cls, sep] = read_special_names(dir, o);
  {
    // RobertaTokenizer's added tokens: its special tokens, <mask> taking the space before it.
    const std::string* roles[] = {&o.bos_token, &o.pad_token, &o.eos_token, &o.unk_token, &cls, &sep, &o.mask_token};
    for (const std::string* t : roles) {
      const auto it = vocab.find(*t);
      if (it == vocab.end()) continue;
      if (std::none_of(o.added.begin(), o.added.end(), [&](const AddedToken& a) { return a.content == *t; }))
        o.added.push_back({*t, it->second, t == &o.mask_token, false, true});
    }
    const auto c = vocab.find(cls), s = vocab.find(sep);
    if (c == vocab.end() || s == vocab.end()) throw std::runtime_error("cls/sep tokens '" + cls + "', '" + sep + "' are not in vocab.json");
    o.prefix = {c->second};
    o.suffix = {s->second};
  }
  try {
    return ByteLevelBpe(vocab, merges, std::move(o));
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(dir.string() + ": " + e.what());
  }
}

void ByteLevelBpe::save(const fs::path& dir, const std::string& tokenizer_class) const {
  std::vector<std::pair<std::int32_t, std::string>> by_id;
  for (const auto& [t, id] : ids_) by_id.emplace_back(id, t);
  std::sort(by_id.begin(), by_id.end());
  // Written directly, in id order: an ordered_json object finds each new key by a linear search, and
  // 50,265 tokens took 1.3 s per save (every checkpoint of a RoBERTa run).
  std::string vocab = "{";
  for (const auto& [id, t] : by_id) {
    if (vocab.size() > 1) vocab += ',';
    vocab += json(t).dump() + ':' + std::to_string(id);
  }
  util::write_text_atomically(dir / "vocab.json", vocab + "}\n");
  std::string merges = "#version: 0.2\n";
  for (const auto& [a, b] : merge_list_) merges += a + " " + b + "\n";
  util::write_text_atomically(dir / "merges.txt", merges);
  auto token_json = [&](const std::string& s) {
    const bool lstrip = s == options_.mask_token;
    return json{{"content", s}, {"lstrip", lstrip}, {"normalized", false}, {"rstrip", false}, {"single_word", false}, {"special", true}};
  };
  const std::string cls = options_.prefix.empty() ? options_.bos_token : tokens_.at(static_cast<std::size_t>(options_.prefix[0]));
  const std::string sep = options_.suffix.empty() ? options_.eos_token : tokens_.at(static_cast<std::size_t>(options_.suffix[0]));
  const json cfg{{"tokenizer_class", tokenizer_class}, {"add_prefix_space", options_.add_prefix_space},
                 {"bos_token", options_.bos_token},    {"eos_token", options_.eos_token},
                 {"unk_token", options_.unk_token},    {"sep_token", sep},
                 {"cls_token", cls},                   {"pad_token", options_.pad_token},
                 {"mask_token", token_json(options_.mask_token)},
                 {"model_max_length", 512},            {"errors", "replace"},
                 {"trim_offsets", true}};
  util::write_text_atomically(dir / "tokenizer_config.json", cfg.dump(2) + "\n");
  const json map{{"bos_token", token_json(options_.bos_token)}, {"eos_token", token_json(options_.eos_token)},
                 {"unk_token", token_json(options_.unk_token)}, {"sep_token", token_json(sep)},
                 {"cls_token", token_json(cls)},                {"pad_token", token_json(options_.pad_token)},
                 {"mask_token", token_json(options_.mask_token)}};
  util::write_text_atomically(dir / "special_tokens_map.json", map.dump(2) + "\n");
}

}  // namespace emotune::text
