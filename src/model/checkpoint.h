// Hugging Face model directories: config.json + model.safetensors + tokenizer files, in and out.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "model/classifier.h"
#include "text/tokenizer.h"

namespace emotune::model {

// What loading a checkpoint into a model found, as Hugging Face reports it.
struct LoadReport {
  std::vector<std::string> missing;  // model parameters absent from the file (left initialised)
  std::vector<std::string> unused;   // file tensors the model has no use for
};

struct LoadWeightsOptions {
  // Hears each parameter's name right after its values are in.
  std::function<void(const std::string&)> loaded;
  // Parameters to use in place from the file's mapping instead of copying (F32 only; others are
  // copied). They become read-only: for inference.
  std::vector<std::string> map_in_place;
  // Refuse tensors holding NaN or infinity (inference: such a model answers with nonsense).
  bool require_finite = false;
};

// Copies the checkpoint's tensors (model.safetensors or pytorch_model.bin) into `model` by Hugging Face
// name. A base checkpoint saved from the bare encoder (without the "distilbert."/"bert." prefix) is
// accepted, and so are old BERT checkpoints' LayerNorm gamma/beta. A shape that disagrees with the
// config throws, naming the tensor and both shapes.
LoadReport load_weights(SequenceClassifierImpl& model, const std::filesystem::path& weights_path,
                        const LoadWeightsOptions& options = {});

struct LoadOptions {
  // Labels for a checkpoint without id2label (a base checkpoint); ignored when the config has them.
  std::optional<std::vector<std::string>> labels;
  std::uint64_t seed = 42;  // initialises whatever the checkpoint lacks (the head of a base checkpoint)
  std::optional<double> dropout;  // overrides every dropout probability of the config
  // CPU inference only: pack the linear layers for oneDNN in this precision (see pack_for_inference).
  std::optional<Precision> pack;
  // With pack: the word embeddings stay in the weights file's mapping (less memory). A long-lived
  // server copies them instead: a file truncated under a mapping kills the process (SIGBUS).
  bool map_embeddings = true;
  // Training: where the linear layers compute their products (SequenceClassifierImpl::use_products).
  Products products = Products::Libtorch;
  // Every parameter must come from the checkpoint (inference). Otherwise only the classification head
  // (and BERT's pooler, which sentence-transformers checkpoints lack) may be missing and initialised.
  bool require_all_weights = false;
};

// Load options for inference with `precision` = "" or "f32" (float), "bf16" or "int8" on `device`: packed for oneDNN on
// the CPU (int8 needs the CPU; a build without oneDNN runs the plain float layers), plain on a GPU
// (bf16: bfloat16 products over the float32 weights).
LoadOptions inference_options(const std::string& precision, const torch::Device& device);

// Load options for training with `precision` = "" or "f32" (on the CPU: products through oneDNN), or
// "bf16" (bfloat16 products, on a CPU with AVX512_BF16/AMX or a GPU).
LoadOptions training_options(const std::string& precision, const torch::Device& device);

// A classifier and its tokenizer read from a model directory.
struct ModelBundle {
  SequenceClassifier model;
  text::TokenizerPtr tokenizer;
  std::filesystem::path dir;
  LoadReport report;
  const ModelConfig& config() const { return model->config; }
  const std::vector<std::string>& labels() const { return model->config.labels; }
};

ModelBundle load_model_dir(const std::filesystem::path& dir, const LoadOptions& options = {});

// A fresh classifier with Hugging Face's initialisation, seeded.
SequenceClassifier init_classifier(const ModelConfig& config, std::uint64_t seed);

// Writes a complete Hugging Face directory (config.json with id2label/label2id/problem_type,
// F32 model.safetensors, vocab.txt, tokenizer_config.json, special_tokens_map.json) into `dir`.
// The caller makes it atomic (util::write_directory_atomically) where `dir` is the final place.
void save_model_files(const std::filesystem::path& dir, SequenceClassifierImpl& model,
                      const text::Tokenizer& tokenizer);

// What `emotune init` makes: a classifier for `labels` whose encoder comes from the base checkpoint
// `base`, or, when `base` is empty, is freshly initialised from `config` (config.json or its folder)
// with the tokenizer in `tokenizer_dir` (default: the config's folder), marked emotune_random_init.
struct NewClassifier {
  std::filesystem::path base;
  std::filesystem::path config;
  std::filesystem::path tokenizer_dir;
  std::vector<std::string> labels;
  std::uint64_t seed = 42;
};
// Writes it to `out` atomically (replacing an existing `out` only with `overwrite`); returns its
// number of parameters.
int64_t write_new_classifier(const NewClassifier& spec, const std::filesystem::path& out, bool overwrite);

}  // namespace emotune::model
