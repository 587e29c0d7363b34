// Throughput of training steps or inference passes on random GoEmotions batches, padded to each
// batch's longest text as Hugging Face's collator pads them (`emotune bench`). bench/pytorch_bench.py
// draws the same batches (splitmix64 over the seed), so the two can be compared in one run.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace emotune::benchmark {

struct ThroughputOptions {
  std::string mode;       // train | infer
  std::string model_dir;  // a 28-label GoEmotions classifier
  std::string data;       // GoEmotions TSV the batches are drawn from
  int64_t steps = 20;     // timed
  int64_t warmup = 2;     // untimed, first
  std::size_t batch_size = 16;
  std::size_t max_length = 0;  // 0: 128, or the model's positions if fewer
  std::uint64_t seed = 0;
  int threads = 0;             // 0: all cores
  std::string precision;       // "" | f32 | bf16 | int8 (infer only)
  std::string products = "onednn";  // train in f32: linear layers' products through oneDNN or libtorch's "blas"
  std::string device = "cpu";
};

// Runs the steps and returns one JSON object: examples, tokens and GFLOP per second, step times
// (p50, p99), this machine's GEMM rates on the model's shape, the kernels used and the peak RSS.
nlohmann::ordered_json measure_throughput(const ThroughputOptions& options);

}  // namespace emotune::benchmark
