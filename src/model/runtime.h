// Where and how models run: the thread count and the device, chosen once per command.
#pragma once

#include <torch/types.h>

#include <string>

namespace emotune::model {

// Sets libtorch's intra-op threads; 0 means every core (libtorch does not pick that up itself).
int configure_threads(int threads);
// "cpu" or "cuda"; "cuda" is an error when this build of libtorch has no usable GPU.
torch::Device resolve_device(const std::string& name);

}  // namespace emotune::model
