#include "model/classifier.h"

#include <algorithm>

#include "model/family.h"

namespace emotune::model {

namespace nn = torch::nn;

void SequenceClassifierImpl::init_weights(double std, const std::vector<std::string>* only) {
  torch::NoGradGuard no_grad;
  for (auto& named : named_modules(/*name_prefix=*/"", /*include_self=*/false)) {
    const std::string& name = named.key();
    const auto& m = named.value();
    if (only && std::none_of(only->begin(), only->end(), [&](const std::string& p) {
          return p == name + ".weight" || p == name + ".bias";
        }))
      continue;
    if (auto* lin = m->as<Linear>()) {
      lin->weight.normal_(0.0, std);
      lin->bias.zero_();
    } else if (auto* emb = m->as<nn::Embedding>()) {
      emb->weight.normal_(0.0, std);
      if (emb->options.padding_idx()) emb->weight[*emb->options.padding_idx()].zero_();
    } else if (auto* ln = m->as<nn::LayerNorm>()) {
      ln->weight.fill_(1.0);
      ln->bias.zero_();
    }
  }
}

void SequenceClassifierImpl::pack_for_inference(Precision precision) {
  eval();
  for (std::size_t i = 0; i < num_blocks(); ++i) pack_block(i, precision);
  // What is left unpacked is the head (and a pooler): small, kept in float.
  for (auto& m : modules(/*include_self=*/false))
    if (auto* lin = m->as<Linear>(); lin && !lin->packed() && lin->weight.numel() > 0) lin->pack(Precision::Float32);
}

void SequenceClassifierImpl::use_products(Products products) {
  const auto mm = products == Products::OnednnF32 ? std::make_shared<const kernels::OnednnMatmul>() : nullptr;
  for (auto& m : modules(/*include_self=*/false))
    if (auto* lin = m->as<Linear>()) lin->use_products(products, mm);
}

SequenceClassifier make_classifier(const ModelConfig& config, bool initialise) {
  return find_family(config.model_type, "config").make(config, initialise);
}

}  // namespace emotune::model
