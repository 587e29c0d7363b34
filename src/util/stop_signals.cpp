#include "util/stop_signals.h"

#include <signal.h>

#include <csignal>

namespace emotune::util {

namespace {

volatile std::sig_atomic_t g_received = 0;  // a handler may touch nothing else
struct sigaction g_old_int {}, g_old_term {};

extern "C" void record_signal(int sig) { g_received = sig; }

}  // namespace

StopSignals::StopSignals(bool second_ends_process) {
  g_received = 0;
  struct sigaction sa {};
  sa.sa_handler = record_signal;
  sa.sa_flags = second_ends_process ? SA_RESETHAND : 0;  // no SA_RESTART: blocked reads return
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &g_old_int);
  sigaction(SIGTERM, &sa, &g_old_term);
}

StopSignals::~StopSignals() {
  sigaction(SIGINT, &g_old_int, nullptr);
  sigaction(SIGTERM, &g_old_term, nullptr);
}

int StopSignals::received() { return g_received; }

int StopSignals::take() {
  const int sig = g_received;
  g_received = 0;
  return sig;
}

}  // namespace emotune::util
