#include "text/tokenizer.h"

#include <stdexcept>

#include "text/bpe.h"
#include "text/wordpiece.h"
#include "util/errors.h"
#include "util/json_file.h"

namespace emotune::text {

namespace fs = std::filesystem;

std::optional<std::string> special_token_field(const nlohmann::json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || j.at(key).is_null()) return std::nullopt;
  const auto& v = j.at(key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v.at("content").is_string()) return v.at("content").get<std::string>();
  throw std::runtime_error(std::string("'") + key + "' is neither a string nor an added token");
}

TokenizerPtr load_tokenizer(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw NotFoundError("model directory not found: " + dir.string());
  if (fs::exists(dir / "vocab.txt")) return std::make_shared<WordPiece>(WordPiece::from_directory(dir));
  if (const fs::path path = dir / "tokenizer.json"; fs::exists(path)) {
    const auto j = util::read_json_file(path, std::size_t{256} << 20);
    const auto model = j.is_object() ? j.value("model", nlohmann::json::object()) : nlohmann::json();
    if (!model.is_object()) throw std::runtime_error(path.string() + ": no \"model\" object");
    // Older files name no type: a BPE model is the one with merges.
    const std::string type = model.value("type", model.contains("merges") ? "BPE" : "WordPiece");
    if (type == "BPE") return std::make_shared<ByteLevelBpe>(ByteLevelBpe::from_tokenizer_json(path, j));
    if (type == "WordPiece") return std::make_shared<WordPiece>(WordPiece::from_tokenizer_json(path, j));
    throw std::runtime_error(path.string() + ": tokenizer model '" + type + "' is not supported (WordPiece, BPE)");
  }
  if (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt"))
    return std::make_shared<ByteLevelBpe>(ByteLevelBpe::from_vocab_and_merges(dir));
  throw std::runtime_error("no tokenizer in " + dir.string() + " (vocab.txt, tokenizer.json, or vocab.json + merges.txt)");
}

}  // namespace emotune::text
