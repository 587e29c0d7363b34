#include "dist/launcher.h"
#include "dist/store.h"

#include <netinet/in.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <fstream>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <thread>

#include "util/stop_signals.h"

namespace emotune::dist {

namespace {


std::vector<std::string> own_command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  std::size_t at = 0;
  while (at < all.size()) {
    const auto end = all.find('\0', at);
    args.push_back(all.substr(at, end - at));
    if (end == std::string::npos) break;
    at = end + 1;
  }
  if (args.empty()) throw std::runtime_error("cannot read this process's command line from /proc/self/cmdline");
  return args;
}

}  // namespace

int free_local_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  const bool ok = fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  if (fd >= 0) ::close(fd);
  if (!ok) throw std::runtime_error("cannot find a free local port for the workers (give {master_port})");
  return ntohs(a.sin_port);
}

namespace {

struct Worker {
  int rank = 0;
  pid_t pid = -1;
  std::optional<int> status;  // exit status once ended (128 + signal when killed)
};

pid_t start_worker(const std::vector<std::string>& args, const std::vector<std::pair<std::string, std::string>>& env,
                   pid_t group) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("cannot start a worker process (fork failed)");
  if (pid > 0) {
    ::setpgid(pid, group ? group : pid);
    return pid;
  }
  // The workers form their own process group, so that a terminal's Ctrl-C reaches the launcher alone
  // and each worker sees one SIGINT per Ctrl-C, as a single process would; and they end with the launcher.
  ::setpgid(0, group);
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  if (::getppid() != parent) ::_exit(1);
  for (const auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
  ::signal(SIGINT, SIG_DFL);
  ::signal(SIGTERM, SIG_DFL);
  ::execv("/proc/self/exe", argv.data());
  ::_exit(127);
}

}  // namespace

const std::vector<std::string>& launcher_flags() {
  static const std::vector<std::string> flags{"--nproc-per-node", "--nnodes", "--node-rank", "--master-addr", "--master-port"};
  return flags;
}

std::vector<std::string> worker_arguments(const std::vector<std::string>& args) {
  std::vector<std::string> kept;
  const auto& flags = launcher_flags();
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto& a = args[i];
    if (std::find(flags.begin(), flags.end(), a) != flags.end()) {
      ++i;  // and its value
      continue;
    }
    const bool joined = std::any_of(flags.begin(), flags.end(), [&](const std::string& f) { return a.rfind(f + "=", 0) == 0; });
    if (!joined) kept.push_back(a);
  }
  return kept;
}

int run_workers(const LauncherOptions& o) {
  if (o.nproc_per_node < 1) throw std::invalid_argument("{nproc_per_node} must be at least 1");
  if (o.nnodes < 1) throw std::invalid_argument("{nnodes} must be at least 1");
  if (o.node_rank < 0 || o.node_rank >= o.nnodes)
    throw std::invalid_argument("{node_rank} " + std::to_string(o.node_rank) + " is outside 0.." + std::to_string(o.nnodes - 1));
  if (o.nnodes > 1 && o.master_addr.empty())
    throw std::invalid_argument("{nnodes} " + std::to_string(o.nnodes) + " needs {master_addr} (the address of node 0)");
  const std::string addr = o.master_addr.empty() ? "127.0.0.1" : o.master_addr;
  const int port = o.master_port ? o.master_port : o.nnodes > 1 ? 29500 : free_local_port();
  const int world = o.nproc_per_node * o.nnodes;
  const auto args = worker_arguments(own_command_line());
  // The workers prove this secret to the rendezvous (dist/store.h); it reaches them in their
  // environment, never on a command line.
  std::string secret = rendezvous_secret();
  if (secret.empty()) {
    if (o.nnodes > 1)
      throw std::invalid_argument("{nnodes} " + std::to_string(o.nnodes) + ": ranks on several hosts need a shared secret: "
                                  "{dist_secret_file} FILE (the same content on every host, mode 600) or EMOTUNE_DIST_SECRET");
    secret = random_secret();  // one host: a fresh one, known to this launcher's workers alone
  }

  const util::StopSignals signals;  // each is forwarded to the workers, which stop cleanly

  std::vector<Worker> workers;
  pid_t group = 0;
  for (int i = 0; i < o.nproc_per_node; ++i) {
    const int rank = o.node_rank * o.nproc_per_node + i;
    const std::vector<std::pair<std::string, std::string>> env{
        {"RANK", std::to_string(rank)},          {"WORLD_SIZE", std::to_string(world)},
        {"LOCAL_RANK", std::to_string(i)},       {"LOCAL_WORLD_SIZE", std::to_string(o.nproc_per_node)},
        {"GROUP_RANK", std::to_string(o.node_rank)}, {"MASTER_ADDR", addr},
        {"MASTER_PORT", std::to_string(port)},      {"EMOTUNE_DIST_SECRET", secret}};
    const pid_t pid = start_worker(args, env, group);
    if (!group) group = pid;
    workers.push_back(Worker{rank, pid, std::nullopt});
  }
  spdlog::info("started {} worker(s), ranks {}..{} of {}, rendezvous at {}:{}", o.nproc_per_node,
               o.node_rank * o.nproc_per_node, (o.node_rank + 1) * o.nproc_per_node - 1, world, addr, port);

  std::optional<int> first_failure;
  std::optional<std::chrono::steady_clock::time_point> failed_at;
  bool killed = false;
  for (;;) {
    if (const int sig = util::StopSignals::take()) ::kill(-group, sig);
    int status = 0;
    const pid_t pid = ::waitpid(-group, &status, WNOHANG);
    if (pid > 0) {
      auto w = std::find_if(workers.begin(), workers.end(), [&](const Worker& x) { return x.pid == pid; });
      if (w != workers.end()) {
        w->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (WIFSIGNALED(status) && !killed)
          spdlog::error("rank {} (pid {}) was killed by signal {}", w->rank, pid, WTERMSIG(status));
        if (*w->status != 0 && !first_failure) {
          first_failure = *w->status;
          failed_at = std::chrono::steady_clock::now();
        }
      }
      continue;
    }
    if (pid < 0 && errno == ECHILD) break;
    if (std::all_of(workers.begin(), workers.end(), [](const Worker& w) { return w.status.has_value(); })) break;
    if (failed_at && !killed && std::chrono::steady_clock::now() - *failed_at > std::chrono::seconds(30)) {
      spdlog::error("worker(s) still running 30 s after a rank failed: killing them");
      ::kill(-group, SIGKILL);
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!first_failure) return 0;
  const bool all_stopped = std::all_of(workers.begin(), workers.end(), [](const Worker& w) { return w.status == 130; });
  return all_stopped ? 130 : *first_failure;
}

}  // namespace emotune::dist
