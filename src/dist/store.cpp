#include "dist/store.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <list>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

#include "util/errors.h"

namespace emotune::dist {

namespace {

// The protocol. The server opens with kMagic and its challenge; the client answers with its own
// challenge and its proof; the server answers ok and its proof, or refused and closes. Then requests:
// an Op byte and its fields (strings as u32 length + bytes, integers as 8 bytes little-endian), each
// answered by a Reply byte and, for ok, the op's result.
constexpr char kMagic[] = "emotune-rendezvous-1\n";
constexpr std::size_t kMagicSize = sizeof(kMagic) - 1;
constexpr std::size_t kChallenge = 32, kProof = 32;
// Bounds on what a peer may make the server hold, authenticated or not.
constexpr std::size_t kMaxKey = 4096, kMaxValue = 16u << 20, kMaxKeysPerRequest = 4096;
constexpr std::size_t kMaxStoredBytes = 256u << 20;
constexpr std::size_t kMaxConnections = 1024;
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
// With no secret (one host, ranks not started by the launcher) the proofs still run, under this key.
constexpr char kNoSecret[] = "emotune: no secret (loopback only)";

enum class Op : uint8_t { set = 1, compare_set, get, add, remove, check, num_keys, wait };
enum class Reply : uint8_t { ok = 0, missing, timed_out, refused, full, not_a_number };

using Bytes = std::vector<uint8_t>;
using Proof = std::array<uint8_t, kProof>;

// A connection that broke or sent something outside the protocol.
struct Broken : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Socket {
 public:
  explicit Socket(int fd = -1) : fd_(fd) {}
  ~Socket() { close(); }
  Socket(Socket&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Socket& operator=(Socket&& o) noexcept {
    if (this != &o) {
      close();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  int fd() const { return fd_; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // Reads fail with Broken after `t` without data (0: never).
  void receive_timeout(std::chrono::milliseconds t) {
    timeval tv{static_cast<time_t>(t.count() / 1000), static_cast<suseconds_t>((t.count() % 1000) * 1000)};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  void read(void* data, std::size_t n) {
    auto* p = static_cast<char*>(data);
    while (n > 0) {
      const ssize_t got = ::recv(fd_, p, n, 0);
      if (got == 0) throw Broken("the connection closed");
      if (got < 0) {
        if (errno == EINTR) continue;
        throw Broken(errno == EAGAIN || errno == EWOULDBLOCK ? "no answer in time" : std::strerror(errno));
      }
      p += got;
      n -= static_cast<std::size_t>(got);
    }
  }
  void write(const void* data, std::size_t n) {
    const auto* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t sent = ::send(fd_, p, n, MSG_NOSIGNAL);
      if (sent < 0) {
        if (errno == EINTR) continue;
        throw Broken(std::strerror(errno));
      }
      p += sent;
      n -= static_cast<std::size_t>(sent);
    }
  }
  void write(const std::string& s) { write(s.data(), s.size()); }

  uint8_t read_byte() {
    uint8_t b = 0;
    read(&b, 1);
    return b;
  }
  int64_t read_integer() {
    uint8_t b[8];
    read(b, 8);
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
    return static_cast<int64_t>(v);
  }
  Bytes read_bytes(std::size_t limit) {
    uint8_t b[4];
    read(b, 4);
    const std::size_t n = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<std::size_t>(b[3]) << 24);
    if (n > limit) throw Broken("a field of " + std::to_string(n) + " bytes (at most " + std::to_string(limit) + ")");
    Bytes out(n);
    if (n) read(out.data(), n);
    return out;
  }
  std::string read_string(std::size_t limit) {
    const Bytes b = read_bytes(limit);
    return std::string(b.begin(), b.end());
  }
  std::vector<std::string> read_keys() {
    const int64_t n = read_integer();
    if (n < 0 || static_cast<std::size_t>(n) > kMaxKeysPerRequest) throw Broken("too many keys in one request");
    std::vector<std::string> keys;
    for (int64_t i = 0; i < n; ++i) keys.push_back(read_string(kMaxKey));
    return keys;
  }

 private:
  int fd_;
};

// Frames are built whole, then written at once.
struct Frame {
  std::string bytes;
  Frame& byte(uint8_t b) {
    bytes.push_back(static_cast<char>(b));
    return *this;
  }
  Frame& integer(int64_t v) {
    auto u = static_cast<uint64_t>(v);
    for (int i = 0; i < 8; ++i, u >>= 8) bytes.push_back(static_cast<char>(u & 0xff));
    return *this;
  }
  Frame& field(const void* data, std::size_t n) {
    for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
    bytes.append(static_cast<const char*>(data), n);
    return *this;
  }
  Frame& field(const std::string& s) { return field(s.data(), s.size()); }
  Frame& field(const Bytes& b) { return field(b.data(), b.size()); }
  Frame& keys(const std::vector<std::string>& ks) {
    integer(static_cast<int64_t>(ks.size()));
    for (const auto& k : ks) field(k);
    return *this;
  }
};

Proof prove(const std::string& secret, const char* role, const uint8_t* server_challenge,
            const uint8_t* client_challenge) {
  const std::string key = secret.empty() ? std::string(kNoSecret) : secret;
  std::string message(role);
  message.append(reinterpret_cast<const char*>(server_challenge), kChallenge);
  message.append(reinterpret_cast<const char*>(client_challenge), kChallenge);
  Proof out{};
  unsigned int length = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(message.data()),
            message.size(), out.data(), &length) ||
      length != kProof)
    throw std::runtime_error("HMAC-SHA256 failed (OpenSSL)");
  return out;
}

std::array<uint8_t, kChallenge> challenge() {
  std::array<uint8_t, kChallenge> c{};
  if (RAND_bytes(c.data(), static_cast<int>(c.size())) != 1) throw std::runtime_error("no random bytes (OpenSSL RAND_bytes)");
  return c;
}

bool same(const Proof& a, const uint8_t* b) { return CRYPTO_memcmp(a.data(), b, kProof) == 0; }

std::string text_of(const sockaddr* a) {
  char host[INET6_ADDRSTRLEN] = "?";
  const void* raw = a->sa_family == AF_INET6 ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in6*>(a)->sin6_addr)
                                             : static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(a)->sin_addr);
  ::inet_ntop(a->sa_family, raw, host, sizeof host);
  const int port = ntohs(a->sa_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(a)->sin6_port
                                                  : reinterpret_cast<const sockaddr_in*>(a)->sin_port);
  return (a->sa_family == AF_INET6 ? "[" + std::string(host) + "]" : std::string(host)) + ":" + std::to_string(port);
}

struct Addresses {
  addrinfo* list = nullptr;
  ~Addresses() {
    if (list) ::freeaddrinfo(list);
  }
};

void resolve(const std::string& address, int port, Addresses& out) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (const int rc = ::getaddrinfo(address.c_str(), std::to_string(port).c_str(), &hints, &out.list); rc != 0)
    throw std::runtime_error(address + ": " + ::gai_strerror(rc));
}

// A connection to address:port within `timeout`, retrying while nothing listens there yet.
Socket connect_within(const std::string& address, int port, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  Addresses addresses;
  resolve(address, port, addresses);
  for (;;) {
    for (addrinfo* a = addresses.list; a; a = a->ai_next) {
      Socket s(::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
      if (s.fd() < 0) continue;
      if (::connect(s.fd(), a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) continue;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{s.fd(), POLLOUT, 0};
      if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 1))) != 1) continue;
      int error = 0;
      socklen_t length = sizeof error;
      ::getsockopt(s.fd(), SOL_SOCKET, SO_ERROR, &error, &length);
      if (error != 0) continue;
      ::fcntl(s.fd(), F_SETFL, ::fcntl(s.fd(), F_GETFL) & ~O_NONBLOCK);
      return s;
    }
    if (std::chrono::steady_clock::now() + std::chrono::milliseconds(100) > deadline)
      throw Broken("no answer within " + std::to_string(timeout.count() / 1000) + " s");
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

std::string rendezvous_error(const std::string& where, const std::string& what) {
  return "the rendezvous at " + where + ": " + what;
}

}  // namespace

// Rank 0's server: one thread accepting, one per connection (a run has few ranks; the count is
// capped), the keys in a map under one lock.
struct RendezvousStore::Server {
  struct Handler {
    std::thread thread;
    std::atomic<bool> done{false};
    int fd = -1;
  };

  Socket listener;
  std::string secret, where;
  int wake[2] = {-1, -1};  // the destructor writes here to stop the acceptor's poll
  std::mutex mutex;
  std::condition_variable changed;
  std::map<std::string, Bytes> data;
  std::size_t stored_bytes = 0;
  bool stopping = false;
  std::list<Handler> handlers;
  std::thread acceptor;

  Server(const std::string& address, int port, std::string run_secret) : secret(std::move(run_secret)) {
    Addresses addresses;
    resolve(address, port, addresses);
    std::string why = "no address";
    for (addrinfo* a = addresses.list; a && listener.fd() < 0; a = a->ai_next) {
      Socket s(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol));
      const int on = 1;
      ::setsockopt(s.fd(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
      if (s.fd() >= 0 && ::bind(s.fd(), a->ai_addr, a->ai_addrlen) == 0 && ::listen(s.fd(), 128) == 0)
        listener = std::move(s);
      else
        why = std::strerror(errno);
    }
    if (listener.fd() < 0) throw std::runtime_error(why);
    sockaddr_storage bound{};
    socklen_t length = sizeof bound;
    ::getsockname(listener.fd(), reinterpret_cast<sockaddr*>(&bound), &length);
    where = text_of(reinterpret_cast<sockaddr*>(&bound));
    if (::pipe2(wake, O_CLOEXEC) != 0) throw std::runtime_error(std::strerror(errno));
    acceptor = std::thread([this] { accept_loop(); });
  }

  ~Server() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stopping = true;
      for (auto& h : handlers)
        if (!h.done) ::shutdown(h.fd, SHUT_RDWR);
    }
    changed.notify_all();
    [[maybe_unused]] const ssize_t n = ::write(wake[1], "x", 1);
    acceptor.join();
    for (auto& h : handlers) h.thread.join();
    ::close(wake[0]);
    ::close(wake[1]);
  }

  void accept_loop() {
    for (;;) {
      pollfd p[2] = {{listener.fd(), POLLIN, 0}, {wake[0], POLLIN, 0}};
      if (::poll(p, 2, -1) < 0 && errno != EINTR) return;
      if (p[1].revents) return;
      if (!(p[0].revents & POLLIN)) continue;
      sockaddr_storage peer{};
      socklen_t length = sizeof peer;
      Socket s(::accept4(listener.fd(), reinterpret_cast<sockaddr*>(&peer), &length, SOCK_CLOEXEC));
      if (s.fd() < 0) continue;
      std::lock_guard<std::mutex> lock(mutex);
      handlers.remove_if([](Handler& h) {
        if (!h.done) return false;
        h.thread.join();
        return true;
      });
      if (stopping || handlers.size() >= kMaxConnections) continue;  // closes s
      Handler& h = handlers.emplace_back();
      h.fd = s.fd();
      h.thread = std::thread([this, &h, who = text_of(reinterpret_cast<sockaddr*>(&peer)), s = std::move(s)]() mutable {
        serve(s, who);
        std::lock_guard<std::mutex> lock(mutex);
        h.done = true;  // before s closes, so that no shutdown() reaches a reused descriptor
        s.close();
      });
    }
  }

  void serve(Socket& s, const std::string& who) {
    try {
      s.receive_timeout(kHandshakeTimeout);
      if (!authenticate(s)) {
        spdlog::warn("rendezvous at {}: refused {}: it does not hold this run's secret", where, who);
        return;
      }
      s.receive_timeout(std::chrono::milliseconds(0));
      for (;;) answer(s);
    } catch (const Broken&) {
      // The peer left, timed out in the handshake or broke the protocol: its connection ends here.
    }
  }

  bool authenticate(Socket& s) {
    const auto mine = challenge();
    Frame hello;
    hello.bytes.append(kMagic, kMagicSize);
    hello.bytes.append(reinterpret_cast<const char*>(mine.data()), mine.size());
    s.write(hello.bytes);
    uint8_t theirs[kChallenge], proof[kProof];
    s.read(theirs, kChallenge);
    s.read(proof, kProof);
    if (!same(prove(secret, "rank", mine.data(), theirs), proof)) {
      s.write(Frame().byte(static_cast<uint8_t>(Reply::refused)).bytes);
      return false;
    }
    const Proof answer = prove(secret, "master", mine.data(), theirs);
    Frame ok;
    ok.byte(static_cast<uint8_t>(Reply::ok));
    ok.bytes.append(reinterpret_cast<const char*>(answer.data()), answer.size());
    s.write(ok.bytes);
    return true;
  }

  // Waits until every key is present, `timeout` passes or the server stops; under `lock`.
  bool wait_for(std::unique_lock<std::mutex>& lock, const std::vector<std::string>& keys, int64_t timeout_ms) {
    return changed.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(timeout_ms, 0)), [&] {
      return stopping || std::all_of(keys.begin(), keys.end(), [&](const std::string& k) { return data.count(k) > 0; });
    }) && !stopping;
  }

  // Stores `value` under `key` if the bound on held bytes allows; under the lock.
  bool put(const std::string& key, Bytes value) {
    const auto it = data.find(key);
    const std::size_t freed = it == data.end() ? 0 : it->second.size() + key.size();
    if (stored_bytes - freed + value.size() + key.size() > kMaxStoredBytes) return false;
    stored_bytes = stored_bytes - freed + value.size() + key.size();
    data[key] = std::move(value);
    changed.notify_all();
    return true;
  }

  void answer(Socket& s) {
    const auto op = static_cast<Op>(s.read_byte());
    Frame reply;
    auto status = [&](Reply r) { reply.byte(static_cast<uint8_t>(r)); };
    switch (op) {
      case Op::set: {
        const std::string key = s.read_string(kMaxKey);
        Bytes value = s.read_bytes(kMaxValue);
        std::lock_guard<std::mutex> lock(mutex);
        status(put(key, std::move(value)) ? Reply::ok : Reply::full);
        break;
      }
      case Op::compare_set: {
        const std::string key = s.read_string(kMaxKey);
        const Bytes expected = s.read_bytes(kMaxValue), desired = s.read_bytes(kMaxValue);
        std::lock_guard<std::mutex> lock(mutex);
        // As c10d's stores: set when the key holds `expected` (or is absent and `expected` empty); answer
        // the value the key holds afterwards (`expected` when it was absent and `expected` is not empty).
        const auto it = data.find(key);
        Bytes now = it == data.end() ? expected : it->second;
        if ((it == data.end() && expected.empty()) || (it != data.end() && it->second == expected)) {
          if (!put(key, desired)) {
            status(Reply::full);
            break;
          }
          now = desired;
        }
        status(Reply::ok);
        reply.field(now);
        break;
      }
      case Op::get: {
        const std::string key = s.read_string(kMaxKey);
        const int64_t timeout_ms = s.read_integer();
        std::unique_lock<std::mutex> lock(mutex);
        if (!wait_for(lock, {key}, timeout_ms)) {
          status(Reply::timed_out);
          break;
        }
        status(Reply::ok);
        reply.field(data.at(key));
        break;
      }
      case Op::add: {
        const std::string key = s.read_string(kMaxKey);
        const int64_t delta = s.read_integer();
        std::lock_guard<std::mutex> lock(mutex);
        int64_t value = 0;
        if (const auto it = data.find(key); it != data.end()) {
          const std::string text(it->second.begin(), it->second.end());
          char* end = nullptr;
          errno = 0;
          value = std::strtoll(text.c_str(), &end, 10);
          if (text.empty() || *end != '\0' || errno == ERANGE) {
            status(Reply::not_a_number);
            break;
          }
        }
        value += delta;
        const std::string text = std::to_string(value);
        if (!put(key, Bytes(text.begin(), text.end()))) {
          status(Reply::full);
          break;
        }
        status(Reply::ok);
        reply.integer(value);
        break;
      }
      case Op::remove: {
        const std::string key = s.read_string(kMaxKey);
        std::lock_guard<std::mutex> lock(mutex);
        const auto it = data.find(key);
        if (it == data.end()) {
          status(Reply::missing);
          break;
        }
        stored_bytes -= it->second.size() + key.size();
        data.erase(it);
        status(Reply::ok);
        break;
      }
      case Op::check: {
        const auto keys = s.read_keys();
        std::lock_guard<std::mutex> lock(mutex);
        const bool all = std::all_of(keys.begin(), keys.end(), [&](const std::string& k) { return data.count(k) > 0; });
        status(all ? Reply::ok : Reply::missing);
        break;
      }
      case Op::num_keys: {
        std::lock_guard<std::mutex> lock(mutex);
        status(Reply::ok);
        reply.integer(static_cast<int64_t>(data.size()));
        break;
      }
      case Op::wait: {
        const auto keys = s.read_keys();
        const int64_t timeout_ms = s.read_integer();
        std::unique_lock<std::mutex> lock(mutex);
        status(wait_for(lock, keys, timeout_ms) ? Reply::ok : Reply::timed_out);
        break;
      }
      default:
        throw Broken("unknown request");
    }
    s.write(reply.bytes);
  }
};

struct RendezvousStore::Connection {
  Socket socket;
};

RendezvousStore::RendezvousStore(const std::string& address, int port, const std::string& secret, bool serve,
                                 std::chrono::milliseconds timeout)
    : c10d::Store(timeout), address_(address), secret_(secret), port_(port) {
  if (serve) server_ = std::make_unique<Server>(address, port, secret);
  const std::string where = address + ":" + std::to_string(port);
  connection_ = std::make_unique<Connection>();
  try {
    Socket s = connect_within(address, port, timeout);
    // A peer that stops answering mid-handshake or mid-request fails this rank instead of hanging it.
    s.receive_timeout(timeout + std::chrono::seconds(30));
    char magic[kMagicSize];
    s.read(magic, kMagicSize);
    if (std::memcmp(magic, kMagic, kMagicSize) != 0)
      throw std::runtime_error(rendezvous_error(where, "the process there is not an emotune rendezvous (another program on MASTER_PORT?)"));
    uint8_t theirs[kChallenge];
    s.read(theirs, kChallenge);
    const auto mine = challenge();
    const Proof proof = prove(secret, "rank", theirs, mine.data());
    s.write(mine.data(), mine.size());
    s.write(proof.data(), proof.size());
    if (static_cast<Reply>(s.read_byte()) != Reply::ok)
      throw SettingError(rendezvous_error(where, "rank 0 refused this rank: its secret differs (give every rank the same "
                                                 "{dist_secret_file} or EMOTUNE_DIST_SECRET)"));
    uint8_t answer[kProof];
    s.read(answer, kProof);
    if (!same(prove(secret, "master", theirs, mine.data()), answer))
      throw std::runtime_error(rendezvous_error(where, "the process there does not hold this run's secret"));
    connection_->socket = std::move(s);
  } catch (const Broken& e) {
    throw std::runtime_error(rendezvous_error(where, e.what()));
  }
}

RendezvousStore::~RendezvousStore() {
  connection_.reset();  // before the server, whose handler then sees the connection close
  server_.reset();
}

std::string RendezvousStore::listening_address() const { return server_ ? server_->where : std::string(); }

namespace {

// Sends `request` and reads the reply's status; a broken connection throws, naming the rendezvous.
// `wait` is how long the server may take to answer (a wait for keys); a silent peer fails after that
// and a margin.
template <class ReadResult>
auto exchange(Socket& s, std::mutex& m, const std::string& where, const Frame& request, std::chrono::milliseconds wait,
              ReadResult read_result) {
  std::lock_guard<std::mutex> lock(m);
  try {
    s.receive_timeout(wait + std::chrono::seconds(30));
    s.write(request.bytes);
    const auto status = static_cast<Reply>(s.read_byte());
    return read_result(status);
  } catch (const Broken& e) {
    throw std::runtime_error(rendezvous_error(where, std::string(e.what()) + " (did rank 0 stop?)"));
  }
}

void require(Reply status, const std::string& where, const std::string& key) {
  switch (status) {
    case Reply::ok:
      return;
    case Reply::full:
      throw std::runtime_error(rendezvous_error(where, "the store is full (" + std::to_string(kMaxStoredBytes >> 20) + " MiB)"));
    case Reply::not_a_number:
      throw std::runtime_error(rendezvous_error(where, "key '" + key + "' does not hold a number"));
    default:
      throw std::runtime_error(rendezvous_error(where, "unexpected answer to a request on key '" + key + "'"));
  }
}

}  // namespace

void RendezvousStore::set(const std::string& key, const std::vector<uint8_t>& value) {
  const std::string where = address_ + ":" + std::to_string(port_);
  exchange(connection_->socket, mutex_, where, Frame().byte(static_cast<uint8_t>(Op::set)).field(key).field(value), timeout_,
           [&](Reply r) {
             require(r, where, key);
             return 0;
           });
}

std::vector<uint8_t> RendezvousStore::compareSet(const std::string& key, const std::vector<uint8_t>& expected,
                                                 const std::vector<uint8_t>& desired) {
  const std::string where = address_ + ":" + std::to_string(port_);
  return exchange(connection_->socket, mutex_, where,
                  Frame().byte(static_cast<uint8_t>(Op::compare_set)).field(key).field(expected).field(desired), timeout_, [&](Reply r) {
                    require(r, where, key);
                    return connection_->socket.read_bytes(kMaxValue);
                  });
}

std::vector<uint8_t> RendezvousStore::get(const std::string& key) {
  const std::string where = address_ + ":" + std::to_string(port_);
  return exchange(connection_->socket, mutex_, where,
                  Frame().byte(static_cast<uint8_t>(Op::get)).field(key).integer(timeout_.count()), timeout_, [&](Reply r) {
                    if (r == Reply::timed_out)
                      throw std::runtime_error(rendezvous_error(where, "key '" + key + "' did not appear within " +
                                                                           std::to_string(timeout_.count() / 1000) + " s"));
                    require(r, where, key);
                    return connection_->socket.read_bytes(kMaxValue);
                  });
}

int64_t RendezvousStore::add(const std::string& key, int64_t value) {
  const std::string where = address_ + ":" + std::to_string(port_);
  return exchange(connection_->socket, mutex_, where, Frame().byte(static_cast<uint8_t>(Op::add)).field(key).integer(value), timeout_,
                  [&](Reply r) {
                    require(r, where, key);
                    return connection_->socket.read_integer();
                  });
}

bool RendezvousStore::deleteKey(const std::string& key) {
  const std::string where = address_ + ":" + std::to_string(port_);
  return exchange(connection_->socket, mutex_, where, Frame().byte(static_cast<uint8_t>(Op::remove)).field(key), timeout_,
                  [&](Reply r) {
                    if (r == Reply::missing) return false;
                    require(r, where, key);
                    return true;
                  });
}

bool RendezvousStore::check(const std::vector<std::string>& keys) {
  const std::string where = address_ + ":" + std::to_string(port_);
  return exchange(connection_->socket, mutex_, where, Frame().byte(static_cast<uint8_t>(Op::check)).keys(keys), timeout_,
                  [&](Reply r) {
                    if (r == Reply::missing) return false;
                    require(r, where, keys.empty() ? "" : keys[0]);
                    return true;
                  });
}

int64_t RendezvousStore::getNumKeys() {
  const std::string where = address_ + ":" + std::to_string(port_);
  return exchange(connection_->socket, mutex_, where, Frame().byte(static_cast<uint8_t>(Op::num_keys)), timeout_, [&](Reply r) {
    require(r, where, "");
    return connection_->socket.read_integer();
  });
}

void RendezvousStore::wait(const std::vector<std::string>& keys) { wait(keys, timeout_); }

void RendezvousStore::wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) {
  const std::string where = address_ + ":" + std::to_string(port_);
  const auto limit = timeout == kNoTimeout ? timeout_ : timeout;  // never wait without end
  exchange(connection_->socket, mutex_, where, Frame().byte(static_cast<uint8_t>(Op::wait)).keys(keys).integer(limit.count()), limit,
           [&](Reply r) {
             if (r == Reply::timed_out)
               throw std::runtime_error(rendezvous_error(where, std::to_string(keys.size()) + " key(s) did not appear within " +
                                                             std::to_string(limit.count() / 1000) + " s"));
             require(r, where, keys.empty() ? "" : keys[0]);
             return 0;
           });
}

c10::intrusive_ptr<c10d::Store> RendezvousStore::clone() {
  return c10::make_intrusive<RendezvousStore>(address_, port_, secret_, false, timeout_);
}

std::string rendezvous_secret() {
  std::string secret;
  const char* value = std::getenv("EMOTUNE_DIST_SECRET");
  const char* file = std::getenv("EMOTUNE_DIST_SECRET_FILE");
  if (value && *value) {
    secret = value;
  } else if (file && *file) {
    struct stat st {};
    if (::stat(file, &st) != 0) throw InputError("{dist_secret_file} " + std::string(file) + ": " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) throw InputError("{dist_secret_file} " + std::string(file) + " is not a regular file");
    if (st.st_mode & 077)
      throw InputError("{dist_secret_file} " + std::string(file) + " may be read by others: chmod 600 " + file);
    if (st.st_size > 4096) throw InputError("{dist_secret_file} " + std::string(file) + " is over 4096 bytes");
    std::ifstream in(file, std::ios::binary);
    std::stringstream content;
    content << in.rdbuf();
    if (!in) throw InputError("{dist_secret_file} " + std::string(file) + ": cannot read it");
    secret = content.str();
    while (!secret.empty() && std::isspace(static_cast<unsigned char>(secret.back()))) secret.pop_back();
  } else {
    return "";
  }
  if (secret.size() < 16)
    throw InputError(std::string("the rendezvous secret (") + (value && *value ? "EMOTUNE_DIST_SECRET" : file) +
                     ") is shorter than 16 bytes: use e.g. `openssl rand -hex 32`");
  return secret;
}

std::string random_secret() {
  const auto bytes = challenge();
  static const char digits[] = "0123456789abcdef";
  std::string hex;
  for (uint8_t b : bytes) {
    hex.push_back(digits[b >> 4]);
    hex.push_back(digits[b & 15]);
  }
  return hex;
}

bool is_loopback(const std::string& address) {
  Addresses addresses;
  try {
    resolve(address, 1, addresses);
  } catch (const std::exception&) {
    return false;
  }
  for (addrinfo* a = addresses.list; a; a = a->ai_next) {
    if (a->ai_family == AF_INET) {
      const uint32_t ip = ntohl(reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr.s_addr);
      if ((ip >> 24) != 127) return false;
    } else if (a->ai_family == AF_INET6) {
      if (!IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr)) return false;
    } else {
      return false;
    }
  }
  return addresses.list != nullptr;
}

}  // namespace emotune::dist
