// The rendezvous store of a data-parallel run: the key-value store (torch.distributed's c10d::Store
// API) through which the ranks meet and gloo swaps its addresses; its protocol and server are in
// dist/rendezvous.h. Rank 0 serves it on MASTER_ADDR's
// own address and nowhere else (libtorch 1.13's TCPStore listens on every interface and answers
// anyone), and it serves only a peer that has proven it holds the run's secret: both sides answer
// the other's fresh 32-byte challenge with HMAC-SHA256 under the secret before any key is read or
// written. The secret is never sent. Keys and values are not encrypted: what they carry (ranks,
// world size, gloo's addresses, a checkpoint's name) is not secret, only who may write it.
#pragma once

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dist/rendezvous.h"

namespace emotune::dist {

class RendezvousStore : public c10d::Store {
 public:
  // serve: this process is rank 0; it listens on `address` (which must be one of this host's) at
  // `port`, then connects to itself like every other rank. Otherwise it connects to `address`:`port`,
  // retrying until `timeout`. A refused proof, a peer that is not an emotune rendezvous, or no answer
  // within `timeout` throws one line naming the address.
  RendezvousStore(const std::string& address, int port, const std::string& secret, bool serve,
                  std::chrono::milliseconds timeout);
  ~RendezvousStore() override;

  void set(const std::string& key, const std::vector<uint8_t>& value) override;
  std::vector<uint8_t> compareSet(const std::string& key, const std::vector<uint8_t>& expected,
                                  const std::vector<uint8_t>& desired) override;
  std::vector<uint8_t> get(const std::string& key) override;  // waits for the key, up to the timeout
  int64_t add(const std::string& key, int64_t value) override;
  bool deleteKey(const std::string& key) override;
  bool check(const std::vector<std::string>& keys) override;
  int64_t getNumKeys() override;
  void wait(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override;
  // A second connection to the same store (libtorch 2.x asks for one; 1.13 has no such method).
  c10::intrusive_ptr<c10d::Store> clone();

  // Where rank 0's server listens ("ADDRESS:PORT"); empty on the other ranks.
  std::string listening_address() const;

 private:
  std::string address_, secret_;
  int port_;
  std::string where_;  // "ADDRESS:PORT", for messages
  std::unique_ptr<rendezvous::Server> server_;
  rendezvous::Socket connection_;
  std::mutex mutex_;  // one request at a time on the connection
};

}  // namespace emotune::dist
