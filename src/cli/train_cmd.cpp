// `emotune train`: fine-tune a checkpoint on GoEmotions (see train/trainer.h).
#include <charconv>
#include <cstdlib>

#include "dist/launcher.h"
#include "fetch/resolve.h"
#include "runtime/runtime.h"
#include "cli/commands.h"
#include "cli/model_flags.h"
#include "train/trainer.h"

namespace emotune::cli {

namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

}  // namespace

void add_train_command(CLI::App& app, Action& action, const Hooks& hooks) {
  auto o = std::make_shared<train::TrainOptions>();
  auto taxonomy = std::make_shared<std::string>("original");
  auto objective = std::make_shared<std::string>("multi-label");
  auto loss = std::make_shared<std::string>("bce");
  auto no_shuffle = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("train", "Fine-tune a DistilBERT, BERT, RoBERTa or MPNet checkpoint on GoEmotions");
  // data
  cmd->add_option("--data-dir", o->data_dir, "GoEmotions directory with train.tsv, dev.tsv, or goemotions (cached download; env EMOTUNE_DATA_DIR)");
  cmd->add_option("--train-file", o->train_file, "Training TSV (instead of DATA_DIR/train.tsv)");
  cmd->add_option("--dev-file", o->dev_file, "Dev TSV (instead of DATA_DIR/dev.tsv)");
  cmd->add_option("--taxonomy", *taxonomy, "original | ekman | sentiment")
      ->check(CLI::IsMember({"original", "ekman", "sentiment"}));
  cmd->add_flag("--skip-bad-lines", o->skip_bad_lines, "Skip and count malformed lines instead of stopping");
  cmd->add_option("--max-length", o->max_length, "Maximum tokens per text")->check(CLI::Range(2, 1 << 20));
  cmd->add_flag("--no-shuffle", *no_shuffle, "Keep file order instead of a seeded shuffle per epoch");
  auto no_calibrate = std::make_shared<bool>(false);
  cmd->add_flag("--no-calibrate", *no_calibrate,
                "At the end, leave the scores uncalibrated (default: calibration.json and thresholds.json fitted on dev)");
  // model
  auto* base = cmd->add_option("--base", o->base_dir, "Base or classifier checkpoint to start from: directory or hub name (env EMOTUNE_BASE_MODEL)");
  auto* model = cmd->add_option("--model", o->model_dir, "Classifier to continue training");
  base->excludes(model);
  // objective
  cmd->add_option("--objective", *objective, "multi-label (sigmoid + BCE) | single-label (softmax, first label)")
      ->check(CLI::IsMember({"multi-label", "single-label"}));
  cmd->add_option("--loss", *loss, "bce | weighted-bce | focal | asl (asymmetric)")
      ->check(CLI::IsMember({"bce", "weighted-bce", "focal", "asl"}));
  cmd->add_option("--focal-gamma", o->focal_gamma, "Focal loss gamma")->check(FiniteNumber)->check(CLI::NonNegativeNumber);
  cmd->add_option("--asl-gamma-neg", o->asl.gamma_neg, "Asymmetric loss: focusing on negatives")->check(FiniteNumber)->check(CLI::NonNegativeNumber);
  cmd->add_option("--asl-gamma-pos", o->asl.gamma_pos, "Asymmetric loss: focusing on positives")->check(FiniteNumber)->check(CLI::NonNegativeNumber);
  cmd->add_option("--asl-clip", o->asl.clip, "Asymmetric loss: probability margin for negatives")->check(FiniteNumber)->check(CLI::Range(0.0, 1.0));
  // optimisation
  cmd->add_option("--lr", o->lr, "Peak learning rate")->check(FiniteNumber)->check(CLI::PositiveNumber);
  cmd->add_option("--batch-size", o->batch_size, "Examples per batch")->check(CLI::PositiveNumber);
  cmd->add_option("--epochs", o->epochs, "Epochs")->check(CLI::PositiveNumber);
  cmd->add_option("--weight-decay", o->weight_decay, "AdamW weight decay (not on biases and LayerNorm weights)")
      ->check(FiniteNumber)->check(CLI::NonNegativeNumber);
  cmd->add_option("--warmup-ratio", o->warmup_ratio, "Warm-up as a fraction of all steps")->check(FiniteNumber)->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--warmup-steps", o->warmup_steps, "Warm-up steps (overrides --warmup-ratio)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-grad-norm", o->max_grad_norm, "Clip the global gradient L2 norm (0 = off)")
      ->check(FiniteNumber)->check(CLI::NonNegativeNumber);
  cmd->add_option("--grad-accum", o->grad_accum, "Batches per optimizer step")->check(CLI::PositiveNumber);
  cmd->add_option("--seed", o->seed, "Seed for head initialisation, shuffling and dropout");
  cmd->add_option("--max-steps", o->max_steps, "Optimizer steps (overrides --epochs)")->check(CLI::PositiveNumber);
  cmd->add_option("--dropout", o->dropout, "Override every dropout probability (0 disables)")->check(FiniteNumber)->check(CLI::Range(0.0, 1.0));
  // the run
  cmd->add_option("--output", o->output, "Output directory")->required();
  cmd->add_flag("--overwrite", o->overwrite, "Replace an existing output directory");
  cmd->add_flag("--resume", o->resume, "Continue from the newest checkpoint in --output");
  cmd->add_option("--log-every", o->log_every, "Steps between metrics.jsonl lines")->check(CLI::PositiveNumber);
  cmd->add_option("--eval-every", o->eval_every, "epoch | N (steps) | none")
      ->check([](const std::string& v) -> std::string {
        if (v == "epoch" || v == "none") return "";
        long long n = 0;
        const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
        if (ec == std::errc() && end == v.data() + v.size() && n > 0) return "";
        if (ec == std::errc::result_out_of_range) return "is too large a number of steps";
        return "must be epoch, none or a positive number of steps";
      });
  cmd->add_option("--save-every", o->save_every, "Steps between checkpoints (0 = epoch ends only)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--save-total-limit", o->save_total_limit, "Checkpoints kept, newest first (0 = all)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--threads", o->threads, "CPU threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--device", o->device, "cpu | cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--precision", o->precision,
                  "f32 | bf16 (bfloat16 products, float32 master weights and optimizer state; CPUs with AVX512_BF16 or AMX, or a GPU)")
      ->check(CLI::IsMember({"f32", "fp32", "bf16"}));
  cmd->add_option("--note", o->note, "A note stored in training_args.json");
  // data-parallel training (torchrun's environment, or the launcher below)
  auto launch = std::make_shared<dist::LauncherOptions>();
  cmd->add_option("--nproc-per-node", launch->nproc_per_node,
                  "Start N worker processes on this host that train together (--batch-size stays the global batch)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--nnodes", launch->nnodes, "Hosts taking part (each runs the same command with its --node-rank)")
      ->check(CLI::Range(1, 65536));
  cmd->add_option("--node-rank", launch->node_rank, "This host's index, 0..nnodes-1")->check(CLI::Range(0, 65535));
  cmd->add_option("--master-addr", launch->master_addr, "Address of node 0, where the ranks meet (default 127.0.0.1)");
  cmd->add_option("--master-port", launch->master_port, "Port on node 0 (default: a free one on one host, 29500 on several)")
      ->check(CLI::Range(1, 65535));
  cmd->add_option("--dist-backend", o->dist_backend, "gloo (CPU) | nccl (CUDA)")->check(CLI::IsMember({"gloo", "nccl"}));
  auto secret_file = std::make_shared<std::string>();
  cmd->add_option("--dist-secret-file", *secret_file,
                  "File holding the run's shared secret (mode 600; needed on several hosts; or set EMOTUNE_DIST_SECRET)");
  cmd->add_option("--dist-timeout", o->dist_timeout_s, "Seconds a rank waits for the others before giving up with an error")
      ->check(CLI::Range(1, 86400));
  auto offline = std::make_shared<bool>(false);
  add_offline_flag(cmd, *offline);
  cmd->callback([=, &action] {
    o->taxonomy = data::parse_taxonomy(*taxonomy);
    o->objective = train::parse_objective(*objective);
    o->loss = train::parse_loss(*loss);
    o->shuffle = !*no_shuffle;
    o->calibrate = !*no_calibrate;
    o->on_step = hooks.on_train_step;
    if (o->base_dir.empty() && o->model_dir.empty() && !o->resume) o->base_dir = env_or("EMOTUNE_BASE_MODEL", "");
    if (o->data_dir.empty() && o->train_file.empty()) o->data_dir = env_or("EMOTUNE_DATA_DIR", "");
    const bool launching = launch->nproc_per_node > 0;
    if (!launching && (launch->nnodes != 1 || launch->node_rank != 0 || !launch->master_addr.empty() || launch->master_port))
      throw CLI::ValidationError("--nnodes, --node-rank, --master-addr and --master-port go with --nproc-per-node");
    if (launching && std::getenv("WORLD_SIZE"))
      throw CLI::ValidationError("--nproc-per-node: this process is already a rank of a launched run (WORLD_SIZE is set)");
    // The ranks read it from the environment (dist::rendezvous_secret): the launcher's workers inherit it.
    if (!secret_file->empty()) {
      ::setenv("EMOTUNE_DIST_SECRET_FILE", secret_file->c_str(), 1);
      ::unsetenv("EMOTUNE_DIST_SECRET");  // the flag wins over the variable
    }
    action = [o, offline, launch, launching] {
      const auto fo = fetch::cli_fetch_options(*offline);
      o->base_dir = resolve_model_flag(o->base_dir, *offline, "--base");
      o->model_dir = resolve_model_flag(o->model_dir, *offline, "--model");
      o->data_dir = fetch::resolve_data_dir(o->data_dir, fo).string();
      // The launcher fetches once; its workers then find the model and data in the cache.
      if (launching) return dist::run_workers(*launch);
      runtime::keep_freed_memory();
      return train::run_training(*o);
    };
  });
}

}  // namespace emotune::cli
