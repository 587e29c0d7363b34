// The data-parallel pieces without a training run: torchrun's environment, the launcher's command
// line, the rendezvous store (its address, its secret, its bounds), and the collectives of two ranks
// (two threads of this process, over loopback).
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include "expect_error.h"
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <future>
#include <limits>
#include <thread>

#include "dist/gradients.h"
#include "dist/group.h"
#include "dist/launcher.h"
#include "dist/store.h"

namespace emotune::dist {
namespace {

class Environment : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const char* v : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
                          "EMOTUNE_DIST_SECRET", "EMOTUNE_DIST_SECRET_FILE"})
      ::unsetenv(v);
  }
};

TEST_F(Environment, NoWorldSizeMeansOneProcess) { EXPECT_FALSE(launch_from_environment().has_value()); }

TEST_F(Environment, ReadsTorchrunsVariables) {
  ::setenv("WORLD_SIZE", "4", 1);
  ::setenv("RANK", "3", 1);
  ::setenv("LOCAL_RANK", "1", 1);
  ::setenv("LOCAL_WORLD_SIZE", "2", 1);
  ::setenv("MASTER_ADDR", "10.0.0.1", 1);
  ::setenv("MASTER_PORT", "1234", 1);
  const auto l = launch_from_environment();
  ASSERT_TRUE(l.has_value());
  EXPECT_EQ(l->rank, 3);
  EXPECT_EQ(l->world_size, 4);
  EXPECT_EQ(l->local_rank, 1);
  EXPECT_EQ(l->local_world_size, 2);
  EXPECT_EQ(l->master_addr, "10.0.0.1");
  EXPECT_EQ(l->master_port, 1234);
}

TEST_F(Environment, RefusesInconsistentValues) {
  auto message = [] {
    try {
      launch_from_environment();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  ::setenv("WORLD_SIZE", "2", 1);
  EXPECT_NE(message().find("RANK is not"), std::string::npos);
  ::setenv("RANK", "2", 1);
  EXPECT_NE(message().find("RANK=2 is outside 0..1"), std::string::npos);
  ::setenv("RANK", "x", 1);
  EXPECT_NE(message().find("RANK='x' is not an integer"), std::string::npos);
  ::setenv("RANK", "1", 1);
  ::setenv("MASTER_PORT", "70000", 1);
  EXPECT_NE(message().find("MASTER_PORT=70000"), std::string::npos);
  ::setenv("WORLD_SIZE", "0", 1);
  EXPECT_NE(message().find("WORLD_SIZE=0"), std::string::npos);
}

TEST(Launcher, WorkersGetTheCommandWithoutTheLaunchersFlags) {
  const std::vector<std::string> args{"emotune", "train", "--nproc-per-node", "2", "--output", "o", "--nnodes=2",
                                      "--node-rank", "1", "--master-addr", "h", "--master-port=9", "--lr", "1e-4"};
  EXPECT_EQ(worker_arguments(args), (std::vector<std::string>{"emotune", "train", "--output", "o", "--lr", "1e-4"}));
}

TEST(Launcher, RefusesImpossibleLaunches) {
  LauncherOptions o;
  o.nproc_per_node = 1;
  o.nnodes = 2;
  EXPECT_THROW_MESSAGE(run_workers(o), std::invalid_argument, "needs {master_addr}");
  o.master_addr = "127.0.0.1";
  o.node_rank = 2;
  EXPECT_THROW_MESSAGE(run_workers(o), std::invalid_argument, "{node_rank} 2 is outside 0..1");
}

TEST(Group, OfOneDoesNothing) {
  Group g;
  EXPECT_EQ(g.size(), 1);
  EXPECT_TRUE(g.is_writer());
  std::vector<torch::Tensor> t{torch::ones({3})};
  g.all_reduce_sum(t);
  EXPECT_TRUE(t[0].equal(torch::ones({3})));
  EXPECT_TRUE(g.any(true));
  EXPECT_FALSE(g.any(false));
  EXPECT_TRUE(g.all_gather_rows(torch::ones({2, 3})).equal(torch::ones({2, 3})));
}

// Runs `body(group)` as ranks 0 and 1 on two threads; returns what each returned.
template <class F>
auto two_ranks(F body) {
  const int port = free_local_port();
  auto run = [&](int rank) {
    Launch l;
    l.rank = rank;
    l.world_size = 2;
    l.master_port = port;
    GroupOptions o;
    o.timeout = std::chrono::seconds(20);
    Group g(l, o);
    return body(g);
  };
  auto zero = std::async(std::launch::async, run, 0);
  auto one = std::async(std::launch::async, run, 1);
  return std::pair{zero.get(), one.get()};
}

TEST(Group, TwoRanksSumGatherAndAgree) {
  const auto [a, b] = two_ranks([](Group& g) {
    const auto r = static_cast<float>(g.rank());
    std::vector<torch::Tensor> t{torch::full({5}, r + 1), torch::arange(3, torch::kFloat32) * (r + 1)};
    g.all_reduce_sum(t);
    // rank 0 holds 1 row, rank 1 holds 3: gathered in rank order
    const auto gathered = g.all_gather_rows(torch::full({g.rank() == 0 ? 1 : 3, 2}, r));
    std::vector<torch::Tensor> b{torch::full({2}, r + 7)};
    g.broadcast_from_writer(b);
    const bool any = g.any(g.rank() == 1);
    const std::string chosen = g.writer_value("k", g.rank() == 0 ? "from-zero" : "");
    return std::tuple{t[0], t[1], gathered, b[0], any, chosen};
  });
  for (const auto& [sum5, sum3, gathered, broadcast, any, chosen] : {a, b}) {
    EXPECT_TRUE(sum5.equal(torch::full({5}, 3.0f)));
    EXPECT_TRUE(sum3.equal(torch::arange(3, torch::kFloat32) * 3));
    ASSERT_EQ(gathered.size(0), 4);
    EXPECT_TRUE(gathered[0].equal(torch::zeros({2})));
    EXPECT_TRUE(gathered.narrow(0, 1, 3).equal(torch::ones({3, 2})));
    EXPECT_TRUE(broadcast.equal(torch::full({2}, 7.0f)));
    EXPECT_TRUE(any);
    EXPECT_EQ(chosen, "from-zero");
  }
}

TEST(Group, RanksWithDifferentSetupsAreTold) {
  const auto [a, b] = two_ranks([](Group& g) {
    try {
      g.require_same("the setup", g.rank() == 0 ? "batch 16" : "batch 8");
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("agreed");
  });
  EXPECT_EQ(a, "agreed");
  EXPECT_NE(b.find("the setup is batch 8 here but batch 16 on rank 0"), std::string::npos) << b;
}

TEST(GradientReducer, SumsDenseAndTokenRowsAndKeepsMissingGradientsMissing) {
  const auto [a, b] = two_ranks([](Group& g) {
    const float r = static_cast<float>(g.rank());
    auto table = torch::zeros({6, 2}).requires_grad_();
    auto dense = torch::zeros({3}).requires_grad_();
    auto unused = torch::zeros({2}).requires_grad_();
    auto only_rank0 = torch::zeros({2}).requires_grad_();
    // rank 0 looked up rows 1 and 4, rank 1 rows 4 and 5: the gradient is zero elsewhere
    const auto ids = g.rank() == 0 ? torch::tensor({1, 4, 4}) : torch::tensor({5, 4});
    table.mutable_grad() = torch::zeros({6, 2}).index_fill_(0, ids, r + 1);
    dense.mutable_grad() = torch::full({3}, r + 1);
    if (g.rank() == 0) only_rank0.mutable_grad() = torch::ones({2});
    GradientReducer reducer(g, {table, dense, unused, only_rank0}, 0);
    reducer.reduce(ids);
    return std::tuple{table.grad().clone(), dense.grad().clone(), unused.grad().defined(), only_rank0.grad().clone()};
  });
  for (const auto& [table, dense, unused_defined, only0] : {a, b}) {
    const auto expected = torch::tensor({0.f, 1.f, 0.f, 0.f, 3.f, 2.f}).unsqueeze(1).expand({6, 2});
    EXPECT_TRUE(table.equal(expected)) << table;
    EXPECT_TRUE(dense.equal(torch::full({3}, 3.0f)));
    EXPECT_FALSE(unused_defined);
    EXPECT_TRUE(only0.equal(torch::ones({2})));
  }
}

TEST(Group, UnreachableMasterIsNamedWithinTheTimeout) {
  Launch l;
  l.rank = 1;
  l.world_size = 2;
  l.master_port = free_local_port();
  GroupOptions o;
  o.timeout = std::chrono::seconds(2);
  const auto t0 = std::chrono::steady_clock::now();
  try {
    Group g(l, o);
    FAIL() << "joined a group with no rank 0";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1 of 2: cannot reach the master at 127.0.0.1:"), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));
}

using emotune::tests::message_of;

std::vector<uint8_t> bytes(const std::string& s) { return {s.begin(), s.end()}; }

const std::string kSecret = "0123456789abcdef-the-run-secret";

// 127.0.0.1:port, for the tests' own raw sockets.
sockaddr_in loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

TEST(RendezvousStore, ServesOnItsAddressAloneAndAnswersEveryRequest) {
  const int port = free_local_port();
  RendezvousStore master("127.0.0.1", port, kSecret, true, std::chrono::seconds(5));
  // Bound to the address given, not the wildcard that TCPStore takes.
  EXPECT_EQ(master.listening_address(), "127.0.0.1:" + std::to_string(port));
  RendezvousStore rank1("127.0.0.1", port, kSecret, false, std::chrono::seconds(5));
  EXPECT_EQ(rank1.listening_address(), "");
  rank1.set("a", bytes("one"));
  EXPECT_EQ(master.get("a"), bytes("one"));
  EXPECT_EQ(master.add("n", 2), 2);
  EXPECT_EQ(rank1.add("n", 5), 7);
  EXPECT_EQ(master.get("n"), bytes("7"));  // as c10d's stores keep counters: decimal text
  EXPECT_TRUE(rank1.check({"a", "n"}));
  EXPECT_FALSE(rank1.check({"a", "absent"}));
  EXPECT_EQ(rank1.compareSet("a", bytes("two"), bytes("three")), bytes("one"));  // not "two": unchanged
  EXPECT_EQ(rank1.compareSet("a", bytes("one"), bytes("three")), bytes("three"));
  EXPECT_EQ(rank1.compareSet("fresh", {}, bytes("x")), bytes("x"));
  EXPECT_EQ(master.getNumKeys(), 3);
  EXPECT_TRUE(rank1.deleteKey("fresh"));
  EXPECT_FALSE(rank1.deleteKey("fresh"));
  EXPECT_NE(message_of([&] { rank1.add("a", 1); }).find("key 'a' does not hold a number"), std::string::npos);
  // A sum past int64 is refused and leaves the counter as it was (the fuzzer found the wrap-around).
  EXPECT_EQ(rank1.add("big", std::numeric_limits<int64_t>::max()), std::numeric_limits<int64_t>::max());
  EXPECT_NE(message_of([&] { rank1.add("big", 1); }).find("adding to key 'big' would overflow"), std::string::npos);
  EXPECT_EQ(rank1.add("big", -1), std::numeric_limits<int64_t>::max() - 1);
  EXPECT_TRUE(rank1.deleteKey("big"));
  // get and wait block until another rank sets the key.
  auto later = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    master.set("late", bytes("here"));
  });
  EXPECT_EQ(rank1.get("late"), bytes("here"));
  later.get();
  rank1.wait({"a", "late"}, std::chrono::seconds(1));
  // A second connection (libtorch 2.x's clone) sees the same keys.
  EXPECT_EQ(rank1.clone()->get("late"), bytes("here"));
}

TEST(RendezvousStore, RefusesARankWithoutTheSecretAndServesTheOthers) {
  const int port = free_local_port();
  RendezvousStore master("127.0.0.1", port, kSecret, true, std::chrono::seconds(5));
  const std::string refused =
      message_of([&] { RendezvousStore("127.0.0.1", port, kSecret + "-not", false, std::chrono::seconds(5)); });
  EXPECT_NE(refused.find("the rendezvous at 127.0.0.1:" + std::to_string(port) + ": rank 0 refused this rank: its secret differs"),
            std::string::npos) << refused;
  EXPECT_NE(message_of([&] { RendezvousStore("127.0.0.1", port, "", false, std::chrono::seconds(5)); }).find("refused"),
            std::string::npos);
  // A peer that skips the handshake and sends requests gets no key: its bytes are taken as a proof,
  // which fails, and the connection closes.
  master.set("gloo/address", bytes("10.0.0.1:4000"));
  const int raw = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in to = loopback(port);
  ASSERT_EQ(::connect(raw, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
  std::string request(64, '\0');  // exactly a challenge and a proof's length, so all of it is read
  request[0] = 3;                  // shaped as a get of the key
  request.replace(5, 12, "gloo/address");
  ASSERT_EQ(::send(raw, request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
  std::string received;
  char buffer[256];
  for (ssize_t n; (n = ::recv(raw, buffer, sizeof buffer, 0)) > 0;) received.append(buffer, static_cast<std::size_t>(n));
  ::close(raw);
  EXPECT_EQ(received.size(), 21u + 32u + 1u) << "hello, challenge and one refusal byte, then the end";
  EXPECT_EQ(received.find("10.0.0.1"), std::string::npos);
  // The rank with the secret is served all along.
  RendezvousStore rank1("127.0.0.1", port, kSecret, false, std::chrono::seconds(5));
  EXPECT_EQ(rank1.get("gloo/address"), bytes("10.0.0.1:4000"));
}

TEST(RendezvousStore, AMissingKeyIsNamedAfterTheTimeout) {
  const int port = free_local_port();
  RendezvousStore master("127.0.0.1", port, kSecret, true, std::chrono::seconds(1));
  const auto t0 = std::chrono::steady_clock::now();
  const std::string e = message_of([&] { master.get("never"); });
  EXPECT_NE(e.find("key 'never' did not appear within 1 s"), std::string::npos) << e;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  EXPECT_NE(message_of([&] { master.wait({"never"}, std::chrono::milliseconds(300)); }).find("did not appear"),
            std::string::npos);
}

TEST(RendezvousStore, ANonEmotuneListenerIsNamed) {
  const int port = free_local_port();
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in at = loopback(port);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&at), sizeof at), 0);
  ::listen(listener, 1);
  auto other = std::async(std::launch::async, [&] {
    const int c = ::accept(listener, nullptr, nullptr);
    const std::string banner = "SSH-2.0-OpenSSH_9.2 and then some more bytes for good measure\r\n";
    ::send(c, banner.data(), banner.size(), MSG_NOSIGNAL);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ::close(c);
  });
  const std::string e = message_of([&] { RendezvousStore("127.0.0.1", port, kSecret, false, std::chrono::seconds(3)); });
  other.get();
  ::close(listener);
  EXPECT_NE(e.find("not an emotune rendezvous"), std::string::npos) << e;
}

TEST_F(Environment, TheSecretComesFromTheVariableOrAPrivateFile) {
  EXPECT_EQ(rendezvous_secret(), "");
  const auto file = std::filesystem::temp_directory_path() / ("emotune_secret_" + std::to_string(::getpid()));
  { std::ofstream(file) << "s3cret-s3cret-s3cret-s3cret\n"; }
  ::setenv("EMOTUNE_DIST_SECRET_FILE", file.c_str(), 1);
  ::chmod(file.c_str(), 0644);
  EXPECT_NE(message_of([] { rendezvous_secret(); }).find("may be read by others: chmod 600"), std::string::npos);
  ::chmod(file.c_str(), 0600);
  EXPECT_EQ(rendezvous_secret(), "s3cret-s3cret-s3cret-s3cret");
  { std::ofstream(file) << "short\n"; }
  EXPECT_NE(message_of([] { rendezvous_secret(); }).find("shorter than 16 bytes"), std::string::npos);
  ::setenv("EMOTUNE_DIST_SECRET", "from-the-variable-0123456789", 1);
  EXPECT_EQ(rendezvous_secret(), "from-the-variable-0123456789");
  std::filesystem::remove(file);
  EXPECT_EQ(random_secret().size(), 64u);
  EXPECT_NE(random_secret(), random_secret());
}

TEST(Group, RanksOnSeveralHostsNeedASecret) {
  EXPECT_TRUE(is_loopback("127.0.0.1"));
  EXPECT_TRUE(is_loopback("::1"));
  EXPECT_FALSE(is_loopback("10.1.2.3"));
  Launch l;
  l.rank = 1;
  l.world_size = 2;
  l.master_addr = "10.1.2.3";
  GroupOptions o;
  o.timeout = std::chrono::seconds(1);
  const std::string e = message_of([&] { Group g(l, o); });
  EXPECT_NE(e.find("rank 1 of 2: MASTER_ADDR 10.1.2.3 is not this host's loopback"), std::string::npos) << e;
  EXPECT_NE(e.find("{dist_secret_file}"), std::string::npos) << e;
}

}  // namespace
}  // namespace emotune::dist
