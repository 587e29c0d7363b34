// The rendezvous protocol and rank 0's server, without libtorch (fuzz/ builds it alone; the c10d
// side is dist/store.h). The server listens on one address only and serves a peer only after it has
// proven it holds the run's secret; the secret never travels.
//
// The protocol: the server opens with kMagic and a fresh 32-byte challenge; the client answers with
// its own challenge and HMAC-SHA256(secret, "rank" + server challenge + client challenge); the server
// answers Reply::ok and HMAC-SHA256(secret, "master" + the same), or Reply::refused and closes. Then
// requests: an Op byte and its fields (strings as a 4-byte length and the bytes, integers as 8 bytes,
// little-endian), each answered by a Reply byte and, for ok, the op's result.
#pragma once

#include <sys/socket.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace emotune::dist::rendezvous {

inline constexpr char kMagic[] = "emotune-rendezvous-1\n";
inline constexpr std::size_t kMagicSize = sizeof(kMagic) - 1;
inline constexpr std::size_t kChallenge = 32, kProof = 32;
// Bounds on what a peer may make the server hold.
inline constexpr std::size_t kMaxKey = 4096, kMaxValue = 16u << 20, kMaxKeysPerRequest = 4096;
inline constexpr std::size_t kMaxStoredBytes = 256u << 20;

enum class Op : uint8_t { set = 1, compare_set, get, add, remove, check, num_keys, wait };
enum class Reply : uint8_t { ok = 0, missing, timed_out, refused, full, not_a_number, out_of_range };

using Bytes = std::vector<uint8_t>;
using Proof = std::array<uint8_t, kProof>;

// A connection that broke, timed out, or sent something outside the protocol.
struct Broken : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A connected stream socket (owned); reads and writes whole fields or throw Broken.
class Socket {
 public:
  explicit Socket(int fd = -1) : fd_(fd) {}
  ~Socket() { close(); }
  Socket(Socket&& o) noexcept;
  Socket& operator=(Socket&& o) noexcept;
  int fd() const { return fd_; }
  void close();
  void receive_timeout(std::chrono::milliseconds t);  // reads fail after `t` without data; 0: never
  void read(void* data, std::size_t n);
  void write(const void* data, std::size_t n);
  void write(const std::string& bytes) { write(bytes.data(), bytes.size()); }
  uint8_t read_byte();
  int64_t read_integer();
  Bytes read_bytes(std::size_t limit);  // a field of at most `limit` bytes
  std::string read_string(std::size_t limit);
  std::vector<std::string> read_keys();  // a count and that many keys

 private:
  int fd_;
};

// A request or reply, built whole and then written at once.
struct Frame {
  std::string bytes;
  Frame& byte(uint8_t b);
  Frame& integer(int64_t v);
  Frame& field(const void* data, std::size_t n);
  Frame& field(const std::string& s) { return field(s.data(), s.size()); }
  Frame& field(const Bytes& b) { return field(b.data(), b.size()); }
  Frame& keys(const std::vector<std::string>& ks);
};

// HMAC-SHA256 under `secret` (a fixed key when empty) of role + both challenges.
Proof prove(const std::string& secret, const char* role, const uint8_t* server_challenge, const uint8_t* client_challenge);
std::array<uint8_t, kChallenge> challenge();  // fresh random bytes
bool same(const Proof& a, const uint8_t* b);  // in constant time

// "IP:PORT" ("[IP]:PORT" for IPv6).
std::string text_of(const sockaddr* address);

// A connection to address:port within `timeout`, retrying while nothing listens there yet.
Socket connect_within(const std::string& address, int port, std::chrono::milliseconds timeout);

// The keys of a run and the rules of one peer's session over them.
class Table {
 public:
  // A request may wait for keys at most `longest_wait`, whatever it asks.
  explicit Table(std::chrono::milliseconds longest_wait) : longest_wait_(longest_wait) {}
  // The handshake, then requests until the peer leaves (Broken). False when the peer did not prove `secret`.
  bool serve(Socket& peer, const std::string& secret);
  void stop();  // wakes and ends every waiting request

 private:
  void answer(Socket& peer);
  bool wait_for(std::unique_lock<std::mutex>& lock, const std::vector<std::string>& keys, int64_t timeout_ms);
  bool put(const std::string& key, Bytes value);

  std::chrono::milliseconds longest_wait_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, Bytes> data_;
  std::size_t stored_bytes_ = 0;
  bool stopping_ = false;
};

// Rank 0's server: listens on `address` (one of this host's) at `port`, one thread per connection
// (at most 1024), each given 10 s for the handshake. `on_refused(peer)` is told of each peer that
// failed to prove the secret.
class Server {
 public:
  Server(const std::string& address, int port, std::string secret, std::function<void(const std::string&)> on_refused);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  const std::string& where() const;  // the address it listens on, "IP:PORT"

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace emotune::dist::rendezvous

namespace emotune::dist {

// The run's secret: $EMOTUNE_DIST_SECRET, else the content of the file $EMOTUNE_DIST_SECRET_FILE
// (`train --dist-secret-file` sets it), else empty. A file that others may read, or a secret shorter
// than 16 bytes, throws.
std::string rendezvous_secret();

// A fresh random secret (64 hex digits), for the launcher's workers on one host.
std::string random_secret();

// Whether `address` (a name or a literal) is this host's loopback (127.0.0.0/8, ::1).
bool is_loopback(const std::string& address);

}  // namespace emotune::dist
