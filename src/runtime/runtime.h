// Where and how models run: the thread count and the device, chosen once per command.
#pragma once

#include <torch/types.h>

#include <optional>
#include <string>

namespace emotune::runtime {

// Makes glibc's malloc keep freed memory for reuse instead of handing it back to the kernel. Every
// forward and backward pass allocates and frees tensors of megabytes (a training step's gradients
// alone are 265 MB); with the defaults, blocks over the dynamic mmap threshold and the top of the heap
// go back to the kernel when freed, and the next step page-faults and zero-fills all of them again.
// libtorch's CPU tensors are then allocated with malloc itself, which reuses those blocks.
// For training: the process then stays at its peak size, which the next step needs again anyway.
// (Not for inference: loading and packing free large blocks in an order that leaves holes, and
// keeping them raised the peak of a one-text `predict` from 375 to 484 MB.)
void keep_freed_memory();
// Sets libtorch's intra-op threads; 0 means every core (libtorch does not pick that up itself). More
// than the machine's CPU threads is refused (std::invalid_argument naming --threads).
int configure_threads(int threads);
// The kernels this process runs on: OpenBLAS's core name ("Haswell", "SkylakeX"; "not OpenBLAS" when
// libtorch's BLAS is another) and oneDNN's instruction set ("avx512_core_vnni", ...).
std::string blas_core_name();
// The OpenBLAS core to ask for (OPENBLAS_CORETYPE) instead of the `chosen` one, when OpenBLAS fell
// back to kernels older than the CPU runs: it does not know every new CPU, and then picks Prescott's
// SSE3 kernels (5x slower products on an AVX-512 Xeon). "SkylakeX" with AVX-512 (F, BW, DQ, VL),
// "Haswell" with AVX2 and FMA; nothing when the choice is already one of those generations.
std::optional<std::string> better_openblas_core(const std::string& chosen, bool avx2_fma, bool avx512);
// That core for this process, when OPENBLAS_CORETYPE is unset and OpenBLAS chose kernels this CPU
// outgrows; else nothing.
std::optional<std::string> better_blas_kernels();
// Once, first thing in main(): when OPENBLAS_CORETYPE is unset and OpenBLAS chose kernels this CPU
// outgrows, says so in one line and runs the program again with the variable set (OpenBLAS reads it
// only when it is loaded, before main).
void rerun_with_better_blas_kernels(char** argv);
// What this emotune runs on, for --version: "libtorch 1.13.0, oneDNN: yes, CUDA: no".
std::string build_summary();
// "cpu" or "cuda"; "cuda" is an error when this build of libtorch has no usable GPU.
torch::Device resolve_device(const std::string& name);

}  // namespace emotune::runtime
