// How every command finds and loads its model, in one place: a --model (or --base) argument resolved
// to a directory here, and the model loaded for inference with the runtime flags (--threads, --device,
// --precision) by infer::load_for_inference, which serve uses too.
#pragma once

#include <string>

#include "infer/predictor.h"

namespace emotune::cli {

// A directory as given, or a hub name ("org/name") through the cache, downloaded unless offline.
// `flag` names the argument in errors ("--model", "--base"). "" stays "".
std::string resolve_model_flag(const std::string& name, bool offline, const char* flag = "--model");

using infer::load_for_inference;  // loading for inference: infer/predictor.h

}  // namespace emotune::cli
