// One optimizer step of fine-tuning, shared by the training loop and the benchmark:
// forward and backward over micro-batches, global-norm clipping, AdamW at the scheduled rate.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/batch.h"
#include "dist/gradients.h"
#include "dist/group.h"
#include "model/classifier.h"
#include "train/objective.h"
#include "train/optimizer.h"

namespace emotune::train {

struct MicroBatch {
  data::PaddedBatch inputs;   // undefined tensors when this rank's share of the micro-batch is empty
  torch::Tensor targets;      // [B, L] multi-hot
  torch::Tensor first_label;  // [B] int64
  // This process's share of the micro-batch's rows (1 in a run of one process): its mean loss counts
  // that much, so that the ranks' gradients sum to the gradient of the whole micro-batch.
  double share = 1.0;
};

// The micro-batch of dataset rows rows[0..n), holding `share` of the whole micro-batch.
MicroBatch make_micro_batch(const data::EncodedDataset& ds, const std::size_t* rows, std::size_t n, int64_t num_labels,
                            std::int32_t pad_id, double share = 1.0);

// A loss, gradient or score that is NaN or infinite: the run has diverged. Thrown before the update
// that would have spread it into the weights.
struct NonFiniteError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class StepRunner {
 public:
  // With a group of several ranks, each step sums the ranks' gradients before clipping; every rank
  // then applies the same update.
  StepRunner(model::SequenceClassifier model, Loss loss, double weight_decay, double max_grad_norm,
             torch::Device device, dist::Group* group = nullptr);

  // Runs one update over `micro` (gradients averaged over them; with a group, `micro` is this rank's
  // share of each micro-batch); returns the mean loss over all ranks and sets grad_norm.
  // A non-finite loss or gradient norm throws NonFiniteError on every rank and leaves the weights as they were.
  double step(const std::vector<MicroBatch>& micro, double lr, double& grad_norm);

  AdamW& optimizer() { return *opt_; }
  const std::vector<std::string>& param_names() const { return names_; }
  const std::vector<torch::Tensor>& params() const { return params_; }

 private:
  model::SequenceClassifier model_;
  Loss loss_;
  double max_grad_norm_;
  torch::Device device_;
  dist::Group* group_;
  std::unique_ptr<dist::GradientReducer> reducer_;
  std::vector<std::string> names_;
  std::vector<torch::Tensor> params_;
  std::unique_ptr<AdamW> opt_;
};

}  // namespace emotune::train
