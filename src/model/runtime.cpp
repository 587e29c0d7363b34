#include "model/runtime.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>

#include <malloc.h>

#include <climits>
#include <stdexcept>
#include <thread>

namespace emotune::model {

void keep_freed_memory() {
  mallopt(M_MMAP_MAX, 0);  // every block from the heap, none mapped and unmapped per call
  mallopt(M_TRIM_THRESHOLD, INT_MAX);  // never shrink the heap
  mallopt(M_TOP_PAD, 64 << 20);  // grow it in large steps
}

int configure_threads(int threads) {
  if (threads < 0) throw std::invalid_argument("--threads must be 0 (all cores) or positive");
  if (threads == 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
  return threads;
}

torch::Device resolve_device(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda") {
    if (!torch::cuda::is_available())
      throw std::runtime_error("--device cuda: this emotune is built with a libtorch without CUDA or no GPU is visible");
    return torch::kCUDA;
  }
  throw std::invalid_argument("--device must be cpu or cuda, not '" + name + "'");
}

}  // namespace emotune::model
