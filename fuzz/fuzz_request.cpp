// POST /v1/predict and /v1/explain bodies: parsed, or refused with an HTTP error.
#include <cstdint>
#include <string_view>

#include "serve/request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace emotune::serve;
  for (bool can_group : {false, true}) {
    try {
      const auto r = parse_predict_request(std::string_view(reinterpret_cast<const char*>(data), size), {4, 64, can_group});
      if (r.texts.empty() || r.texts.size() > 4) __builtin_trap();
    } catch (const HttpError& e) {
      if (e.status < 400 || e.status > 499) __builtin_trap();
    }
    try {
      const auto r = parse_explain_request(std::string_view(reinterpret_cast<const char*>(data), size), {4, 64, can_group}, 8);
      if (r.predict.texts.empty() || r.steps < 1 || r.steps > 8 || r.predict.taxonomy != "original") __builtin_trap();
    } catch (const HttpError& e) {
      if (e.status < 400 || e.status > 499) __builtin_trap();
    }
  }
  return 0;
}
