#include "model/checkpoint.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <algorithm>
#include <set>
#include <sstream>
#include <stdexcept>

#include "model/family.h"
#include "model/safetensors.h"
#include "model/weights_file.h"
#include "util/atomic_file.h"

namespace emotune::model {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string shape_str(c10::IntArrayRef s) {
  std::ostringstream o;
  o << "[";
  for (std::size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

json special_tokens_json(const text::TokenizerOptions& o) {
  auto tok = [](const std::string& s) {
    return json{{"content", s}, {"lstrip", false}, {"normalized", false}, {"rstrip", false}, {"single_word", false}};
  };
  return json{{"cls_token", tok(o.cls_token)},   {"mask_token", tok(o.mask_token)}, {"pad_token", tok(o.pad_token)},
              {"sep_token", tok(o.sep_token)},   {"unk_token", tok(o.unk_token)}};
}

// The tokenizer class is the family's: DistilBERT's takes no token_type_ids, so a BertTokenizer
// there would hand DistilBERT an input it refuses (transformers' pipeline() does).
json tokenizer_config_json(const text::TokenizerOptions& o, const std::string& tokenizer_class) {
  json j{{"tokenizer_class", tokenizer_class},
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
  return j;
}

}  // namespace

namespace {

// Where model parameter names are found in a checkpoint file.
class FileNames {
 public:
  FileNames(const WeightsFile& file, const std::string& base_model_prefix) : file_(file) {
    // Base checkpoints saved from the bare encoder (DistilBertModel, BertModel) carry no prefix.
    bool has_prefix = false;
    for (const auto& [name, _] : file.shapes()) has_prefix |= name.starts_with(base_model_prefix + ".");
    if (!has_prefix) strip_ = base_model_prefix + ".";
  }

  // The file's name for `param`, or "" when the file lacks it.
  std::string find(const std::string& param) const {
    std::string name = param;
    if (!strip_.empty() && name.starts_with(strip_)) name = name.substr(strip_.size());
    if (file_.shapes().count(name)) return name;
    // Checkpoints converted from the original BERT code name LayerNorm's parameters gamma and beta.
    for (const std::string now : {"weight", "bias"}) {
      if (!name.ends_with(".LayerNorm." + now)) continue;
      const std::string legacy = name.substr(0, name.size() - now.size()) + (now == "weight" ? "gamma" : "beta");
      if (file_.shapes().count(legacy)) return legacy;
    }
    return "";
  }

 private:
  const WeightsFile& file_;
  std::string strip_;
};

// Buffers older transformers versions saved with the weights; nothing to load.
bool is_saved_buffer(const std::string& name) { return name.ends_with("position_ids"); }

}  // namespace

LoadReport load_weights(SequenceClassifierImpl& model, const fs::path& path, const LoadWeightsOptions& options) {
  const WeightsFile file(path);
  const FileNames names(file, model.base_model_prefix());
  LoadReport report;
  std::set<std::string> used;
  torch::NoGradGuard no_grad;
  for (auto& item : model.named_parameters()) {
    const std::string name = names.find(item.key());
    if (name.empty()) {
      report.missing.push_back(item.key());
      continue;
    }
    const auto& shape = file.shapes().at(name);
    if (c10::IntArrayRef(shape) != item.value().sizes())
      throw std::runtime_error(path.string() + ": tensor '" + name + "' has shape " + shape_str(shape) +
                               " but the config implies " + shape_str(item.value().sizes()));
    const bool in_place = std::find(options.map_in_place.begin(), options.map_in_place.end(), item.key()) !=
                          options.map_in_place.end();
    if (auto view = in_place ? file.map_in_place(name) : torch::Tensor(); view.defined())
      item.value().set_data(view);
    else
      file.copy_into(name, item.value());
    used.insert(name);
    if (options.loaded) options.loaded(item.key());
  }
  for (const auto& [name, _] : file.shapes())
    if (!used.count(name) && !is_saved_buffer(name)) report.unused.push_back(name);
  return report;
}

SequenceClassifier init_classifier(const ModelConfig& config, std::uint64_t seed) {
  torch::manual_seed(seed);
  auto model = make_classifier(config);
  model->init_weights(config.initializer_range);
  return model;
}

namespace {
// Loads the weights and packs each encoder block as soon as its last tensor is in, so the float
// encoder never exists whole in memory (the model was built without touching its linear layers):
// an int8 load then peaks well below a float one. Blocks with missing tensors are packed later.
// The word embeddings (94 MB for DistilBERT) stay in the file's mapping: a batch reads a few rows.
LoadReport load_packing(SequenceClassifierImpl& model, const fs::path& path, Precision precision) {
  const std::string prefix = model.block_prefix();
  std::vector<std::size_t> remaining(model.num_blocks(), 0);
  for (const auto& item : model.named_parameters())
    if (item.key().rfind(prefix, 0) == 0) ++remaining.at(std::stoul(item.key().substr(prefix.size())));
  LoadWeightsOptions o;
  o.map_in_place = {model.base_model_prefix() + ".embeddings.word_embeddings.weight"};
  o.loaded = [&](const std::string& name) {
    if (name.rfind(prefix, 0) != 0) return;
    const auto i = std::stoul(name.substr(prefix.size()));
    if (--remaining.at(i) == 0) model.pack_block(i, precision);
  };
  return load_weights(model, path, o);
}
}  // namespace

LoadOptions inference_options(const std::string& quantize, const torch::Device& device) {
  LoadOptions o;
  const bool int8 = !quantize.empty() && quantize != "none";
  if (int8 && quantize != "int8") throw std::invalid_argument("--quantize must be int8 (got '" + quantize + "')");
  if (int8 && !device.is_cpu())
    throw std::invalid_argument("--quantize int8 runs on the CPU only (drop --device cuda)");
  if (device.is_cpu()) o.pack = int8 ? Precision::Int8 : Precision::Float32;
  return o;
}

ModelBundle load_model_dir(const fs::path& dir, const LoadOptions& options) {
  if (!fs::is_directory(dir)) throw std::runtime_error("model directory not found: " + dir.string());
  const fs::path config_path = dir / "config.json";
  if (!fs::exists(config_path)) throw std::runtime_error("no config.json in model directory " + dir.string());
  const fs::path weights_path = WeightsFile::in_directory(dir);
  ModelConfig config = ModelConfig::load(config_path);
  if (config.labels.empty()) {
    if (!options.labels)
      throw std::runtime_error(config_path.string() + " has no id2label: this is a base checkpoint; give labels");
    config.labels = *options.labels;
  }
  if (options.dropout) config.set_all_dropouts(*options.dropout);
  text::Tokenizer tokenizer = text::Tokenizer::from_directory(dir);
  if (static_cast<int64_t>(tokenizer.vocab_size()) > config.vocab_size)
    throw std::runtime_error(dir.string() + ": the tokenizer has " + std::to_string(tokenizer.vocab_size()) +
                             " tokens but the model's vocab_size is " + std::to_string(config.vocab_size));

  ModelBundle bundle{options.pack ? make_classifier(config, /*initialise=*/false) : init_classifier(config, options.seed),
                     std::move(tokenizer), dir, {}};
  if (options.pack) {
    bundle.report = load_packing(*bundle.model, weights_path, *options.pack);
    if (!bundle.report.missing.empty()) {  // never drawn at construction: draw them now
      torch::manual_seed(options.seed);
      bundle.model->init_weights(config.initializer_range, &bundle.report.missing);
    }
  } else {
    bundle.report = load_weights(*bundle.model, weights_path);
  }
  if (!bundle.report.missing.empty())
    spdlog::warn("{}: initialised (not in the checkpoint): {}", weights_path.string(), join(bundle.report.missing));
  if (!bundle.report.unused.empty())
    spdlog::info("{}: not used by {}: {}", weights_path.string(), find_family(config.model_type, dir.string()).architecture,
                 join(bundle.report.unused));
  if (config.raw.value("emotune_random_init", false))
    spdlog::warn("{} starts from a RANDOMLY INITIALISED encoder (emotune init), not a pretrained one", dir.string());
  bundle.model->eval();
  if (options.pack) bundle.model->pack_for_inference(*options.pack);
  return bundle;
}

void save_model_files(const fs::path& dir, SequenceClassifierImpl& model, const text::Tokenizer& tokenizer) {
  util::write_text_atomically(dir / "config.json", model.config.to_classifier_json().dump(2) + "\n");
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& item : model.named_parameters()) tensors.emplace_back(item.key(), item.value());
  save_safetensors(dir / "model.safetensors", tensors);
  std::string vocab;
  for (const auto& t : tokenizer.vocab()) vocab += t + "\n";
  util::write_text_atomically(dir / "vocab.txt", vocab);
  util::write_text_atomically(dir / "tokenizer_config.json", tokenizer_config_json(tokenizer.options(), find_family(model.config.model_type, dir.string()).tokenizer_class).dump(2) + "\n");
  util::write_text_atomically(dir / "special_tokens_map.json", special_tokens_json(tokenizer.options()).dump(2) + "\n");
}

}  // namespace emotune::model
