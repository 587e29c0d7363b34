// "A sequence classifier": what commands, training, inference and checkpoints see of a model,
// whatever its family. Each family (model/distilbert.h, model/bert.h) implements it with Hugging
// Face's module and parameter names, so a state dict maps one to one.
#pragma once

#include <torch/nn.h>

#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/kernels.h"

namespace emotune::model {

struct TokenLayout;

struct SequenceClassifierImpl : torch::nn::Module {
  explicit SequenceClassifierImpl(ModelConfig c) : config(std::move(c)) {}

  // input_ids, attention_mask [batch, seq] (int64) -> logits [batch, num_labels]
  virtual torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask) = 0;
  // Hugging Face's forward(inputs_embeds=...): the word vectors [batch, seq, hidden] given in place of
  // the word-embedding rows of the ids (explanations move them between a text and a baseline).
  // Positions are 0, 1, ... of each sequence as with ids (RoBERTa: from padding_idx + 1).
  virtual torch::Tensor forward_embeds(const torch::Tensor& inputs_embeds, const torch::Tensor& attention_mask) = 0;
  // The base model's last hidden states (Hugging Face's DistilBertModel, BertModel, ...): packed
  // [tokens, hidden], or with first_only each sequence's position-0 row only, [batch, hidden].
  virtual torch::Tensor encode(const torch::Tensor& input_ids, const TokenLayout& layout, bool first_only) = 0;
  // Hugging Face's get_input_embeddings(): the word-embedding table [vocab, hidden].
  virtual torch::nn::Embedding input_embeddings() = 0;

  // Hugging Face's base_model_prefix ("distilbert", "bert"): the encoder's parameters are named
  // "<prefix>.…", and a base checkpoint saved from the bare encoder has them without it.
  virtual std::string base_model_prefix() const = 0;
  // Number of encoder blocks; block i's parameters are named block_prefix() + "i.…".
  virtual std::size_t num_blocks() const = 0;
  virtual std::string block_prefix() const = 0;
  // Packs encoder block i for inference (see pack_for_inference); a second call does nothing.
  virtual void pack_block(std::size_t i, Precision precision) = 0;

  // Hugging Face's _init_weights: normal(0, initializer_range) for linear and embedding weights,
  // zero biases and padding row, LayerNorm at identity. Uses torch's global generator. With `only`,
  // just the modules holding one of those parameter names.
  void init_weights(double initializer_range, const std::vector<std::string>* only = nullptr);

  // Every linear layer's products from here on (Linear::use_products; one oneDNN matmul shared by all).
  void use_products(Products products);

  // CPU inference from here on: every linear layer packed for oneDNN (kernels/packed_linear.h), the
  // encoder's in `precision` (Int8: dynamic int8), the small head in float. The plain weights are
  // released, so the model can no longer train or be saved.
  void pack_for_inference(Precision precision);

  ModelConfig config;
};

using SequenceClassifier = std::shared_ptr<SequenceClassifierImpl>;

// A classifier of the family config.model_type names. initialise = false leaves the linear layers'
// and the word embeddings' tensors uninitialised (not even touched), for weights loaded next; the
// small ones are initialised anyway.
SequenceClassifier make_classifier(const ModelConfig& config, bool initialise = true);

}  // namespace emotune::model
