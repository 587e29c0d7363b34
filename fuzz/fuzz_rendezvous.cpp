// The rendezvous server's side of one connection (dist/rendezvous.h), over a socket pair: byte 0 says
// whether the harness proves the secret first (the rest is then served as requests) or the rest is
// the handshake itself. Nothing crashes, every request ends (waits are capped at 5 ms here), and an
// input that did not prove the secret is never served.
#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <thread>

#include "dist/rendezvous.h"

using namespace emotune::dist::rendezvous;

namespace {

const std::string kSecret = "the-fuzzing-run-secret-0123456789";

// Proves kSecret to the server as a rank does; traps if the server's own proof is wrong.
void handshake(Socket& peer, const uint8_t* server_challenge) {
  const uint8_t mine[kChallenge] = {7};
  const Proof proof = prove(kSecret, "rank", server_challenge, mine);
  peer.write(mine, kChallenge);
  peer.write(proof.data(), proof.size());
  if (peer.read_byte() != static_cast<uint8_t>(Reply::ok)) __builtin_trap();
  uint8_t answer[kProof];
  peer.read(answer, kProof);
  if (!same(prove(kSecret, "master", server_challenge, mine), answer)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return 0;
  Socket server_end(fds[0]), peer(fds[1]);
  Table table(std::chrono::milliseconds(5));
  std::thread server([&] {
    try {
      table.serve(server_end, kSecret);
    } catch (const Broken&) {
    }
    server_end.close();
  });
  const bool prove_first = data[0] & 1;
  std::thread writer;
  try {
    char hello[kMagicSize + kChallenge];
    peer.read(hello, sizeof hello);
    if (std::memcmp(hello, kMagic, kMagicSize) != 0) __builtin_trap();
    if (prove_first) handshake(peer, reinterpret_cast<const uint8_t*>(hello) + kMagicSize);
    // Written on its own thread while this one reads the answers, so neither side's buffer fills up.
    writer = std::thread([&] {
      try {
        peer.write(data + 1, size - 1);
      } catch (const Broken&) {
      }
      ::shutdown(peer.fd(), SHUT_WR);
    });
  } catch (const Broken&) {
    ::shutdown(peer.fd(), SHUT_WR);
  }
  // The answers; without the harness's proof, the first one must be the refusal.
  char buffer[4096];
  bool first = true;
  for (ssize_t n; (n = ::recv(peer.fd(), buffer, sizeof buffer, 0)) > 0; first = false)
    if (first && !prove_first && buffer[0] != static_cast<char>(Reply::refused)) __builtin_trap();
  if (writer.joinable()) writer.join();
  server.join();
  return 0;
}
