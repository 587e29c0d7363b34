// The data-parallel pieces without a training run: torchrun's environment, the launcher's command
// line, and the collectives of two ranks (two threads of this process, over loopback).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <future>
#include <thread>

#include "dist/gradients.h"
#include "dist/group.h"
#include "dist/launcher.h"

namespace emotune::dist {
namespace {

class Environment : public ::testing::Test {
 protected:
  void TearDown() override {
    for (const char* v : {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"}) ::unsetenv(v);
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
  EXPECT_THROW(run_workers(o), std::invalid_argument);  // no --master-addr
  o.master_addr = "127.0.0.1";
  o.node_rank = 2;
  EXPECT_THROW(run_workers(o), std::invalid_argument);
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

}  // namespace
}  // namespace emotune::dist
