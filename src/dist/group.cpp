#include "dist/group.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <stdexcept>
#include <thread>

#include <c10/util/Logging.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include "dist/store.h"
#include "util/errors.h"

namespace emotune::dist {

namespace {

std::optional<long> env_integer(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return std::nullopt;
  long n = 0;
  const std::string s(v);
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || end != s.data() + s.size())
    throw std::invalid_argument(std::string(name) + "='" + s + "' is not an integer");
  return n;
}

// The first line of a library's message, without gloo's "[file.cc:line] " source location.
std::string first_line(const std::string& s) {
  std::string line = s.substr(0, s.find('\n'));
  if (line.rfind("[", 0) == 0 && line.find("] ") != std::string::npos) line = line.substr(line.find("] ") + 2);
  return line;
}

std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

// One line of a library's exception: c10's without its backtrace.
std::string library_message(const std::exception& e) {
  const auto* c10 = dynamic_cast<const c10::Error*>(&e);
  return first_line(c10 ? c10->what_without_backtrace() : e.what());
}

// A failure this code diagnosed itself, already worded for the user.
struct GroupError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace

std::optional<Launch> launch_from_environment() {
  const auto world = env_integer("WORLD_SIZE");
  if (!world) return std::nullopt;
  Launch l;
  if (*world < 1 || *world > 65536) throw std::invalid_argument("WORLD_SIZE=" + std::to_string(*world) + " must be in 1..65536");
  l.world_size = static_cast<int>(*world);
  const auto rank = env_integer("RANK");
  if (!rank) throw std::invalid_argument("WORLD_SIZE is set but RANK is not (launch with torchrun or emotune train {nproc_per_node})");
  if (*rank < 0 || *rank >= l.world_size)
    throw std::invalid_argument("RANK=" + std::to_string(*rank) + " is outside 0.." + std::to_string(l.world_size - 1) +
                                " (WORLD_SIZE=" + std::to_string(l.world_size) + ")");
  l.rank = static_cast<int>(*rank);
  l.local_rank = static_cast<int>(env_integer("LOCAL_RANK").value_or(l.rank));
  l.local_world_size = static_cast<int>(env_integer("LOCAL_WORLD_SIZE").value_or(l.world_size));
  if (l.local_rank < 0 || l.local_rank >= l.local_world_size)
    throw std::invalid_argument("LOCAL_RANK=" + std::to_string(l.local_rank) + " is outside 0.." +
                                std::to_string(l.local_world_size - 1));
  if (const char* addr = std::getenv("MASTER_ADDR"); addr && *addr) l.master_addr = addr;
  if (const auto port = env_integer("MASTER_PORT")) {
    if (*port < 1 || *port > 65535) throw std::invalid_argument("MASTER_PORT=" + std::to_string(*port) + " is outside 1..65535");
    l.master_port = static_cast<int>(*port);
  }
  l.secret = rendezvous_secret();
  return l;
}

Backend parse_backend(const std::string& name) {
  if (name == "gloo") return Backend::gloo;
  if (name == "nccl") return Backend::nccl;
  throw std::invalid_argument("{dist_backend} must be gloo or nccl, not '" + name + "'");
}

std::string local_address_towards(const std::string& master_addr, int master_port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(master_addr.c_str(), std::to_string(master_port).c_str(), &hints, &found); rc != 0)
    throw std::runtime_error("MASTER_ADDR " + master_addr + ": " + ::gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(found, ::freeaddrinfo);
  // Connecting a UDP socket sends nothing; it only asks the kernel which local address routes there.
  const int fd = ::socket(found->ai_family, SOCK_DGRAM, 0);
  if (fd < 0) throw std::runtime_error("cannot open a socket to find this host's address");
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  const bool ok = ::connect(fd, found->ai_addr, found->ai_addrlen) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0;
  ::close(fd);
  if (!ok) throw std::runtime_error("MASTER_ADDR " + master_addr + ": no route from this host");
  char text[INET6_ADDRSTRLEN] = {};
  const void* raw = local.ss_family == AF_INET6 ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(&local)->sin6_addr)
                                                : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(&local)->sin_addr);
  ::inet_ntop(local.ss_family, raw, text, sizeof text);
  return text;
}

struct Group::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  std::string me;  // "rank R of W"
  std::chrono::seconds timeout{300};

  // c10d reports a lost peer as a c10::Error with a backtrace: say what it means, in one line.
  template <class F>
  auto guarded(const char* what, F&& f) {
    try {
      return f();
    } catch (const GroupError&) {
      throw;
    } catch (const std::exception& e) {
      throw std::runtime_error(me + ": " + what + " failed: " + library_message(e) +
                               " (another rank stopped or became unreachable; see its error)");
    }
  }

  void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
    guarded(what, [&] { return work->wait(std::chrono::duration_cast<std::chrono::milliseconds>(timeout)); });
  }

  // Starts `start` on each tensor (one collective each, all in flight together), then waits for all.
  template <class Start>
  void each_in_flight(std::vector<torch::Tensor>& tensors, const char* what, Start start) {
    std::vector<c10::intrusive_ptr<c10d::Work>> work;
    for (auto& t : tensors) {
      std::vector<at::Tensor> one{t};
      work.push_back(guarded(what, [&] { return start(one); }));
    }
    for (auto& w : work) wait(w, what);
  }
};

Group::Group() : impl_(std::make_unique<Impl>()) { impl_->me = "rank 0 of 1"; }
Group::~Group() = default;
Group::Group(Group&&) noexcept = default;
Group& Group::operator=(Group&&) noexcept = default;

namespace {
// Debian's libtorch logs through glog, an upstream libtorch 2.x through c10's own logger.
void quieten_c10d_logs() {
#if defined(C10_USE_GLOG)
  FLAGS_minloglevel = google::GLOG_FATAL;
#else
  FLAGS_caffe2_log_level = c10::GLOG_FATAL;
#endif
}
}  // namespace

Group::Group(const Launch& l, const GroupOptions& options)
    : impl_(std::make_unique<Impl>()), rank_(l.rank), size_(l.world_size) {
  impl_->timeout = options.timeout;
  if (options.backend == Backend::nccl)
    throw std::runtime_error("{dist_backend} nccl is not supported yet: use gloo");
  // c10d logs each failure before it throws; the exception, worded below, says it once.
  quieten_c10d_logs();
  const std::string where = l.master_addr + ":" + std::to_string(l.master_port);
  const std::string me = "rank " + std::to_string(l.rank) + " of " + std::to_string(l.world_size);
  impl_->me = me;
  // Over the network only ranks holding the secret may meet; on one host nothing listens beyond loopback.
  if (l.secret.empty() && !is_loopback(l.master_addr))
    throw SettingError(me + ": MASTER_ADDR " + l.master_addr + " is not this host's loopback, and ranks on several hosts "
                       "need a shared secret: {dist_secret_file} FILE (the same on every host) or EMOTUNE_DIST_SECRET");
  c10::intrusive_ptr<RendezvousStore> tcp;
  try {
    tcp = c10::make_intrusive<RendezvousStore>(l.master_addr, l.master_port, l.secret, l.rank == 0,
                                               std::chrono::duration_cast<std::chrono::milliseconds>(options.timeout));
  } catch (const SettingError&) {
    throw;  // refused: the message says why
  } catch (const std::exception& e) {
    const std::string why = library_message(e);
    throw std::runtime_error(me + ": " +
                             (l.rank == 0 ? "cannot listen on MASTER_ADDR:MASTER_PORT " + where + " (" + why +
                                                "; is the port in use or the address not this host's?)"
                                          : "cannot reach the master at " + where + " within " +
                                                std::to_string(options.timeout.count()) +
                                                " s (is rank 0 running, and are MASTER_ADDR/MASTER_PORT right?)"));
  }
  impl_->store = tcp;
  impl_->guarded("rendezvous", [&] {
    // Two processes claiming one rank, or ranks started with different world sizes, would deadlock.
    if (tcp->add("emotune/rank/" + std::to_string(l.rank), 1) != 1)
      throw GroupError(me + ": two processes were started as RANK=" + std::to_string(l.rank));
    tcp->set("emotune/world_size/" + std::to_string(l.rank), bytes_of(std::to_string(l.world_size)));
    const auto writer_world = tcp->get("emotune/world_size/0");
    if (std::string(writer_world.begin(), writer_world.end()) != std::to_string(l.world_size))
      throw GroupError(me + ": WORLD_SIZE=" + std::to_string(l.world_size) + " here but " +
                       std::string(writer_world.begin(), writer_world.end()) + " on rank 0");
    tcp->add("emotune/joined", 1);
    // Rank 0 waits until all have joined, so that a missing rank is named rather than timing out in gloo.
    if (l.rank == 0) {
      const auto deadline = std::chrono::steady_clock::now() + options.timeout;
      while (tcp->add("emotune/joined", 0) < l.world_size) {
        if (std::chrono::steady_clock::now() > deadline)
          throw GroupError(me + ": only " + std::to_string(tcp->add("emotune/joined", 0)) + " of WORLD_SIZE=" +
                           std::to_string(l.world_size) + " ranks joined within " +
                           std::to_string(options.timeout.count()) + " s");
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
    return 0;
  });
  auto gloo = c10d::ProcessGroupGloo::Options::create(std::chrono::duration_cast<std::chrono::milliseconds>(options.timeout));
  impl_->guarded("creating the gloo group", [&] {
    if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"); ifname && *ifname)
      gloo->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
    else
      gloo->devices.push_back(
          c10d::ProcessGroupGloo::createDeviceForHostname(local_address_towards(l.master_addr, l.master_port)));
    impl_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(
        c10::make_intrusive<c10d::PrefixStore>("emotune/gloo", impl_->store), l.rank, l.world_size, gloo);
    return 0;
  });
  barrier();
}

std::string Group::who() const { return impl_->me; }

void Group::all_reduce_sum(std::vector<torch::Tensor>& tensors) {
  if (size_ == 1) return;
  impl_->each_in_flight(tensors, "all-reduce", [&](std::vector<at::Tensor>& one) { return impl_->pg->allreduce(one); });
}

bool Group::any(bool flag) {
  if (size_ == 1) return flag;
  std::vector<torch::Tensor> t{torch::full({1}, flag ? 1.0f : 0.0f)};
  all_reduce_sum(t);
  return t[0].item<float>() > 0;
}

void Group::broadcast_from_writer(std::vector<torch::Tensor>& tensors) {
  if (size_ == 1) return;
  impl_->each_in_flight(tensors, "broadcast", [&](std::vector<at::Tensor>& one) { return impl_->pg->broadcast(one); });
}

torch::Tensor Group::all_gather_rows(const torch::Tensor& local) {
  if (size_ == 1) return local;
  // gloo gathers equal shapes: agree on the counts, pad every part to the largest, then trim.
  std::vector<std::vector<at::Tensor>> counts_out(1);
  for (int r = 0; r < size_; ++r) counts_out[0].push_back(torch::zeros({1}, torch::kInt64));
  std::vector<at::Tensor> count_in{torch::full({1}, local.size(0), torch::kInt64)};
  impl_->wait(impl_->guarded("all-gather", [&] { return impl_->pg->allgather(counts_out, count_in); }), "all-gather");
  int64_t most = 0;
  for (const auto& c : counts_out[0]) most = std::max(most, c.item<int64_t>());
  auto shape = local.sizes().vec();
  shape[0] = most;
  auto padded = torch::zeros(shape, local.options());
  padded.narrow(0, 0, local.size(0)).copy_(local);
  std::vector<std::vector<at::Tensor>> parts(1);
  for (int r = 0; r < size_; ++r) parts[0].push_back(torch::empty(shape, local.options()));
  std::vector<at::Tensor> in{padded};
  impl_->wait(impl_->guarded("all-gather", [&] { return impl_->pg->allgather(parts, in); }), "all-gather");
  std::vector<torch::Tensor> rows;
  for (int r = 0; r < size_; ++r) rows.push_back(parts[0][r].narrow(0, 0, counts_out[0][r].item<int64_t>()));
  return torch::cat(rows, 0);
}

void Group::barrier() {
  if (size_ == 1) return;
  // An all-reduce of one number rather than c10d's barrier, which gloo implements with its own timeout.
  std::vector<torch::Tensor> t{torch::zeros({1})};
  all_reduce_sum(t);
}

std::string Group::writer_value(const std::string& key, const std::string& value) {
  if (size_ == 1) return value;
  return impl_->guarded("agreeing on a value", [&] {
    const std::string k = "emotune/value/" + key;
    if (rank_ == 0) impl_->store->set(k, bytes_of(value));
    const auto got = impl_->store->get(k);  // waits, up to the timeout, for rank 0's set
    return std::string(got.begin(), got.end());
  });
}

void Group::require_same(const std::string& what, const std::string& value) {
  const std::string writer = writer_value("same/" + what, value);
  if (writer != value)
    throw GroupError(impl_->me + ": " + what + " is " + value + " here but " + writer +
                             " on rank 0 (start every rank with the same arguments and data)");
}

}  // namespace emotune::dist
