#include "serve/metrics.h"

#include <sstream>

namespace emotune::serve {

void ServerMetrics::Histogram::observe(double v) {
  if (counts.size() != bounds.size()) counts.assign(bounds.size(), 0);
  for (std::size_t i = 0; i < bounds.size(); ++i)
    if (v <= bounds[i]) {
      ++counts[i];
      break;
    }
  sum += v;
  ++total;
}

void ServerMetrics::observe_request(const std::string& route, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{route, status}];
  latency_.observe(seconds);
}

void ServerMetrics::observe_batch(std::size_t texts) {
  std::lock_guard<std::mutex> lock(mutex_);
  batch_.observe(static_cast<double>(texts));
  texts_ += texts;
}

namespace {

void render(std::ostringstream& o, const std::string& name, const std::string& help, const std::vector<double>& bounds,
            const std::vector<std::uint64_t>& counts, double sum, std::uint64_t total) {
  o << "# HELP " << name << " " << help << "\n# TYPE " << name << " histogram\n";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    cumulative += i < counts.size() ? counts[i] : 0;
    o << name << "_bucket{le=\"" << bounds[i] << "\"} " << cumulative << "\n";
  }
  o << name << "_bucket{le=\"+Inf\"} " << total << "\n" << name << "_sum " << sum << "\n" << name << "_count " << total << "\n";
}

}  // namespace

std::string ServerMetrics::prometheus() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::ostringstream o;
  o << "# HELP emotune_requests_total HTTP requests by route and status.\n# TYPE emotune_requests_total counter\n";
  for (const auto& [key, n] : requests_)
    o << "emotune_requests_total{route=\"" << key.first << "\",status=\"" << key.second << "\"} " << n << "\n";
  render(o, "emotune_request_duration_seconds", "Request latency.", latency_.bounds, latency_.counts, latency_.sum,
         latency_.total);
  render(o, "emotune_batch_size", "Texts per model batch.", batch_.bounds, batch_.counts, batch_.sum, batch_.total);
  o << "# HELP emotune_texts_total Texts classified.\n# TYPE emotune_texts_total counter\nemotune_texts_total " << texts_
    << "\n# HELP emotune_model_load_seconds Time to load the model.\n# TYPE emotune_model_load_seconds gauge\n"
       "emotune_model_load_seconds "
    << load_seconds_ << "\n";
  return o.str();
}

}  // namespace emotune::serve
