// One file over HTTP(S) with libcurl: resume of a partial file (HTTP Range), retries with backoff on
// transient failures, a stall timeout, SHA-256 verification, and a progress bar on a terminal.
// Bytes go to DEST.part, which is renamed to DEST only once complete and verified.
#pragma once

#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

namespace emotune::fetch {

enum class Failure { unreachable, unauthorized, not_found, http, checksum, disk_full, io };

// Every download error, as one line that says what to do next.
struct FetchError : std::runtime_error {
  FetchError(Failure kind, const std::string& message, long http_status = 0)
      : std::runtime_error(message), kind(kind), http_status(http_status) {}
  Failure kind;
  long http_status;
};

struct DownloadRequest {
  std::string url;
  std::filesystem::path dest;
  std::optional<std::string> bearer_token;  // sent as "Authorization: Bearer ..."
  std::string sha256;                       // expected digest; "" = trust the server's X-Linked-Etag if any
  bool progress = false;                    // draw a progress bar on stderr
};

struct DownloadPolicy {
  int attempts = 5;               // tries for transient failures (connection lost, 5xx, 429)
  double backoff_s = 0.5;         // first wait; doubles each time
  long stall_timeout_s = 30;      // give up on a try when no byte arrives for this long
  long connect_timeout_s = 15;
};

// The policy, with EMOTUNE_FETCH_BACKOFF_S and EMOTUNE_FETCH_STALL_S applied (tests use short ones).
DownloadPolicy policy_from_env();

// Downloads `r.url` to `r.dest`. Throws FetchError.
void download(const DownloadRequest& r, const DownloadPolicy& policy);

// The host part of a URL, for messages.
std::string url_host(const std::string& url);

}  // namespace emotune::fetch
