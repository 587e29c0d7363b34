#include "dist/rendezvous.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <list>
#include <sstream>
#include <thread>
#include <utility>

#include "util/errors.h"

namespace emotune::dist::rendezvous {

namespace {

constexpr std::size_t kMaxConnections = 1024;
constexpr auto kHandshakeTimeout = std::chrono::seconds(10);
// With no secret (one host, ranks not started by the launcher) the proofs still run, under this key.
constexpr char kNoSecret[] = "emotune: no secret (loopback only)";

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

bool authenticate(Socket& s, const std::string& secret) {
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

}  // namespace

Socket::Socket(Socket&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}

Socket& Socket::operator=(Socket&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = std::exchange(o.fd_, -1);
  }
  return *this;
}

void Socket::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void Socket::receive_timeout(std::chrono::milliseconds t) {
  timeval tv{static_cast<time_t>(t.count() / 1000), static_cast<suseconds_t>((t.count() % 1000) * 1000)};
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

void Socket::read(void* data, std::size_t n) {
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

void Socket::write(const void* data, std::size_t n) {
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

uint8_t Socket::read_byte() {
  uint8_t b = 0;
  read(&b, 1);
  return b;
}

int64_t Socket::read_integer() {
  uint8_t b[8];
  read(b, 8);
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
  return static_cast<int64_t>(v);
}

Bytes Socket::read_bytes(std::size_t limit) {
  uint8_t b[4];
  read(b, 4);
  const std::size_t n = b[0] | (b[1] << 8) | (b[2] << 16) | (static_cast<std::size_t>(b[3]) << 24);
  if (n > limit) throw Broken("a field of " + std::to_string(n) + " bytes (at most " + std::to_string(limit) + ")");
  Bytes out(n);
  if (n) read(out.data(), n);
  return out;
}

std::string Socket::read_string(std::size_t limit) {
  const Bytes b = read_bytes(limit);
  return std::string(b.begin(), b.end());
}

std::vector<std::string> Socket::read_keys() {
  const int64_t n = read_integer();
  if (n < 0 || static_cast<std::size_t>(n) > kMaxKeysPerRequest) throw Broken("too many keys in one request");
  std::vector<std::string> keys;
  for (int64_t i = 0; i < n; ++i) keys.push_back(read_string(kMaxKey));
  return keys;
}

Frame& Frame::byte(uint8_t b) {
  bytes.push_back(static_cast<char>(b));
  return *this;
}

Frame& Frame::integer(int64_t v) {
  auto u = static_cast<uint64_t>(v);
  for (int i = 0; i < 8; ++i, u >>= 8) bytes.push_back(static_cast<char>(u & 0xff));
  return *this;
}

Frame& Frame::field(const void* data, std::size_t n) {
  for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  bytes.append(static_cast<const char*>(data), n);
  return *this;
}

Frame& Frame::keys(const std::vector<std::string>& ks) {
  integer(static_cast<int64_t>(ks.size()));
  for (const auto& k : ks) field(k);
  return *this;
}

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

bool Table::serve(Socket& peer, const std::string& secret) {
  peer.receive_timeout(kHandshakeTimeout);
  if (!authenticate(peer, secret)) return false;
  peer.receive_timeout(std::chrono::milliseconds(0));
  for (;;) answer(peer);
}

void Table::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
}

// Waits until every key is present, `timeout` passes or the server stops; under `lock`.
bool Table::wait_for(std::unique_lock<std::mutex>& lock, const std::vector<std::string>& keys, int64_t timeout_ms) {
  return changed_.wait_for(lock, std::min(std::chrono::milliseconds(std::max<int64_t>(timeout_ms, 0)), longest_wait_), [&] {
    return stopping_ || std::all_of(keys.begin(), keys.end(), [&](const std::string& k) { return data_.count(k) > 0; });
  }) && !stopping_;
}

// Stores `value` under `key` if the bound on held bytes allows; under the lock.
bool Table::put(const std::string& key, Bytes value) {
  const auto it = data_.find(key);
  const std::size_t freed = it == data_.end() ? 0 : it->second.size() + key.size();
  if (stored_bytes_ - freed + value.size() + key.size() > kMaxStoredBytes) return false;
  stored_bytes_ = stored_bytes_ - freed + value.size() + key.size();
  data_[key] = std::move(value);
  changed_.notify_all();
  return true;
}

void Table::answer(Socket& s) {
  const auto op = static_cast<Op>(s.read_byte());
  Frame reply;
  auto status = [&](Reply r) { reply.byte(static_cast<uint8_t>(r)); };
  switch (op) {
    case Op::set: {
      const std::string key = s.read_string(kMaxKey);
      Bytes value = s.read_bytes(kMaxValue);
      std::lock_guard<std::mutex> lock(mutex_);
      status(put(key, std::move(value)) ? Reply::ok : Reply::full);
      break;
    }
    case Op::compare_set: {
      const std::string key = s.read_string(kMaxKey);
      const Bytes expected = s.read_bytes(kMaxValue), desired = s.read_bytes(kMaxValue);
      std::lock_guard<std::mutex> lock(mutex_);
      // As c10d's stores: set when the key holds `expected` (or is absent and `expected` empty); answer
      // the value the key holds afterwards (`expected` when it was absent and `expected` is not empty).
      const auto it = data_.find(key);
      Bytes now = it == data_.end() ? expected : it->second;
      if ((it == data_.end() && expected.empty()) || (it != data_.end() && it->second == expected)) {
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
      std::unique_lock<std::mutex> lock(mutex_);
      if (!wait_for(lock, {key}, timeout_ms)) {
        status(Reply::timed_out);
        break;
      }
      status(Reply::ok);
      reply.field(data_.at(key));
      break;
    }
    case Op::add: {
      const std::string key = s.read_string(kMaxKey);
      const int64_t delta = s.read_integer();
      std::lock_guard<std::mutex> lock(mutex_);
      int64_t value = 0;
      if (const auto it = data_.find(key); it != data_.end()) {
        const std::string text(it->second.begin(), it->second.end());
        char* end = nullptr;
        errno = 0;
        value = std::strtoll(text.c_str(), &end, 10);
        if (text.empty() || *end != '\0' || errno == ERANGE) {
          status(Reply::not_a_number);
          break;
        }
      }
      // A hostile or buggy peer may add anything: the sum must stay an int64 (no wrap-around).
      if (__builtin_add_overflow(value, delta, &value)) {
        status(Reply::out_of_range);
        break;
      }
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
      std::lock_guard<std::mutex> lock(mutex_);
      const auto it = data_.find(key);
      if (it == data_.end()) {
        status(Reply::missing);
        break;
      }
      stored_bytes_ -= it->second.size() + key.size();
      data_.erase(it);
      status(Reply::ok);
      break;
    }
    case Op::check: {
      const auto keys = s.read_keys();
      std::lock_guard<std::mutex> lock(mutex_);
      const bool all = std::all_of(keys.begin(), keys.end(), [&](const std::string& k) { return data_.count(k) > 0; });
      status(all ? Reply::ok : Reply::missing);
      break;
    }
    case Op::num_keys: {
      std::lock_guard<std::mutex> lock(mutex_);
      status(Reply::ok);
      reply.integer(static_cast<int64_t>(data_.size()));
      break;
    }
    case Op::wait: {
      const auto keys = s.read_keys();
      const int64_t timeout_ms = s.read_integer();
      std::unique_lock<std::mutex> lock(mutex_);
      status(wait_for(lock, keys, timeout_ms) ? Reply::ok : Reply::timed_out);
      break;
    }
    default:
      throw Broken("unknown request");
  }
  s.write(reply.bytes);
}

struct Server::Impl {
  struct Handler {
    std::thread thread;
    bool done = false;  // under mutex
    int fd = -1;
  };

  Socket listener;
  std::string secret, where;
  std::function<void(const std::string&)> on_refused;
  Table table{std::chrono::hours(24)};
  int wake[2] = {-1, -1};  // the destructor writes here to stop the acceptor's poll
  std::mutex mutex;
  bool stopping = false;
  std::list<Handler> handlers;
  std::thread acceptor;

  Impl(const std::string& address, int port, std::string run_secret, std::function<void(const std::string&)> refused)
      : secret(std::move(run_secret)), on_refused(std::move(refused)) {
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

  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stopping = true;
      for (auto& h : handlers)
        if (!h.done) ::shutdown(h.fd, SHUT_RDWR);
    }
    table.stop();
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
        try {
          if (!table.serve(s, secret) && on_refused) on_refused(who);
        } catch (const Broken&) {
          // The peer left, timed out in the handshake or broke the protocol: its connection ends here.
        }
        std::lock_guard<std::mutex> lock(mutex);
        h.done = true;  // before s closes, so that no shutdown() reaches a reused descriptor
        s.close();
      });
    }
  }
};

Server::Server(const std::string& address, int port, std::string secret, std::function<void(const std::string&)> on_refused)
    : impl_(std::make_unique<Impl>(address, port, std::move(secret), std::move(on_refused))) {}

Server::~Server() = default;

const std::string& Server::where() const { return impl_->where; }

}  // namespace emotune::dist::rendezvous

namespace emotune::dist {

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
  const auto bytes = rendezvous::challenge();
  static const char digits[] = "0123456789abcdef";
  std::string hex;
  for (uint8_t b : bytes) {
    hex.push_back(digits[b >> 4]);
    hex.push_back(digits[b & 15]);
  }
  return hex;
}

bool is_loopback(const std::string& address) {
  rendezvous::Addresses addresses;
  try {
    rendezvous::resolve(address, 1, addresses);
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
