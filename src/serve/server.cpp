#include "serve/server.h"

#include <httplib.h>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <nlohmann/json.hpp>
#include <mutex>
#include <numeric>
#include <optional>
#include <thread>

#include "explain/attribution.h"
#include "infer/predictor.h"
#include "model/labels.h"
#include "model/runtime.h"
#include "serve/batcher.h"
#include "serve/metrics.h"
#include "serve/page.h"
#include "serve/request.h"
#include "text/utf8.h"

namespace emotune::serve {

namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

void send_error(httplib::Response& res, int status, const std::string& code, const std::string& message) {
  res.status = status;
  res.set_content(json{{"error", {{"code", code}, {"message", message}}}}.dump(), "application/json");
}

class Service {
 public:
  Service(const ServeOptions& o, model::ModelBundle& bundle, infer::Predictor& predictor, ServerMetrics& metrics)
      : o_(o), bundle_(bundle), metrics_(metrics), predictor_(predictor),
        thresholds_(infer::load_thresholds(o.model_dir, bundle.labels())),
        batcher_(predictor, o.max_batch, o.max_batch_tokens, std::chrono::microseconds(static_cast<int64_t>(o.max_wait_ms * 1000)),
                 [&metrics](std::size_t n) { metrics.observe_batch(n); }),
        name_(std::filesystem::path(o.model_dir).filename().string()) {
    if (name_.empty()) name_ = std::filesystem::path(o.model_dir).parent_path().filename().string();
    grouping_ = bundle.labels() == model::goemotions_labels();
  }

  std::string predict(const std::string& body, std::size_t& texts_out) const;
  // Needs a plain float copy of the model (set_explainer_model); one request at a time.
  std::string explain(const std::string& body, std::size_t& texts_out) const;
  std::string labels_json() const;
  void set_explainer_model(model::ModelBundle* plain) { plain_ = plain; }
  bool explains() const { return plain_ != nullptr; }

 private:
  std::vector<std::size_t> label_ids(const std::vector<std::string>& names) const;

  const ServeOptions& o_;
  model::ModelBundle& bundle_;
  ServerMetrics& metrics_;
  infer::Predictor& predictor_;
  std::vector<float> thresholds_;
  mutable DynamicBatcher batcher_;
  std::string name_;
  bool grouping_ = false;  // a 28-label model can answer in the Ekman and sentiment views
  model::ModelBundle* plain_ = nullptr;  // for explanations
  mutable std::mutex explaining_;
};

std::string Service::predict(const std::string& body, std::size_t& texts_out) const {
  const auto t0 = Clock::now();
  const PredictRequest r = parse_predict_request(body, {o_.max_batch, o_.max_text_chars, grouping_});
  texts_out = r.texts.size();
  auto encodings = predictor_.encode(r.texts);  // here, on the request's thread, not the batcher's
  std::size_t tokens = 0;
  for (const auto& e : encodings) tokens += e.ids.size();
  if (tokens > o_.max_batch_tokens)
    throw HttpError{413, "too_many_tokens", std::to_string(tokens) + " tokens; at most " +
                                                std::to_string(o_.max_batch_tokens) + " per request (--max-batch-tokens)"};
  const auto preds = batcher_.submit(std::move(encodings)).get();

  const auto tax = model::parse_taxonomy(r.taxonomy);
  const auto& names = r.taxonomy == "original" ? bundle_.labels() : model::taxonomy_labels(tax);
  ordered_json out{{"predictions", json::array()}};
  for (const auto& p : preds) {
    std::vector<float> scores = p.probs;
    // Grouped views use 0.5 per group: the model's tuned thresholds are per emotion.
    std::vector<float> thr = r.taxonomy == "original" ? thresholds_ : std::vector<float>(names.size(), 0.5f);
    if (r.taxonomy != "original") {
      const auto g = infer::group_probabilities(torch::tensor(p.probs).unsqueeze(0), tax).contiguous();
      scores.assign(g.data_ptr<float>(), g.data_ptr<float>() + g.numel());
    }
    if (r.threshold) std::fill(thr.begin(), thr.end(), *r.threshold);
    const auto chosen = infer::select_labels(scores, thr, r.top_k);
    ordered_json item{{"labels", json::array()}, {"truncated", p.truncated}};
    for (auto i : chosen) item["labels"].push_back(ordered_json{{"label", names[i]}, {"score", scores[i]}});
    if (r.all_scores) {
      ordered_json s = ordered_json::object();
      for (std::size_t i = 0; i < names.size(); ++i) s[names[i]] = scores[i];
      item["scores"] = std::move(s);
    }
    out["predictions"].push_back(std::move(item));
  }
  out["model"] = name_;
  out["elapsed_ms"] = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  return out.dump();
}

std::vector<std::size_t> Service::label_ids(const std::vector<std::string>& names) const {
  std::vector<std::size_t> ids;
  const auto& labels = bundle_.labels();
  for (const auto& n : names) {
    const auto it = std::find(labels.begin(), labels.end(), n);
    if (it == labels.end()) throw HttpError{400, "unknown_label", "\"" + n + "\" is not one of the model's labels"};
    ids.push_back(static_cast<std::size_t>(it - labels.begin()));
  }
  return ids;
}

std::string Service::explain(const std::string& body, std::size_t& texts_out) const {
  const auto t0 = Clock::now();
  const ExplainRequest r = parse_explain_request(body, {o_.max_batch, o_.max_text_chars, grouping_}, o_.explain_max_steps);
  texts_out = r.predict.texts.size();
  const auto named = label_ids(r.labels);
  const auto how = explain::options_named(r.method, r.steps, r.baseline);
  std::vector<float> thr = thresholds_;
  if (r.predict.threshold) std::fill(thr.begin(), thr.end(), *r.predict.threshold);
  std::size_t tokens = 0;
  for (const auto& e : predictor_.encode(r.predict.texts)) tokens += e.ids.size();
  if (tokens > o_.max_batch_tokens)
    throw HttpError{413, "too_many_tokens", std::to_string(tokens) + " tokens; at most " +
                                                std::to_string(o_.max_batch_tokens) + " per request (--max-batch-tokens)"};

  ordered_json out{{"explanations", json::array()}};
  {
    const std::lock_guard<std::mutex> one_at_a_time(explaining_);
    const explain::Explainer explainer(*plain_, how);
    for (const auto& text : r.predict.texts) {
      const auto chosen = explain::labels_to_explain(explainer.scores(text), thr, r.predict.top_k, named);
      for (const auto& e : explainer.explain(text, chosen)) out["explanations"].push_back(explain::to_json(e, text, bundle_.labels()));
    }
  }
  out["model"] = name_;
  out["elapsed_ms"] = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string Service::labels_json() const {
  ordered_json taxonomies = ordered_json::object();
  taxonomies["original"] = bundle_.labels();
  if (grouping_)
    for (auto t : {model::Taxonomy::ekman, model::Taxonomy::sentiment}) {
      ordered_json groups = ordered_json::object();
      const auto map = model::taxonomy_map(t);
      for (const auto& g : model::taxonomy_labels(t)) groups[g] = json::array();
      for (std::size_t e = 0; e < map.size(); ++e)
        groups[model::taxonomy_labels(t)[static_cast<std::size_t>(map[e])]].push_back(bundle_.labels()[e]);
      taxonomies[model::taxonomy_name(t)] = groups;
    }
  ordered_json thr = ordered_json::object();
  for (std::size_t i = 0; i < thresholds_.size(); ++i) thr[bundle_.labels()[i]] = thresholds_[i];
  return ordered_json{{"labels", bundle_.labels()}, {"thresholds", thr}, {"taxonomies", taxonomies}, {"model", name_},
                      {"explain", explains()}}
      .dump();
}

}  // namespace

int run_server(const ServeOptions& o) {
  if (o.max_batch == 0) throw std::invalid_argument("--max-batch must be positive");
  // SIGTERM/SIGINT are taken by one waiting thread (sigwait), never by a handler mid-request.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  model::configure_threads(o.threads);
  const torch::Device device = model::resolve_device(o.device);
  const auto load_start = Clock::now();
  model::ModelBundle bundle = model::load_model_dir(o.model_dir, model::inference_options(o.precision, device));
  infer::Predictor predictor(bundle, device);
  ServerMetrics metrics;
  metrics.set_model_load_seconds(std::chrono::duration<double>(Clock::now() - load_start).count());
  Service service(o, bundle, predictor, metrics);
  std::optional<model::ModelBundle> plain;
  if (o.explain) {
    plain = explain::load_model_to_explain(o.model_dir, device);
    service.set_explainer_model(&*plain);
  }

  httplib::Server svr;
  svr.new_task_queue = [] { return new httplib::ThreadPool(128); };  // keep-alive connections each hold a thread
  svr.set_payload_max_length(o.max_body_bytes);
  // Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm and the
  // client's delayed ACK add ~40 ms to every answer.
  svr.set_tcp_nodelay(true);
  // SO_REUSEADDR only: httplib's default also sets SO_REUSEPORT, which lets a second server bind the
  // same port and take half the connections.
  svr.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });

  // Every answer goes through here: metrics and one access-log line (no bodies).
  auto finish = [&metrics](const httplib::Request& req, const httplib::Response& res, const std::string& route,
                           Clock::time_point start, std::size_t texts) {
    const double secs = std::chrono::duration<double>(Clock::now() - start).count();
    const int status = res.status == -1 ? 200 : res.status;  // httplib fills in 200 after the handler
    metrics.observe_request(route, status, secs);
    spdlog::info("access method={} route={} status={} texts={} ms={:.2f}", req.method, route, status, texts,
                 secs * 1000);
  };

  std::atomic<std::size_t> in_progress{0};
  // The body is read here, not by httplib, so that a chunked body meets --max-body-bytes too.
  auto post_route = [&](const std::string& route, auto answer) {
    svr.Post(route, [&, route, answer](const httplib::Request& req, httplib::Response& res,
                                       const httplib::ContentReader& read) {
      const auto start = Clock::now();
      std::size_t texts = 0;
      struct InProgress {  // counts this request while it is handled
        std::atomic<std::size_t>& n;
        const std::size_t now = ++n;
        ~InProgress() { --n; }
      } counted{in_progress};
      try {
        if (counted.now > o.max_concurrent_requests) {
          res.set_header("Retry-After", "1");
          throw HttpError{429, "overloaded", std::to_string(o.max_concurrent_requests) +
                                                 " requests are in progress (--max-concurrent-requests); retry shortly"};
        }
        std::string body;
        bool too_large = false;
        const bool complete = read([&](const char* data, std::size_t n) {
          too_large = body.size() + n > o.max_body_bytes;
          if (!too_large) body.append(data, n);
          return !too_large;
        });
        // httplib refuses a declared Content-Length over the limit itself, before any byte arrives.
        if (req.has_header("Content-Length")) {
          const std::string declared = req.get_header_value("Content-Length");
          std::uint64_t n = 0;
          const auto [end, ec] = std::from_chars(declared.data(), declared.data() + declared.size(), n);
          too_large = too_large || ec == std::errc::result_out_of_range || (ec == std::errc() && n > o.max_body_bytes);
        }
        if (!complete && !too_large) throw HttpError{400, "incomplete_body", "the request body ended early"};
        if (too_large) {
          res.set_header("Connection", "close");
          throw HttpError{413, "body_too_large", "the body exceeds " + std::to_string(o.max_body_bytes) + " bytes"};
        }
        res.set_content(answer(body, texts), "application/json");
      } catch (const HttpError& e) {
        send_error(res, e.status, e.code, e.message);
      } catch (const std::exception& e) {
        send_error(res, 500, "internal", e.what());
      }
      finish(req, res, route, start, texts);
    });
  };
  post_route("/v1/predict", [&](const std::string& body, std::size_t& texts) { return service.predict(body, texts); });
  if (service.explains())
    post_route("/v1/explain", [&](const std::string& body, std::size_t& texts) { return service.explain(body, texts); });
  const std::string labels = service.labels_json();
  svr.Get("/v1/labels", [&](const httplib::Request& req, httplib::Response& res) {
    res.set_content(labels, "application/json");
    finish(req, res, "/v1/labels", Clock::now(), 0);
  });
  svr.Get("/health", [&](const httplib::Request& req, httplib::Response& res) {
    res.set_content(R"({"status":"ok"})", "application/json");
    finish(req, res, "/health", Clock::now(), 0);
  });
  svr.Get("/metrics", [&](const httplib::Request& req, httplib::Response& res) {
    res.set_content(metrics.prometheus(), "text/plain; version=0.0.4");
    finish(req, res, "/metrics", Clock::now(), 0);
  });
  svr.Get("/", [&](const httplib::Request& req, httplib::Response& res) {
    res.set_content(kIndexHtml, "text/html; charset=utf-8");
    finish(req, res, "/", Clock::now(), 0);
  });
  svr.Get("/favicon.ico", [](const httplib::Request&, httplib::Response& res) { res.status = 204; });
  // Unknown routes, wrong methods and oversized bodies are answered by httplib; give them JSON.
  svr.set_error_handler([&](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // our own handlers' errors arrive here too, already answered
    std::vector<std::string> known = {"/v1/predict", "/v1/labels", "/health", "/metrics", "/"};
    if (service.explains()) known.push_back("/v1/explain");
    const bool route_known = std::find(known.begin(), known.end(), req.path) != known.end();
    if (res.status == 404 && route_known) res.status = 405;
    if (res.status == 405)
      send_error(res, 405, "method_not_allowed", req.method + " is not allowed on " + req.path);
    else if (res.status == 404)
      send_error(res, 404, "not_found", "no route " + req.path);
    else if (res.status == 413)
      send_error(res, 413, "body_too_large", "the body exceeds " + std::to_string(o.max_body_bytes) + " bytes");
    else
      send_error(res, res.status, "http_error", "HTTP error " + std::to_string(res.status));
    finish(req, res, route_known ? req.path : "other", Clock::now(), 0);
  });

  int port = o.port;
  if (o.port == 0)
    port = svr.bind_to_any_port(o.host.c_str());
  else if (!svr.bind_to_port(o.host.c_str(), o.port))
    port = -1;
  if (port <= 0)
    throw std::runtime_error("cannot listen on " + o.host + ":" + std::to_string(o.port) +
                             " (in use by another process, or not an address of this machine)");
  std::atomic<bool> signalled{false};
  std::thread stopper([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    signalled = true;
    spdlog::info("signal {}: no new connections; finishing requests in flight", sig);
    svr.stop();
  });
  spdlog::info("serving {} on http://{}:{} (max batch {}, max wait {} ms)", o.model_dir, o.host, port, o.max_batch,
               o.max_wait_ms);
  svr.listen_after_bind();
  if (!signalled) pthread_kill(stopper.native_handle(), SIGTERM);  // listen ended by itself: release the waiter
  stopper.join();
  spdlog::info("stopped");
  return 0;
}

}  // namespace emotune::serve
