#include "runtime/runtime.h"

#include <ATen/Parallel.h>
#include <c10/core/CPUAllocator.h>
#include <malloc.h>
#include <torch/cuda.h>
#include <torch/version.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "kernels/packed_linear.h"
#include "util/errors.h"

// Resolved when libtorch's BLAS is OpenBLAS (Debian's alternatives), null otherwise.
extern "C" char* openblas_get_corename(void) __attribute__((weak));

namespace emotune::runtime {

namespace {

// libtorch's CPU allocator on plain malloc, aligned by hand to 64 bytes. libtorch's own calls
// posix_memalign, which in glibc 2.36 does not reuse a freed block of the same size: with the heap
// kept, every large tensor (the word embeddings' gradient, each step) lands on fresh pages.
struct HeapAllocator final : c10::Allocator {
  static constexpr std::size_t kAlignment = 64;

  static void release(void* p) {
    if (p) std::free(static_cast<void**>(p)[-1]);  // the block malloc gave, stored just before p
  }

#if TORCH_VERSION_MAJOR >= 2
  c10::DataPtr allocate(std::size_t n) override { return allocate_block(n); }
  void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }
#else
  c10::DataPtr allocate(std::size_t n) const override { return allocate_block(n); }
#endif

  static c10::DataPtr allocate_block(std::size_t n) {
    void* block = std::malloc(n + kAlignment + sizeof(void*));
    if (!block) throw std::bad_alloc();
    const auto start = reinterpret_cast<std::uintptr_t>(block) + sizeof(void*);
    void* p = reinterpret_cast<void*>((start + kAlignment - 1) & ~(kAlignment - 1));
    static_cast<void**>(p)[-1] = block;
    return {p, p, &release, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &release; }
};

}  // namespace

void keep_freed_memory() {
  mallopt(M_MMAP_MAX, 0);  // every block from the heap, none mapped and unmapped per call
  mallopt(M_TRIM_THRESHOLD, INT_MAX);  // never shrink the heap
  mallopt(M_TOP_PAD, 64 << 20);  // grow it in large steps
  // Lives as long as the process: tensors it gave may outlive any scope that could own it.
  static HeapAllocator allocator;
  c10::SetCPUAllocator(&allocator, /*priority=*/1);
}

int configure_threads(int threads) {
  if (threads < 0) throw std::invalid_argument("{threads} must be 0 (all cores) or positive");
  const int cpus = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  // More threads than CPUs never computes faster, and OpenMP's spinning threads can all but stop
  // (1000 threads on 2 cores did not finish one text).
  if (threads > cpus)
    throw std::invalid_argument("{threads} " + std::to_string(threads) + " is more than this machine's " +
                                std::to_string(cpus) + " CPU threads (use 0 for all of them)");
  if (threads == 0) threads = cpus;
  at::set_num_threads(threads);
  return threads;
}

std::string blas_core_name() { return openblas_get_corename ? openblas_get_corename() : "not OpenBLAS"; }

std::optional<std::string> better_openblas_core(const std::string& chosen, bool avx2_fma, bool avx512) {
  static const char* const pre_avx2[] = {"katmai",   "coppermine", "northwood",   "prescott",  "banias",    "atom",
                                         "core2",    "penryn",     "dunnington",  "nehalem",   "opteron",   "barcelona",
                                         "bobcat",   "sandybridge", "bulldozer",  "piledriver", "steamroller",
                                         "excavator", "unknown"};
  std::string name = chosen;
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  const bool old = std::find(std::begin(pre_avx2), std::end(pre_avx2), name) != std::end(pre_avx2);
  if (!old || !avx2_fma) return std::nullopt;
  return avx512 ? "SkylakeX" : "Haswell";
}

std::optional<std::string> better_blas_kernels() {
  if (std::getenv("OPENBLAS_CORETYPE") || !openblas_get_corename) return std::nullopt;
  __builtin_cpu_init();
  const bool avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  return better_openblas_core(blas_core_name(), avx2_fma, avx512);
}

void rerun_with_better_blas_kernels(char** argv) {
  const auto better = better_blas_kernels();
  if (!better) return;
  std::fprintf(stderr, "emotune: OpenBLAS chose its %s kernels on this CPU; running with OPENBLAS_CORETYPE=%s\n",
               blas_core_name().c_str(), better->c_str());
  ::setenv("OPENBLAS_CORETYPE", better->c_str(), 1);
  ::execv("/proc/self/exe", argv);  // returns only on failure: then carry on with OpenBLAS's choice
}

std::string build_summary() {
  const int gpus = torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
  return "libtorch " + std::string(TORCH_VERSION) + ", oneDNN: " + (kernels::built_with_onednn() ? "yes" : "no") +
         ", CUDA: " + (gpus > 0 ? std::to_string(gpus) + " GPU(s) visible" : "no GPU visible");
}

torch::Device resolve_device(const std::string& name) {
  if (name == "cpu") return torch::kCPU;
  if (name == "cuda") {
    if (!torch::cuda::is_available())
      throw InputError("{device} cuda: this emotune is built with a libtorch without CUDA or no GPU is visible");
    return torch::kCUDA;
  }
  throw std::invalid_argument("{device} must be cpu or cuda, not '" + name + "'");
}

}  // namespace emotune::runtime
