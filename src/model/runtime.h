// Where and how models run: the thread count and the device, chosen once per command.
#pragma once

#include <torch/types.h>

#include <string>

namespace emotune::model {

// Makes glibc's malloc keep freed memory for reuse instead of handing it back to the kernel. Every
// forward and backward pass allocates and frees tensors of megabytes (a training step's gradients
// alone are 265 MB); with the defaults, blocks over the dynamic mmap threshold and the top of the heap
// go back to the kernel when freed, and the next step page-faults and zero-fills all of them again.
// For training: the process then stays at its peak size, which the next step needs again anyway.
// (Not for inference: loading and packing free large blocks in an order that leaves holes, and
// keeping them raised the peak of a one-text `predict` from 375 to 484 MB.)
void keep_freed_memory();
// Sets libtorch's intra-op threads; 0 means every core (libtorch does not pick that up itself).
int configure_threads(int threads);
// The kernels this process runs on: OpenBLAS's core name ("Haswell", "SkylakeX"; "not OpenBLAS" when
// libtorch's BLAS is another) and oneDNN's instruction set ("avx512_core_vnni", ...).
std::string blas_core_name();
std::string onednn_isa_name();
// "cpu" or "cuda"; "cuda" is an error when this build of libtorch has no usable GPU.
torch::Device resolve_device(const std::string& name);

}  // namespace emotune::model
