// SIGINT and SIGTERM as a request to stop, for the commands whose loops stop cleanly (train saves a
// checkpoint, monitor writes its report, the launcher forwards the signal to its workers). While a
// StopSignals lives, either signal only records itself for the loop to notice; the handlers that were
// there before come back when it ends. One at a time per process. (serve takes its signals with
// sigwait on a thread of its own instead: serve/server.cpp.)
#pragma once

namespace emotune::util {

class StopSignals {
 public:
  // second_ends_process: a second signal is not caught (the default action ends the process at once:
  // a second Ctrl-C when saving takes too long). Blocking calls (read, poll) are interrupted by the
  // signal rather than restarted, so a loop waiting for input notices it.
  explicit StopSignals(bool second_ends_process = false);
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // The signal received since construction or the last take(), or 0.
  static int received();
  // received(), and forgets it.
  static int take();
};

}  // namespace emotune::util
