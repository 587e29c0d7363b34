// How every command finds and loads its model, in one place: a --model (or --base) argument resolved
// to a directory here, and the model loaded for inference with the runtime flags (--threads, --device,
// --precision) by infer::load_for_inference, which serve uses too.
#pragma once

#include <string>

#include <CLI/CLI.hpp>

#include "infer/predictor.h"

namespace emotune::cli {

// A directory as given, or a hub name ("org/name") through the cache, downloaded unless offline.
// `flag` names the argument in errors ("--model", "--base"). "" stays "".
std::string resolve_model_flag(const std::string& name, bool offline, const char* flag = "--model");

using infer::load_for_inference;  // loading for inference: infer/predictor.h

// --long-text, --window-stride, --window-combine: what predict, eval, serve and monitor do with texts
// longer than the model's window.
struct LongTextFlags {
  std::string mode = "truncate";
  std::size_t stride = 0;
  std::string combine = "max";
  infer::LongTextOptions options() const {
    return {infer::parse_long_text(mode), stride, infer::parse_window_combine(combine)};
  }
};
void add_long_text_options(CLI::App* cmd, LongTextFlags& flags);

}  // namespace emotune::cli
