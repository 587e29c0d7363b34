#include "model/checkpoint.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <algorithm>
#include <set>
#include <sstream>
#include <stdexcept>

#include "model/family.h"
#include "runtime/runtime.h"
#include "weights/safetensors.h"
#include "weights/weights_file.h"
#include "util/atomic_file.h"
#include "util/errors.h"

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

}  // namespace

namespace {

// Where model parameter names are found in a checkpoint file.
class FileNames {
 public:
  FileNames(const weights::WeightsFile& file, const std::string& base_model_prefix) : file_(file) {
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
  const weights::WeightsFile& file_;
  std::string strip_;
};

// Buffers older transformers versions saved with the weights; nothing to load.
bool is_saved_buffer(const std::string& name) { return name.ends_with("position_ids"); }

}  // namespace

LoadReport load_weights(SequenceClassifierImpl& model, const fs::path& path, const LoadWeightsOptions& options) {
  const weights::WeightsFile file(path);
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
    if (options.require_finite && !torch::isfinite(item.value()).all().item<bool>())
      throw std::runtime_error(path.string() + ": tensor '" + name + "' holds NaN or infinite values");
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
LoadReport load_packing(SequenceClassifierImpl& model, const fs::path& path, Precision precision, bool require_finite,
                        bool map_embeddings) {
  const std::string prefix = model.block_prefix();
  std::vector<std::size_t> remaining(model.num_blocks(), 0);
  for (const auto& item : model.named_parameters())
    if (item.key().rfind(prefix, 0) == 0) ++remaining.at(std::stoul(item.key().substr(prefix.size())));
  LoadWeightsOptions o;
  o.require_finite = require_finite;
  if (map_embeddings) o.map_in_place = {model.base_model_prefix() + ".embeddings.word_embeddings.weight"};
  o.loaded = [&](const std::string& name) {
    if (name.rfind(prefix, 0) != 0) return;
    const auto i = std::stoul(name.substr(prefix.size()));
    if (--remaining.at(i) == 0) model.pack_block(i, precision);
  };
  return load_weights(model, path, o);
}
}  // namespace

namespace {

// A config that asks for far more parameters than the checkpoint holds (n_layers: 1000000) fails
// here, before anything is allocated. (A pickle is read whole here and again by the load: pickles are
// rare and the check is worth the second read.)
void check_parameter_count(const ModelConfig& c, const fs::path& weights_path) {
  const weights::WeightsFile file(weights_path);
  double held = 0;
  for (const auto& [_, shape] : file.shapes()) {
    double n = 1;
    for (auto d : shape) n *= static_cast<double>(d);
    held += n;
  }
  const double h = static_cast<double>(c.hidden_size), i = static_cast<double>(c.intermediate_size);
  const double encoder = static_cast<double>(c.num_layers) * (4 * h * h + 2 * h * i);
  const double embeddings = static_cast<double>(c.vocab_size + c.max_position_embeddings + c.type_vocab_size) * h;
  if (encoder + embeddings > 2 * held + 1e6)
    throw std::runtime_error(weights_path.string() + " holds " + std::to_string(static_cast<int64_t>(held)) +
                             " parameters but config.json describes a model of at least " +
                             std::to_string(static_cast<int64_t>(encoder + embeddings)) +
                             " (does config.json belong to this checkpoint?)");
}

// Inference takes every parameter from the checkpoint; fine-tuning may start a new head.
void refuse_missing_weights(SequenceClassifierImpl& model, const LoadReport& report, const fs::path& weights_path,
                            bool require_all) {
  const std::string encoder = model.base_model_prefix() + ".";
  std::vector<std::string> refused;
  for (const auto& name : report.missing)
    if (require_all || (name.starts_with(encoder) && name.find(".pooler.") == std::string::npos))
      refused.push_back(name);
  if (refused.empty()) return;
  throw std::runtime_error(weights_path.string() + " lacks " + std::to_string(refused.size()) + " tensor(s) the " +
                           (require_all ? std::string("classifier") : std::string("encoder")) + " needs: " +
                           refused.front() + (refused.size() > 1 ? ", ..." : "") +
                           (require_all ? " (a base checkpoint? fine-tune it with train {base})" : ""));
}

// `--precision bf16` on the CPU: refused where oneDNN has no bf16 kernels, suggesting `instead`.
void require_cpu_bf16(const std::string& instead) {
  if (!kernels::built_with_onednn())
    throw std::invalid_argument("{precision} bf16 on the CPU needs oneDNN, and this emotune has no oneDNN (a libtorch "
                                "2.x build): use f32 on the CPU, or bf16 on a GPU");
  if (!kernels::cpu_runs_bf16())
    throw std::invalid_argument("{precision} bf16 needs a CPU with AVX512_BF16 or AMX; oneDNN runs " + kernels::onednn_isa_name() +
                                " here (" + instead + ")");
}

}  // namespace

LoadOptions inference_options(const std::string& precision, const torch::Device& device) {
  LoadOptions o;
  o.require_all_weights = true;
  const Precision p = kernels::parse_precision(precision);
  if (!device.is_cpu()) {
    // Accelerators: the plain layers, bf16 products over float32 weights with --precision bf16.
    if (p == Precision::Int8) throw std::invalid_argument("{precision} int8 runs on the CPU only (use bf16 on a GPU)");
    if (p == Precision::BFloat16) o.products = Products::Bf16;
    return o;
  }
  if (p == Precision::BFloat16) require_cpu_bf16("use f32 or int8");
  if (kernels::built_with_onednn()) o.pack = p;
  else if (p == Precision::Int8)
    throw std::invalid_argument("{precision} int8 needs oneDNN, and this emotune has no oneDNN (a libtorch 2.x build): "
                                "use f32");
  return o;
}

LoadOptions training_options(const std::string& precision, const torch::Device& device) {
  LoadOptions o;
  const Precision p = kernels::parse_precision(precision);
  if (p == Precision::Int8) throw std::invalid_argument("{precision} int8 is for inference; train in f32 or bf16");
  if (p == Precision::BFloat16 && device.is_cpu()) require_cpu_bf16("train in f32");
  if (p == Precision::BFloat16) o.products = Products::Bf16;
  else if (device.is_cpu() && kernels::built_with_onednn()) o.products = Products::OnednnF32;
  return o;
}

ModelBundle load_model_dir(const fs::path& dir, const LoadOptions& options) {
  if (!fs::is_directory(dir)) throw NotFoundError("model directory not found: " + dir.string());
  const fs::path config_path = dir / "config.json";
  if (!fs::exists(config_path)) throw std::runtime_error("no config.json in model directory " + dir.string());
  const fs::path weights_path = weights::WeightsFile::in_directory(dir);
  ModelConfig config = ModelConfig::load(config_path);
  if (config.labels.empty()) {
    if (!options.labels)
      throw std::runtime_error(config_path.string() + " has no id2label: this is a base checkpoint; give labels");
    config.labels = *options.labels;
  }
  if (options.dropout) config.set_all_dropouts(*options.dropout);
  text::TokenizerPtr tokenizer = text::load_tokenizer(dir);
  if (static_cast<int64_t>(tokenizer->vocab_size()) > config.vocab_size)
    throw std::runtime_error(dir.string() + ": the tokenizer has " + std::to_string(tokenizer->vocab_size()) +
                             " tokens but the model's vocab_size is " + std::to_string(config.vocab_size));

  check_parameter_count(config, weights_path);
  ModelBundle bundle{options.pack ? make_classifier(config, /*initialise=*/false) : init_classifier(config, options.seed),
                     std::move(tokenizer), dir, {}};
  if (options.pack) {
    bundle.report = load_packing(*bundle.model, weights_path, *options.pack, options.require_all_weights,
                                 options.map_embeddings);
  } else {
    LoadWeightsOptions lw;
    lw.require_finite = options.require_all_weights;
    bundle.report = load_weights(*bundle.model, weights_path, lw);
  }
  refuse_missing_weights(*bundle.model, bundle.report, weights_path, options.require_all_weights);
  if (options.pack && !bundle.report.missing.empty()) {  // never drawn at construction: draw them now
    torch::manual_seed(options.seed);
    bundle.model->init_weights(config.initializer_range, &bundle.report.missing);
  }
  if (!bundle.report.missing.empty())
    spdlog::warn("{}: initialised (not in the checkpoint): {}", weights_path.string(), join(bundle.report.missing));
  if (!bundle.report.unused.empty())
    spdlog::info("{}: not used by {}: {}", weights_path.string(), family_config(config.model_type, dir.string()).architecture,
                 join(bundle.report.unused));
  if (config.raw.value("emotune_random_init", false))
    spdlog::warn("{} starts from a RANDOMLY INITIALISED encoder (emotune init), not a pretrained one", dir.string());
  bundle.model->eval();
  if (options.pack) bundle.model->pack_for_inference(*options.pack);
  if (options.products != Products::Libtorch) bundle.model->use_products(options.products);
  return bundle;
}

void save_model_files(const fs::path& dir, SequenceClassifierImpl& model, const text::Tokenizer& tokenizer) {
  util::write_text_atomically(dir / "config.json", model.config.to_classifier_json().dump(2) + "\n");
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (const auto& item : model.named_parameters()) tensors.emplace_back(item.key(), item.value());
  weights::save_safetensors(dir / "model.safetensors", tensors);
  tokenizer.save(dir, family_config(model.config.model_type, dir.string()).tokenizer_class);
}

namespace {

struct ClassifierAndTokenizer {
  SequenceClassifier net;
  text::TokenizerPtr tokenizer;
};

ClassifierAndTokenizer from_base(const NewClassifier& spec) {
  LoadOptions options;
  options.labels = spec.labels;
  options.seed = spec.seed;
  ModelBundle base = load_model_dir(spec.base, options);
  if (base.labels() != spec.labels)
    throw InputError("{base} " + spec.base.string() + " is already a classifier with other labels: give a base checkpoint");
  return {base.model, base.tokenizer};
}

ClassifierAndTokenizer from_config(const NewClassifier& spec) {
  const fs::path config_path = fs::is_directory(spec.config) ? spec.config / "config.json" : spec.config;
  ModelConfig config = ModelConfig::load(config_path);
  config.labels = spec.labels;
  // Marked in config.json, so every command that later loads it (or what is trained from it) says so.
  config.raw["emotune_random_init"] = true;
  fs::path tokenizer_dir = spec.tokenizer_dir.empty() ? config_path.parent_path() : spec.tokenizer_dir;
  if (tokenizer_dir.empty()) tokenizer_dir = ".";
  text::TokenizerPtr tokenizer = text::load_tokenizer(tokenizer_dir);
  if (static_cast<int64_t>(tokenizer->vocab_size()) > config.vocab_size)
    throw InputError("the tokenizer in " + tokenizer_dir.string() + " has " + std::to_string(tokenizer->vocab_size()) +
                     " tokens but vocab_size is " + std::to_string(config.vocab_size));
  return {init_classifier(config, spec.seed), tokenizer};
}

}  // namespace

int64_t write_new_classifier(const NewClassifier& spec, const fs::path& out, bool overwrite) {
  const ClassifierAndTokenizer made = spec.base.empty() ? from_config(spec) : from_base(spec);
  util::write_directory_atomically(out, overwrite,
                                   [&](const fs::path& dir) { save_model_files(dir, *made.net, *made.tokenizer); });
  int64_t params = 0;
  for (const auto& p : made.net->parameters()) params += p.numel();
  return params;
}

}  // namespace emotune::model
