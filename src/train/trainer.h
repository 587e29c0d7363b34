// `emotune train`: fine-tuning with the Hugging Face Trainer recipe (AdamW, linear schedule,
// gradient clipping), evaluation on dev, the best model kept, and checkpoints that resume exactly.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "data/labels.h"
#include "train/objective.h"

namespace emotune::train {

// Where a run is, after an optimizer step.
struct StepProgress {
  int64_t step = 0, total_steps = 0;
  int64_t epoch = 0, epochs = 0;  // 1-based
  double loss = 0;                // this step's
  double examples_per_s = 0;
};

struct TrainOptions {
  // data
  std::string data_dir, train_file, dev_file;
  data::Taxonomy taxonomy = data::Taxonomy::original;
  bool skip_bad_lines = false;
  std::optional<std::size_t> max_length;  // default: 128, or the model's maximum when smaller
  bool shuffle = true;
  // model: a base checkpoint (head initialised when absent) or a classifier to continue
  std::string base_dir, model_dir;
  // objective
  Objective objective = Objective::multi_label;
  LossKind loss = LossKind::bce;
  double focal_gamma = 2.0;
  AsymmetricLossOptions asl;
  // optimisation
  double lr = 2e-5;
  std::size_t batch_size = 16;
  int64_t epochs = 3;
  double weight_decay = 0.0;
  double warmup_ratio = 0.0;
  std::optional<int64_t> warmup_steps;
  double max_grad_norm = 1.0;
  int64_t grad_accum = 1;
  std::uint64_t seed = 42;
  std::optional<int64_t> max_steps;
  std::optional<double> dropout;
  // the run
  std::string output;
  bool overwrite = false;
  bool resume = false;
  int64_t log_every = 50;
  std::string eval_every = "epoch";  // "epoch" | N steps | "none"
  int64_t save_every = 0;            // steps; 0 = at epoch ends only
  int64_t save_total_limit = 2;      // checkpoints kept (newest); 0 = all
  std::size_t eval_batch_size = 64;
  int threads = 0;
  std::string device = "cpu";
  std::string precision;  // "" or "f32"; "bf16": bfloat16 products, float32 master weights and optimizer state
  // data-parallel runs: each process launched with torchrun's environment (RANK, WORLD_SIZE, ...)
  // joins the others; --batch-size stays the global batch, split over the ranks
  std::string dist_backend = "gloo";
  int dist_timeout_s = 300;
  std::string note;  // a label written into training_args.json (e.g. "random-init demo")
  // at the end, with a dev set and the multi-label objective: calibration.json and thresholds.json
  // fitted on dev (eval/calibrate.h) in the output directory
  bool calibrate = true;
  // Told after every optimizer step on the rank that writes (the Python package's progress bar).
  // When set, the one-line display the trainer keeps on a terminal stays off (log lines remain).
  std::function<void(const StepProgress&)> on_step;
};

// Runs the whole fine-tuning; returns 0, or 130 when stopped by SIGINT/SIGTERM after saving.
int run_training(const TrainOptions& options);

}  // namespace emotune::train
