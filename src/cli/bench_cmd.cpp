// `emotune bench (train|infer)`: throughput on random GoEmotions batches, padded to each batch's
// longest text as Hugging Face's collator pads them; one JSON line. bench/pytorch_bench.py draws
// the same batches (splitmix64 over the seed), so the two can be compared in one run.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <torch/cuda.h>

#include "cli/commands.h"
#include "cli/model_flags.h"
#include "data/batch.h"
#include "model/checkpoint.h"
#include "kernels/onednn_matmul.h"
#include "kernels/packed_linear.h"
#include "runtime/runtime.h"
#include "train/step.h"

namespace emotune::cli {

namespace {

struct BenchArgs {
  std::string mode;
  std::string model_dir;
  std::string data;
  int64_t steps = 20;
  int64_t warmup = 2;
  std::size_t batch_size = 16;
  std::size_t max_length = 0;  // 0: 128, or the model's positions if fewer
  std::uint64_t seed = 0;
  int threads = 0;
  std::string precision;
  std::string products = "onednn";  // train in f32: the linear layers' products through oneDNN or libtorch's BLAS
  std::string device = "cpu";
  bool offline = false;
};

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Waits for the device's queued work, so that a clock read afterwards times it.
void finish_queued_work(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

// This machine's rate in GFLOP/s for `product` on the shape of the model's largest products
// ([tokens, hidden] x [hidden, intermediate] with a few hundred tokens, as in a training batch),
// operands in `dtype` on `device`.
template <typename Product>
double gemm_gflops(const model::ModelConfig& c, torch::ScalarType dtype, Product product,
                   const torch::Device& device = torch::kCPU) {
  torch::NoGradGuard no_grad;
  const int64_t m = 512;
  const auto x = torch::randn({m, c.hidden_size}).to(device, dtype);
  const auto w = torch::randn({c.intermediate_size, c.hidden_size}).to(device, dtype);
  for (int i = 0; i < 3; ++i) (void)product(x, w.t());
  const int reps = 20;
  finish_queued_work(device);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < reps; ++i) (void)product(x, w.t());
  finish_queued_work(device);
  const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return 2.0 * static_cast<double>(m * c.hidden_size * c.intermediate_size) * reps / dt / 1e9;
}

int bench(const BenchArgs& a) {
  if (a.mode != "train" && a.mode != "infer") throw SettingError("bench mode must be train or infer");
  runtime::configure_threads(a.threads);
  const torch::Device device = runtime::resolve_device(a.device);
  const kernels::Precision precision = kernels::parse_precision(a.precision);
  if (a.mode == "train" && precision == kernels::Precision::Int8)
    throw SettingError("--precision int8 and --quantize are for inference (bench infer)");
  if (a.mode == "train" && device.is_cpu()) runtime::keep_freed_memory();  // as `emotune train` runs
  // Inference packs the model for oneDNN on the CPU, as predict, eval and serve do; training keeps it plain.
  model::LoadOptions load = a.mode == "infer" ? model::inference_options(a.precision, device)
                                              : model::training_options(a.precision, device);
  if (a.products == "blas" && load.products == kernels::Products::OnednnF32) load.products = kernels::Products::Libtorch;
  model::ModelBundle bundle = model::load_model_dir(a.model_dir, load);
  bundle.model->to(device);
  const std::size_t max_length = bundle.config().choose_max_length(a.max_length, 128);  // train's default
  const auto ds = data::read_goemotions_tsv(a.data, data::Taxonomy::original, false);
  const auto enc = data::encode_dataset(ds, *bundle.tokenizer, max_length);
  const auto L = static_cast<int64_t>(bundle.labels().size());
  if (L != 28) throw InputError("bench needs a 28-label GoEmotions model");

  auto batch_rows = [&](int64_t k) {
    std::vector<std::size_t> rows(a.batch_size);
    for (std::size_t j = 0; j < a.batch_size; ++j)
      rows[j] = splitmix64(a.seed * 1000003ULL + static_cast<std::uint64_t>(k) * a.batch_size + j) % enc.size();
    return rows;
  };
  // The optimizer's moments double the model's memory: only training builds them.
  std::unique_ptr<train::StepRunner> runner;
  if (a.mode == "train") runner = std::make_unique<train::StepRunner>(bundle.model, train::Loss{}, 0.0, 1.0, device);
  double real = 0, padded = 0, flops = 0, seconds = 0;
  std::vector<double> step_ms;
  for (int64_t k = 0; k < a.warmup + a.steps; ++k) {
    const auto rows = batch_rows(k);
    const auto mb = train::make_micro_batch(enc, rows.data(), rows.size(), L, bundle.tokenizer->pad_id());
    const auto t0 = std::chrono::steady_clock::now();
    if (a.mode == "train") {
      double norm = 0;
      runner->step({mb}, 2e-5, norm);
    } else {
      torch::InferenceMode inference;
      bundle.model->eval();
      (void)bundle.model->forward(mb.inputs.input_ids.to(device), mb.inputs.attention_mask.to(device));
    }
    finish_queued_work(device);
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (k < a.warmup) continue;
    seconds += dt;
    step_ms.push_back(dt * 1e3);
    const double seq = static_cast<double>(mb.inputs.input_ids.size(1));
    real += static_cast<double>(mb.inputs.real_tokens);
    padded += static_cast<double>(mb.inputs.input_ids.numel());
    flops += static_cast<double>(mb.inputs.real_tokens) * bundle.config().forward_flops_per_token(seq) *
             (a.mode == "train" ? 3.0 : 1.0);
  }
  // float32: libtorch's BLAS (or the GPU's cuBLAS) and oneDNN; the useful fraction is of the faster one.
  auto torch_mm = [](const torch::Tensor& x, const torch::Tensor& w) { return torch::mm(x, w); };
  const double blas_sgemm = gemm_gflops(bundle.config(), torch::kFloat32, torch_mm, device);
  const double onednn_sgemm = device.is_cpu() && kernels::built_with_onednn()
                                  ? gemm_gflops(bundle.config(), torch::kFloat32, kernels::OnednnMatmul())
                                  : 0.0;
  const double sgemm = std::max(blas_sgemm, onednn_sgemm);
  auto percentile = [&](double q) {  // nearest rank
    std::vector<double> sorted = step_ms;
    std::sort(sorted.begin(), sorted.end());
    return sorted[std::min(sorted.size() - 1, static_cast<std::size_t>(q * static_cast<double>(sorted.size())))];
  };
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  nlohmann::ordered_json out{{"mode", a.mode},
                                   {"impl", "emotune"},
                                   {"batch_size", a.batch_size},
                                   {"steps", a.steps},
                                   {"threads", at::get_num_threads()},
                                   {"device", device.str()},
                                   {"examples_per_s", a.steps * static_cast<double>(a.batch_size) / seconds},
                                   {"tokens_per_s", real / seconds},
                                   {"padded_tokens_per_s", padded / seconds},
                                   {"gflops_per_s", flops / seconds / 1e9},
                                   {"step_ms_p50", percentile(0.5)},
                                   {"step_ms_p99", percentile(0.99)},
                                   {"sgemm_gflops_per_s", blas_sgemm},
                                   {"onednn_sgemm_gflops_per_s", onednn_sgemm},
                                   {"useful_fraction_of_sgemm", flops / seconds / 1e9 / sgemm},
                                   {"quantize", precision == kernels::Precision::Int8 ? "int8" : "none"},
                                   {"precision", kernels::precision_name(precision)},
                                   {"model_type", bundle.config().model_type},
                                   {"blas_core", runtime::blas_core_name()},
                                   {"onednn_isa", kernels::onednn_isa_name()},
                                   {"peak_rss_mb", static_cast<double>(ru.ru_maxrss) / 1024.0}};
  if (a.mode == "train") out["products"] = kernels::products_name(load.products);
  if (a.mode == "train" && precision == kernels::Precision::BFloat16) {
    const double bf16_gemm = gemm_gflops(bundle.config(), torch::kBFloat16, torch_mm, device);
    out["bf16_gemm_gflops_per_s"] = bf16_gemm;
    out["useful_fraction_of_bf16_gemm"] = flops / seconds / 1e9 / bf16_gemm;
  }
  std::cout << out.dump() << std::endl;
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& app, Action& action) {
  auto a = std::make_shared<BenchArgs>();
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
  add_offline_flag(cmd, a->offline);
  cmd->callback([a, &action] {
    action = [a] {
      a->model_dir = resolve_model_flag(a->model_dir, a->offline, "--model");
      return bench(*a);
    };
  });
}

}  // namespace emotune::cli
