#include "benchmark/throughput.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <torch/cuda.h>

#include "data/batch.h"
#include "data/goemotions.h"
#include "kernels/onednn_matmul.h"
#include "kernels/packed_linear.h"
#include "model/checkpoint.h"
#include "runtime/runtime.h"
#include "train/step.h"
#include "util/errors.h"

namespace emotune::benchmark {

namespace {

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

}  // namespace

nlohmann::ordered_json measure_throughput(const ThroughputOptions& a) {
  if (a.mode != "train" && a.mode != "infer") throw SettingError("{mode} must be train or infer, not " + a.mode);
  runtime::configure_threads(a.threads);
  const torch::Device device = runtime::resolve_device(a.device);
  const kernels::Precision precision = kernels::parse_precision(a.precision);
  if (a.mode == "train" && precision == kernels::Precision::Int8)
    throw SettingError("{precision} int8 is for inference: measure it in infer mode");
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
    real += static_cast<double>(mb.inputs.real_tokens);
    padded += static_cast<double>(mb.inputs.input_ids.numel());
    // Executed work only: each text's own tokens (no padding), the last layer's skipped rows left out;
    // a training step's backward pass is counted as twice its forward.
    const auto lengths = mb.inputs.attention_mask.sum(1).to(torch::kCPU);
    for (int64_t i = 0; i < lengths.size(0); ++i)
      flops += bundle.config().classifier_forward_flops(static_cast<double>(lengths[i].item<int64_t>())) *
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
  return out;
}

}  // namespace emotune::benchmark
