// How every command finds and loads its model, in one place: a --model (or --base) argument resolved
// to a directory, and the model loaded for inference with the runtime flags (--threads, --device,
// --precision).
#pragma once

#include <torch/types.h>

#include <cstddef>
#include <string>

#include "model/checkpoint.h"

namespace emotune::cli {

// A directory as given, or a hub name ("org/name") through the cache, downloaded unless offline.
// `flag` names the argument in errors ("--model", "--base"). "" stays "".
std::string resolve_model_flag(const std::string& name, bool offline, const char* flag = "--model");

struct InferenceModel {
  std::size_t streams;  // forward passes at once: the threads configured
  torch::Device device;
  model::ModelBundle bundle;
};
// Configures threads and device, then loads `model_dir` packed for inference in `precision`.
InferenceModel load_for_inference(const std::string& model_dir, int threads, const std::string& device,
                                  const std::string& precision);

}  // namespace emotune::cli
