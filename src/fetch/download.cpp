#include "fetch/download.h"

#include <curl/curl.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <memory>
#include <thread>

#include "util/sha256.h"

namespace emotune::fetch {

namespace fs = std::filesystem;

namespace {

// State shared with libcurl's callbacks during one try.
struct Transfer {
  std::FILE* file = nullptr;
  curl_off_t offset = 0;        // bytes already in the part file when the try began
  bool truncated = false;       // the server ignored Range: the part file was restarted
  bool disk_full = false;
  int write_errno = 0;
  std::string linked_etag;      // X-Linked-Etag (the hub's SHA-256 of large files)
  std::string etag;             // ETag, when strong: the validator a later resume sends as If-Range
  curl_off_t range_total = -1;  // the resource's size, from Content-Range ("bytes a-b/N", "bytes */N")
  CURL* curl = nullptr;
  // progress
  bool progress = false;
  std::string name;
  std::chrono::steady_clock::time_point start, last_draw;
  bool drew = false;
};

std::string human_bytes(double b) {
  const char* unit[] = {"B", "kB", "MB", "GB", "TB"};
  int i = 0;
  while (b >= 1000 && i < 4) {
    b /= 1000;
    ++i;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, i == 0 ? "%.0f %s" : "%.1f %s", b, unit[i]);
  return buf;
}

// The value of header `key` (lower case, with its colon) in `line`, trimmed; nullopt for other headers.
std::optional<std::string> header_value(const std::string& line, const std::string& key) {
  if (line.size() <= key.size()) return std::nullopt;
  std::string head = line.substr(0, key.size());
  for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (head != key) return std::nullopt;
  std::string v = line.substr(key.size());
  const auto first = v.find_first_not_of(" \t"), last = v.find_last_not_of(" \t\r\n");
  return first == std::string::npos ? std::string() : v.substr(first, last - first + 1);
}

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::string line(data, size * n);
  if (line.rfind("HTTP/", 0) == 0) {  // a new response (after a redirect): its own headers
    t->etag.clear();
    t->range_total = -1;
  }
  if (const auto v = header_value(line, "x-linked-etag:")) {
    std::string clean;
    for (char c : *v)
      if (std::isxdigit(static_cast<unsigned char>(c))) clean += static_cast<char>(std::tolower(c));
    t->linked_etag = clean;
  } else if (const auto etag = header_value(line, "etag:")) {
    // A weak validator (W/"...") may not be used in If-Range (RFC 9110 13.1.5).
    if (etag->rfind("W/", 0) != 0 && etag->size() < 256) t->etag = *etag;
  } else if (const auto range = header_value(line, "content-range:")) {
    const auto slash = range->rfind('/');
    if (slash != std::string::npos) {
      try {
        t->range_total = static_cast<curl_off_t>(std::stoll(range->substr(slash + 1)));
      } catch (const std::exception&) {
        t->range_total = -1;
      }
    }
  }
  return size * n;
}

// The validator of the part file's bytes (the ETag of the response they came from), kept beside it.
fs::path validator_path(const fs::path& part) { return part.string() + ".etag"; }

std::string read_validator(const fs::path& part) {
  std::ifstream in(validator_path(part));
  std::string v;
  std::getline(in, v);
  return v;
}

size_t on_body(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  long status = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
  if (t->offset > 0 && status == 200 && !t->truncated) {
    // A 200 to a Range request carries the whole file: start the part file over.
    if (::ftruncate(::fileno(t->file), 0) != 0 || std::fseek(t->file, 0, SEEK_SET) != 0) return 0;
    t->truncated = true;
  }
  const size_t bytes = size * n;
  if (std::fwrite(data, 1, bytes, t->file) != bytes) {
    t->write_errno = errno;
    t->disk_full = errno == ENOSPC || errno == EDQUOT;
    return 0;  // makes libcurl stop with CURLE_WRITE_ERROR
  }
  return bytes;
}

int on_progress(void* user, curl_off_t total, curl_off_t now, curl_off_t, curl_off_t) {
  auto* t = static_cast<Transfer*>(user);
  if (!t->progress) return 0;
  const auto clock = std::chrono::steady_clock::now();
  if (now == 0 || (t->drew && clock - t->last_draw < std::chrono::milliseconds(200))) return 0;
  t->last_draw = clock;
  t->drew = true;
  const double secs = std::max(1e-3, std::chrono::duration<double>(clock - t->start).count());
  const double rate = static_cast<double>(now) / secs;
  const double have = static_cast<double>(now + (t->truncated ? 0 : t->offset));
  const double all = total > 0 ? static_cast<double>(total + (t->truncated ? 0 : t->offset)) : 0;
  std::string line = "\r" + t->name + "  " + human_bytes(have);
  if (all > 0) {
    const int width = 24;
    const int fill = static_cast<int>(std::lround(width * have / all));
    line += " / " + human_bytes(all) + " [" + std::string(fill, '#') + std::string(width - fill, ' ') + "]";
  }
  line += "  " + human_bytes(rate) + "/s";
  if (all > 0 && rate > 0) {
    const auto eta = static_cast<long>((all - have) / rate);
    char buf[32];
    std::snprintf(buf, sizeof buf, "  ETA %ld:%02ld", eta / 60, eta % 60);
    line += buf;
  }
  std::fputs((line + "   ").c_str(), stderr);
  return 0;
}

bool transient_status(long status) { return status == 408 || status == 429 || status >= 500; }

bool transient_curl(CURLcode c) {
  switch (c) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

double env_seconds(const char* name, double fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  try {
    return std::stod(v);
  } catch (...) {
    return fallback;
  }
}

}  // namespace

DownloadPolicy policy_from_env() {
  DownloadPolicy p;
  p.backoff_s = env_seconds("EMOTUNE_FETCH_BACKOFF_S", p.backoff_s);
  p.stall_timeout_s = static_cast<long>(env_seconds("EMOTUNE_FETCH_STALL_S", static_cast<double>(p.stall_timeout_s)));
  return p;
}

std::string url_host(const std::string& url) {
  auto start = url.find("://");
  start = start == std::string::npos ? 0 : start + 3;
  const auto end = url.find_first_of("/?#", start);
  return url.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

void download(const DownloadRequest& r, const DownloadPolicy& policy) {
  const fs::path part = r.dest.string() + ".part";
  // An error answer leaves an empty part file behind: remove it, keep any partial bytes for resuming.
  struct DropEmptyPart {
    const fs::path& part;
    ~DropEmptyPart() {
      std::error_code ec;
      if (fs::exists(part, ec) && fs::file_size(part, ec) == 0) fs::remove(part, ec);
      if (!fs::exists(part, ec)) fs::remove(validator_path(part), ec);
    }
  } drop_empty{part};
  fs::create_directories(r.dest.parent_path());
  const std::string name = r.dest.filename().string();
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), curl_easy_cleanup);
  if (!curl) throw FetchError(Failure::io, "cannot start libcurl");

  std::string last_problem;
  bool unreachable = false, done = false;
  std::string linked_etag;
  for (int attempt = 0;; ++attempt) {
    if (attempt > 0) {
      if (attempt >= policy.attempts) break;
      std::this_thread::sleep_for(std::chrono::duration<double>(policy.backoff_s * std::pow(2.0, attempt - 1)));
    }
    std::error_code ec;
    auto have = fs::exists(part, ec) ? static_cast<curl_off_t>(fs::file_size(part, ec)) : 0;
    // Resume only bytes that are known to belong to the file: sent with If-Range (their ETag), or
    // checked against the SHA-256 at the end. Others start over.
    const std::string validator = read_validator(part);
    const bool verified = !r.sha256.empty() || linked_etag.size() == 64;
    if (have > 0 && validator.empty() && !verified) {
      fs::resize_file(part, 0, ec);
      have = 0;
    }
    std::unique_ptr<std::FILE, decltype(&std::fclose)> file(std::fopen(part.c_str(), "ab"), std::fclose);
    if (!file) throw FetchError(Failure::io, "cannot write " + part.string() + ": " + std::strerror(errno));

    Transfer t;
    t.file = file.get();
    t.offset = have;
    t.curl = curl.get();
    t.progress = r.progress;
    t.name = name;
    t.start = t.last_draw = std::chrono::steady_clock::now();

    curl_easy_reset(curl.get());
    CURL* c = curl.get();
    curl_easy_setopt(c, CURLOPT_URL, r.url.c_str());
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "emotune/0.1");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, policy.connect_timeout_s);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, policy.stall_timeout_s);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, r.progress ? 0L : 1L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &t);
    if (have > 0) curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, have);
    // Never from https down to http, nor to other protocols (ftp, file, ...).
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, r.url.rfind("https:", 0) == 0 ? "https" : "http,https");
    std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> headers(nullptr, curl_slist_free_all);
    auto add_header = [&](const std::string& h) { headers.reset(curl_slist_append(headers.release(), h.c_str())); };
    // libcurl drops this header on redirects to other hosts (the hub's CDN URLs are pre-signed).
    if (r.bearer_token) add_header("Authorization: Bearer " + *r.bearer_token);
    // A changed file answers 200 with all of itself, not the rest of another version.
    if (have > 0 && !validator.empty()) add_header("If-Range: " + validator);
    if (headers) curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());

    const CURLcode rc = curl_easy_perform(c);
    if (r.progress && rc == CURLE_OK) {  // the last state, drawn whatever the rate limit skipped
      curl_off_t got = 0;
      curl_easy_getinfo(c, CURLINFO_SIZE_DOWNLOAD_T, &got);
      t.drew = false;
      on_progress(&t, got, got, 0, 0);
    }
    if (t.drew) std::fputs("\n", stderr);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (std::fflush(file.get()) != 0) {
      t.disk_full = errno == ENOSPC || errno == EDQUOT;
      if (t.disk_full) throw FetchError(Failure::disk_full, "disk full writing " + part.string());
    }
    file.reset();
    if (!t.linked_etag.empty()) linked_etag = t.linked_etag;
    // The part file now starts with this response's bytes: keep its validator for a later resume.
    if ((have == 0 || t.truncated) && status >= 200 && status < 300) {
      if (t.etag.empty())
        fs::remove(validator_path(part), ec);
      else
        std::ofstream(validator_path(part)) << t.etag << '\n';
    }

    if (rc == CURLE_OK) {
      done = true;
      break;
    }
    if (rc == CURLE_WRITE_ERROR && t.disk_full) throw FetchError(Failure::disk_full, "disk full writing " + part.string());
    if (rc == CURLE_WRITE_ERROR)
      throw FetchError(Failure::io, "cannot write " + part.string() + ": " + std::strerror(t.write_errno));
    if (rc == CURLE_HTTP_RETURNED_ERROR) {
      if (status == 416 && have > 0) {
        if (t.range_total == have) {  // the part file already holds every byte
          done = true;
          break;
        }
        // Longer than the file, or of unknown size: those bytes are not the file's. Start over.
        fs::resize_file(part, 0, ec);
        fs::remove(validator_path(part), ec);
        last_problem = "HTTP 416";
        continue;
      }
      if (status == 401 || status == 403)
        throw FetchError(Failure::unauthorized,
                         r.url + ": HTTP " + std::to_string(status) +
                             (r.bearer_token ? " (the token in HF_TOKEN was refused: check that it can read this repository)"
                                             : " (this needs a token: set HF_TOKEN to a Hugging Face access token)"),
                         status);
      if (status == 404) throw FetchError(Failure::not_found, r.url + ": HTTP 404 (no such model or file)", status);
      if (!transient_status(status))
        throw FetchError(Failure::http, r.url + ": HTTP " + std::to_string(status), status);
      last_problem = "HTTP " + std::to_string(status);
      continue;
    }
    if (rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_RESOLVE_PROXY) {
      unreachable = true;
      break;
    }
    if (!transient_curl(rc)) throw FetchError(Failure::http, r.url + ": " + curl_easy_strerror(rc));
    unreachable = rc == CURLE_COULDNT_CONNECT;
    last_problem = curl_easy_strerror(rc);
  }
  if (unreachable) throw FetchError(Failure::unreachable, "cannot reach " + url_host(r.url));
  if (!done)
    throw FetchError(Failure::http, r.url + ": gave up after " + std::to_string(policy.attempts) + " tries (" +
                                        last_problem + "); run again to resume from " + part.string());

  std::error_code ec;
  const std::string expected = !r.sha256.empty() ? r.sha256 : (linked_etag.size() == 64 ? linked_etag : "");
  if (!expected.empty()) {
    const std::string got = util::sha256_file(part);
    if (got != expected) {
      fs::remove(part, ec);
      throw FetchError(Failure::checksum, r.url + ": SHA-256 mismatch (expected " + expected + ", got " + got +
                                              "); the partial file was deleted, run the command again");
    }
  }
  fs::rename(part, r.dest);
  fs::remove(validator_path(part), ec);
}

}  // namespace emotune::fetch
