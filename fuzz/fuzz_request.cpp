// POST /v1/predict and /v1/explain bodies, TEI's POST /predict and the Inference API's POST /: parsed,
// or refused with an HTTP (or TEI) error.
#include <cstdint>
#include <string_view>

#include "serve/request.h"
#include "serve/tei.h"

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
    const std::string_view body(reinterpret_cast<const char*>(data), size);
    try {
      const auto r = parse_tei_predict(body, {4, 64, can_group});
      if (r.texts.empty() || r.texts.size() > 4 || (!r.batch && r.texts.size() != 1)) __builtin_trap();
    } catch (const TeiError& e) {
      if (e.status < 400 || e.status > 499 || e.error_type.empty()) __builtin_trap();
    }
    try {
      const auto r = parse_inference_api(body, {4, 64, can_group});
      if (r.texts.empty() || r.texts.size() > 4 || (r.top_k && *r.top_k == 0)) __builtin_trap();
    } catch (const TeiError& e) {
      if (e.status < 400 || e.status > 499 || e.error_type.empty()) __builtin_trap();
    }
  }
  return 0;
}
