#include "cli/model_flags.h"

#include "fetch/resolve.h"
#include "runtime/runtime.h"

namespace emotune::cli {

std::string resolve_model_flag(const std::string& name, bool offline, const char* flag) {
  return fetch::resolve_model(name, fetch::cli_fetch_options(offline), flag).string();
}

InferenceModel load_for_inference(const std::string& model_dir, int threads, const std::string& device,
                                  const std::string& precision) {
  const auto streams = static_cast<std::size_t>(runtime::configure_threads(threads));
  const torch::Device on = runtime::resolve_device(device);
  return {streams, on, model::load_model_dir(model_dir, model::inference_options(precision, on))};
}

}  // namespace emotune::cli
