#include "dist/store.h"

#include <spdlog/spdlog.h>

#include <cstring>

#include "util/errors.h"

namespace emotune::dist {

using namespace rendezvous;

namespace {

std::string rendezvous_error(const std::string& where, const std::string& what) {
  return "the rendezvous at " + where + ": " + what;
}

}  // namespace

RendezvousStore::RendezvousStore(const std::string& address, int port, const std::string& secret, bool serve,
                                 std::chrono::milliseconds timeout)
    : c10d::Store(timeout), address_(address), secret_(secret), port_(port), where_(address + ":" + std::to_string(port)) {
  if (serve)
    server_ = std::make_unique<rendezvous::Server>(address, port, secret, [](const std::string& peer) {
      spdlog::warn("rendezvous: refused {}: it does not hold this run's secret", peer);
    });
  try {
    Socket s = connect_within(address, port, timeout);
    // A peer that stops answering mid-handshake or mid-request fails this rank instead of hanging it.
    s.receive_timeout(timeout + std::chrono::seconds(30));
    char magic[kMagicSize];
    s.read(magic, kMagicSize);
    if (std::memcmp(magic, kMagic, kMagicSize) != 0)
      throw std::runtime_error(rendezvous_error(where_, "the process there is not an emotune rendezvous (another program on MASTER_PORT?)"));
    uint8_t theirs[kChallenge];
    s.read(theirs, kChallenge);
    const auto mine = challenge();
    const Proof proof = prove(secret, "rank", theirs, mine.data());
    s.write(mine.data(), mine.size());
    s.write(proof.data(), proof.size());
    if (static_cast<Reply>(s.read_byte()) != Reply::ok)
      throw SettingError(rendezvous_error(where_, "rank 0 refused this rank: its secret differs (give every rank the same "
                                                 "{dist_secret_file} or EMOTUNE_DIST_SECRET)"));
    uint8_t answer[kProof];
    s.read(answer, kProof);
    if (!same(prove(secret, "master", theirs, mine.data()), answer))
      throw std::runtime_error(rendezvous_error(where_, "the process there does not hold this run's secret"));
    connection_ = std::move(s);
  } catch (const Broken& e) {
    throw std::runtime_error(rendezvous_error(where_, e.what()));
  }
}

RendezvousStore::~RendezvousStore() {
  connection_.close();  // before the server, whose handler then sees the connection close
  server_.reset();
}

std::string RendezvousStore::listening_address() const { return server_ ? server_->where() : std::string(); }

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
    case Reply::out_of_range:
      throw std::runtime_error(rendezvous_error(where, "adding to key '" + key + "' would overflow a 64-bit integer"));
    default:
      throw std::runtime_error(rendezvous_error(where, "unexpected answer to a request on key '" + key + "'"));
  }
}

}  // namespace

void RendezvousStore::set(const std::string& key, const std::vector<uint8_t>& value) {
  exchange(connection_, mutex_, where_, Frame().byte(static_cast<uint8_t>(Op::set)).field(key).field(value), timeout_,
           [&](Reply r) {
             require(r, where_, key);
             return 0;
           });
}

std::vector<uint8_t> RendezvousStore::compareSet(const std::string& key, const std::vector<uint8_t>& expected,
                                                 const std::vector<uint8_t>& desired) {
  return exchange(connection_, mutex_, where_,
                  Frame().byte(static_cast<uint8_t>(Op::compare_set)).field(key).field(expected).field(desired), timeout_, [&](Reply r) {
                    require(r, where_, key);
                    return connection_.read_bytes(kMaxValue);
                  });
}

std::vector<uint8_t> RendezvousStore::get(const std::string& key) {
  return exchange(connection_, mutex_, where_,
                  Frame().byte(static_cast<uint8_t>(Op::get)).field(key).integer(timeout_.count()), timeout_, [&](Reply r) {
                    if (r == Reply::timed_out)
                      throw std::runtime_error(rendezvous_error(where_, "key '" + key + "' did not appear within " +
                                                                           std::to_string(timeout_.count() / 1000) + " s"));
                    require(r, where_, key);
                    return connection_.read_bytes(kMaxValue);
                  });
}

int64_t RendezvousStore::add(const std::string& key, int64_t value) {
  return exchange(connection_, mutex_, where_, Frame().byte(static_cast<uint8_t>(Op::add)).field(key).integer(value), timeout_,
                  [&](Reply r) {
                    require(r, where_, key);
                    return connection_.read_integer();
                  });
}

bool RendezvousStore::deleteKey(const std::string& key) {
  return exchange(connection_, mutex_, where_, Frame().byte(static_cast<uint8_t>(Op::remove)).field(key), timeout_,
                  [&](Reply r) {
                    if (r == Reply::missing) return false;
                    require(r, where_, key);
                    return true;
                  });
}

bool RendezvousStore::check(const std::vector<std::string>& keys) {
  return exchange(connection_, mutex_, where_, Frame().byte(static_cast<uint8_t>(Op::check)).keys(keys), timeout_,
                  [&](Reply r) {
                    if (r == Reply::missing) return false;
                    require(r, where_, keys.empty() ? "" : keys[0]);
                    return true;
                  });
}

int64_t RendezvousStore::getNumKeys() {
  return exchange(connection_, mutex_, where_, Frame().byte(static_cast<uint8_t>(Op::num_keys)), timeout_, [&](Reply r) {
    require(r, where_, "");
    return connection_.read_integer();
  });
}

void RendezvousStore::wait(const std::vector<std::string>& keys) { wait(keys, timeout_); }

void RendezvousStore::wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) {
  const auto limit = timeout == kNoTimeout ? timeout_ : timeout;  // never wait without end
  exchange(connection_, mutex_, where_, Frame().byte(static_cast<uint8_t>(Op::wait)).keys(keys).integer(limit.count()), limit,
           [&](Reply r) {
             if (r == Reply::timed_out)
               throw std::runtime_error(rendezvous_error(where_, std::to_string(keys.size()) + " key(s) did not appear within " +
                                                             std::to_string(limit.count() / 1000) + " s"));
             require(r, where_, keys.empty() ? "" : keys[0]);
             return 0;
           });
}

c10::intrusive_ptr<c10d::Store> RendezvousStore::clone() {
  return c10::make_intrusive<RendezvousStore>(address_, port_, secret_, false, timeout_);
}

}  // namespace emotune::dist
