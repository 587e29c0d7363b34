// The HTTP/1.1 front of `emotune serve` (Boost.Beast on one I/O thread): reads requests without
// tying a thread to a connection, so slow or silent clients cost a socket and a buffer, never
// service; bounds every request (head size, body size, time to arrive); answers pipelined requests
// in order; and on stop() finishes everything a client has already sent before it closes.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace emotune::serve {

struct HttpRequest {
  std::string method;  // as sent: GET, HEAD, POST, ...; a HEAD is answered like a GET without its body
  std::string path;    // the target without its query string
  std::string body;
  std::string content_type;   // the headers the service decides on; "" when absent
  std::string host;
  std::string authorization;
  // True once the client has closed its connection while this request waits for its answer, so a
  // long handler can stop early. Watched only while nothing more has arrived on the connection (the
  // bytes of a pipelined request hide a later close); a client that half-closes after sending counts
  // as gone, as nginx counts it.
  std::function<bool()> client_gone = [] { return false; };
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra ones (Retry-After, Allow)
};

// Answers one request: call it exactly once, from any thread, now or later.
using Respond = std::function<void(HttpResponse)>;

struct HttpLimits {
  std::size_t max_body_bytes = 1000000;     // chunked bodies included: 413
  std::size_t max_head_bytes = 64 * 1024;   // request line and header lines together: 431; also the
                                            // most chunk-extension bytes, and (twice it) the read buffer,
                                            // which bounds one chunk line and the trailers
  std::chrono::seconds read_timeout{30};    // from a request's first byte until its body is complete
  std::chrono::seconds keep_alive{60};      // an idle connection is closed after this
  std::chrono::seconds write_timeout{30};   // a client that does not read its answer is dropped
  std::chrono::seconds drain_timeout{30};   // after stop(): the longest wait for requests in progress
  std::size_t workers = 0;                  // threads running handlers; 0: one per core, at least 2
};

struct HttpHandlers {
  // A complete request, on a worker thread. Exceptions it throws before responding become 500s.
  std::function<void(HttpRequest, Respond)> handle;
  // The answer to a request refused before it was whole: 400 (malformed), 413 (body), 431 (head,
  // chunk lines, trailers).
  std::function<HttpResponse(int status, const std::string& code, const std::string& message)> refuse;
};

class HttpServer {
 public:
  explicit HttpServer(HttpLimits limits);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port (port 0: one the system picks) and returns the port bound. A port another
  // process holds is an error (SO_REUSEADDR only, never SO_REUSEPORT). Throws std::runtime_error.
  int listen(const std::string& host, int port);

  // Serves until stop() has drained every connection or drain_timeout has passed.
  void run(HttpHandlers handlers);

  // From any thread. First call: take the connections already waiting in the listen backlog, stop
  // accepting, answer every request that has arrived (pipelined ones included; a connection gets a
  // moment for a request already on its way; one whose head is still arriving is dropped), then close. A second call closes everything at once.
  void stop();

  struct Core;

 private:
  std::unique_ptr<Core> core_;
};

}  // namespace emotune::serve
