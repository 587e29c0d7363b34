// `emotune train --nproc-per-node N`: torchrun's job done by the binary itself. Starts N copies of the
// command as workers with torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT), passes Ctrl-C and SIGTERM on to them, and ends when they have all ended.
#pragma once

#include <string>
#include <vector>

namespace emotune::dist {

struct LauncherOptions {
  int nproc_per_node = 0;
  int nnodes = 1;
  int node_rank = 0;
  std::string master_addr;  // default: 127.0.0.1 on one node; required on several
  int master_port = 0;      // default: a free port on one node, 29500 on several
};

// A TCP port on 127.0.0.1 that nothing listens on now (the kernel's choice; free until someone takes it).
int free_local_port();

// The flags the launcher consumes (each takes a value), removed from the workers' command line.
const std::vector<std::string>& launcher_flags();

// `args` without the launcher's flags ("--flag value" and "--flag=value" forms).
std::vector<std::string> worker_arguments(const std::vector<std::string>& args);

// Runs this process's command line (read from /proc/self/cmdline) as the workers of node `node_rank`
// and returns 0 when all succeed, 130 when they stopped on a signal, otherwise the first failure's status.
// A worker that fails makes the others fail too (they lose contact); any still running 30 s later is killed.
int run_workers(const LauncherOptions& options);

}  // namespace emotune::dist
