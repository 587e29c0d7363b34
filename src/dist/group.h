// Data-parallel training's process group: the ranks of one run, found through torch.distributed's
// rendezvous at MASTER_ADDR:MASTER_PORT (dist/store.h: served by rank 0 on that address alone, to
// ranks that prove the run's secret) and talking over gloo (CPU), as torchrun-launched PyTorch
// programs do. A run of one process gets a group of one, whose
// collectives do nothing, so the training loop reads the same either way.
#pragma once

#include <torch/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace emotune::dist {

// Where this process stands, as torchrun's environment says it: RANK, WORLD_SIZE, LOCAL_RANK,
// LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT; and the run's secret (dist/store.h, rendezvous_secret()).
struct Launch {
  int rank = 0, world_size = 1, local_rank = 0, local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string secret;  // required unless MASTER_ADDR is this host's loopback
};

// The launch described by the environment; nothing when WORLD_SIZE is unset (a plain run). Malformed
// or inconsistent values (RANK outside 0..WORLD_SIZE-1, a port outside 1..65535) throw, naming the variable.
std::optional<Launch> launch_from_environment();

enum class Backend { gloo, nccl };
Backend parse_backend(const std::string& name);  // "gloo" | "nccl"

struct GroupOptions {
  Backend backend = Backend::gloo;
  // How long rendezvous, and then any one collective, may wait for the other ranks before this rank
  // gives up with an error: a dead or stuck rank never hangs the others for longer.
  std::chrono::seconds timeout{300};
};

class Group {
 public:
  Group();  // a group of one: this process alone
  // Joins the ranks of `launch` (blocks until all have joined, or throws after the timeout).
  Group(const Launch& launch, const GroupOptions& options);
  ~Group();
  Group(Group&&) noexcept;
  Group& operator=(Group&&) noexcept;

  int rank() const { return rank_; }
  int size() const { return size_; }
  // "rank R of W", as every error of a rank begins.
  std::string who() const;
  // Rank 0 alone writes files and the progress line.
  bool is_writer() const { return rank_ == 0; }

  // In place: every rank ends with the element-wise sum over ranks (the same bits on every rank).
  void all_reduce_sum(std::vector<torch::Tensor>& tensors);
  // True on every rank when `flag` is true on any.
  bool any(bool flag);
  // Every rank ends with rank 0's values.
  void broadcast_from_writer(std::vector<torch::Tensor>& tensors);
  // The rows of every rank's `local` [n_r, ...], in rank order; each rank passes its own n_r.
  torch::Tensor all_gather_rows(const torch::Tensor& local);
  void barrier();
  // Rank 0's `value` for `key`, on every rank (through the rendezvous store): how ranks agree on a
  // decision only rank 0 can make, such as which checkpoint to resume.
  std::string writer_value(const std::string& key, const std::string& value);
  // Throws on every rank whose `value` differs from rank 0's, naming `what` and both values: ranks
  // started with different arguments or data would train different models.
  void require_same(const std::string& what, const std::string& value);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0, size_ = 1;
};

// The address of this host's interface on the route to `master_addr` (what the other ranks can reach
// this one at): gloo listens there unless GLOO_SOCKET_IFNAME names an interface.
std::string local_address_towards(const std::string& master_addr, int master_port);

}  // namespace emotune::dist
