// The service's counters and histograms, rendered in the Prometheus text format for GET /metrics.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace emotune::serve {

class ServerMetrics {
 public:
  void observe_request(const std::string& route, int status, double seconds);
  void observe_batch(std::size_t texts);
  void set_model_load_seconds(double s) { load_seconds_ = s; }
  std::string prometheus() const;

 private:
  struct Histogram {
    std::vector<double> bounds;
    std::vector<std::uint64_t> counts;  // per bound, cumulative when rendered
    double sum = 0;
    std::uint64_t total = 0;
    void observe(double v);
  };
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, std::uint64_t> requests_;
  Histogram latency_{{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}, {}, 0, 0};
  Histogram batch_{{1, 2, 4, 8, 16, 32, 64, 128}, {}, 0, 0};
  std::uint64_t texts_ = 0;
  double load_seconds_ = 0;
};

}  // namespace emotune::serve
