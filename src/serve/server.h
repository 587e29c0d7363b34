// `emotune serve`: the HTTP service (serve/http.h) around a loaded model: /v1/predict with dynamic
// batching, /v1/explain, /v1/labels, /health, /metrics and the demo page at /.
#pragma once

#include <cstddef>
#include <exception>
#include <string>

#include "infer/predictor.h"

namespace emotune::serve {

struct ServeOptions {
  std::string model_dir;
  std::string host = "127.0.0.1";
  int port = 8080;
  std::size_t max_batch = 32;
  std::size_t max_batch_tokens = 16384;  // tokens per model batch (TEI's default); a request may not exceed it
  double max_wait_ms = 5;
  std::size_t max_text_chars = 10000;
  std::size_t max_body_bytes = 1000000;
  std::size_t max_concurrent_requests = 512;  // beyond: 429, as TEI answers an overloaded queue
  int read_timeout_s = 30;  // from a request's first byte until its body is complete; slower clients are dropped
  int threads = 0;
  std::string device = "cpu";
  std::string precision;  // "" (float32), "bf16" or "int8"
  // /v1/explain holds a second, plain float copy of the model (the packed one cannot take gradients)
  // and explains one request at a time; explain = false leaves it out (404).
  bool explain = true;
  std::size_t explain_max_steps = 256;
  // Work one explanation request may ask for, checked before any starts: texts x labels x passes x
  // tokens (passes: the steps of integrated gradients, 1 for gradient x input, the tokens for
  // occlusion; labels: those named, else top_k, else every label). Beyond: 413.
  std::size_t explain_max_work = 4000000;
  std::size_t max_concurrent_explanations = 4;  // queued or running; beyond: 429 (predictions keep their own count)
  // Non-empty: every route but /health needs "Authorization: Bearer <api_key>" (401), as TEI's --api-key.
  std::string api_key;
  // Texts longer than the model's window: the default of a request's "long_text" ("truncate" or
  // "window"), and the windows' stride and combination.
  infer::LongTextOptions long_text;
};

// Who may ask: bound to a loopback address, only requests whose Host names a loopback address or
// localhost are served (403: a web page that rebinds its DNS name to 127.0.0.1 cannot read answers);
// POST bodies must be Content-Type application/json (415: a browser page cannot send one without
// asking first, by CORS preflight, which gets no CORS headers). A 500 names an id that the log
// line with the failure carries, never the failure itself.
//
// Serves until SIGTERM or SIGINT, then stops accepting, answers every request already sent and
// returns 0 (a second signal: at once).
// Logs the address it listens on (with the port the system chose for --port 0).
int run_server(const ServeOptions& options);

// The HTTP status of a failure thrown while a request was handled, decided here and nowhere else:
// an HttpError's own; 400 for a setting the client chose (util/errors.h: Setting), 422 for what it
// sent that cannot be processed (Input); 500 for ours (System, Internal), whose message is only an id
// to quote (the details go to the log).
struct ErrorStatus {
  int status;
  std::string code;     // emotune's error code ("bad_request", "unprocessable", "internal", ...)
  std::string message;  // settings named as request fields
};
ErrorStatus error_status_for(const std::exception_ptr& failure);

}  // namespace emotune::serve
