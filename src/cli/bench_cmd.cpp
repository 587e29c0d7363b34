// `emotune bench (train|infer)`: throughput on random GoEmotions batches (benchmark/throughput.h);
// one JSON line.
#include <iostream>

#include "benchmark/throughput.h"
#include "cli/commands.h"
#include "cli/model_flags.h"

namespace emotune::cli {

void add_bench_command(CLI::App& app, Action& action) {
  auto a = std::make_shared<benchmark::ThroughputOptions>();
  auto offline = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("bench", "Measure training or inference throughput on random batches");
  cmd->add_option("mode", a->mode, "train | infer")->required()->check(CLI::IsMember({"train", "infer"}));
  cmd->add_option("--model", a->model_dir, "Model directory (28 GoEmotions labels)")->required();
  cmd->add_option("--data", a->data, "GoEmotions TSV to draw batches from")->required();
  cmd->add_option("--steps", a->steps, "Timed steps")->check(CLI::PositiveNumber);
  cmd->add_option("--warmup", a->warmup, "Untimed steps first")->check(CLI::NonNegativeNumber);
  cmd->add_option("--batch-size", a->batch_size, "Examples per batch")->check(CLI::PositiveNumber);
  cmd->add_option("--max-length", a->max_length, "Maximum tokens per text (default: 128, or the model's positions if fewer)")
      ->check(CLI::Range(2, 512));
  cmd->add_option("--seed", a->seed, "Seed of the batch draw");
  cmd->add_option("--threads", a->threads, "CPU threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--device", a->device, "cpu | cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  add_precision_options(cmd, a->precision);
  cmd->add_option("--products", a->products,
                  "train in f32: the linear layers' products through onednn (as `emotune train` runs) or libtorch's blas")
      ->check(CLI::IsMember({"onednn", "blas"}));
  add_offline_flag(cmd, *offline);
  cmd->callback([a, offline, &action] {
    action = [a, offline] {
      a->model_dir = resolve_model_flag(a->model_dir, *offline, "--model");
      std::cout << benchmark::measure_throughput(*a).dump() << std::endl;
      return 0;
    };
  });
}

}  // namespace emotune::cli
