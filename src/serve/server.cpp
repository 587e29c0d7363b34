#include "serve/server.h"

#include <pthread.h>
#include <c10/util/Exception.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <boost/algorithm/string.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cmath>
#include <functional>
#include <csignal>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "explain/attribution.h"
#include "infer/prediction_writer.h"
#include "infer/predictor.h"
#include "data/labels.h"
#include "runtime/runtime.h"
#include "serve/batcher.h"
#include "serve/http.h"
#include "serve/metrics.h"
#include "serve/page.h"
#include "serve/request.h"
#include "serve/tei.h"
#include "text/utf8.h"
#include "util/errors.h"

namespace emotune::serve {

namespace {

using json = nlohmann::json;
using ordered_json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

// An error answer without its body: the status and the headers that status calls for, in either
// protocol's error format.
HttpResponse error_status(int status) {
  HttpResponse r;
  r.status = status;
  if (status == 429) r.headers.emplace_back("Retry-After", "1");
  if (status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer");
  return r;
}

HttpResponse json_error(int status, const std::string& code, const std::string& message) {
  HttpResponse r = error_status(status);
  r.body = json{{"error", {{"code", code}, {"message", message}}}}.dump();
  return r;
}

// A failure of ours: the log gets what failed (library messages may carry paths and internals), the
// client an id to quote.
std::string internal_error_message(const std::string& what) {
  static std::atomic<unsigned long> next_id{1};
  const std::string id = "E" + std::to_string(next_id++);
  spdlog::error("internal error {}: {}", id, what);
  return "internal error " + id + " (the server's log has the details)";
}

}  // namespace

ErrorStatus error_status_for(const std::exception_ptr& failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const HttpError& e) {
    return {e.status, e.code, e.message};
  } catch (const Cancelled& e) {  // nginx's number for it: nobody reads this answer, the log and metrics do
    return {499, "client_closed_request", e.what()};
  } catch (const c10::Error& e) {  // libtorch's: ours, logged without its backtrace
    return {500, "internal", internal_error_message(e.what_without_backtrace())};
  } catch (const std::exception& e) {
    switch (classify(e)) {
      case Failure::Setting:
        return {400, "bad_request", render_settings(e.what(), /*as_flags=*/false)};
      case Failure::Input:
        return {422, "unprocessable", render_settings(e.what(), /*as_flags=*/false)};
      case Failure::System:
      case Failure::Internal:
        break;
    }
    return {500, "internal", internal_error_message(render_settings(e.what(), false))};
  } catch (...) {
    return {500, "internal", internal_error_message("an exception that is not a std::exception")};
  }
}

namespace {

// The answer for a failure thrown while a request was handled, in emotune's error format.
HttpResponse error_answer(const std::exception_ptr& failure) {
  const ErrorStatus e = error_status_for(failure);
  return json_error(e.status, e.code, e.message);
}

HttpResponse json_answer(std::string body) {
  HttpResponse r;
  r.body = std::move(body);
  return r;
}

HttpResponse tei_error(const TeiError& e) {
  HttpResponse r = error_status(e.status);
  r.body = tei_error_body(e);
  return r;
}

// The answer for a failure on a TEI-protocol route (POST /predict, POST /): TEI's error body.
HttpResponse tei_error_answer(const std::exception_ptr& failure) {
  try {
    std::rethrow_exception(failure);
  } catch (const TeiError& e) {
    return tei_error(e);
  } catch (...) {
    const ErrorStatus e = error_status_for(std::current_exception());
    if (e.status == 500) return tei_error({500, "Backend", e.message});
    return tei_error(tei_error_from(HttpError{e.status, e.code, e.message}));
  }
}

// localhost (and names under it), 127.0.0.0/8 and ::1: the names a loopback-only server answers to.
bool is_loopback_name(std::string name) {
  boost::algorithm::to_lower(name);
  if (name.size() > 1 && name.front() == '[' && name.back() == ']') name = name.substr(1, name.size() - 2);
  if (name.size() > 1 && name.back() == '.') name.pop_back();  // "localhost." is the same name
  const std::string_view under = ".localhost";
  if (name == "localhost" || name == "::1" || (name.size() > under.size() && boost::algorithm::ends_with(name, under)))
    return true;
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(name, ec);
  return !ec && address.is_loopback();
}

// The name in a Host header, without its port: "127.0.0.1:8080" -> "127.0.0.1", "[::1]:80" -> "[::1]".
std::string host_name(const std::string& host) {
  if (!host.empty() && host.front() == '[') return host.substr(0, host.find(']') + 1);
  const auto colon = host.find(':');
  return host.substr(0, colon);
}

// "Bearer <key>", compared in time that does not depend on where the first difference is.
bool bearer_matches(const std::string& authorization, const std::string& key) {
  const std::string scheme = "Bearer ";
  if (!boost::algorithm::istarts_with(authorization, scheme)) return false;
  const std::string given = authorization.substr(scheme.size());
  unsigned char differ = given.size() == key.size() ? 0 : 1;
  for (std::size_t i = 0; i < given.size(); ++i) differ |= static_cast<unsigned char>(given[i] ^ key[i % key.size()]);
  return differ == 0;
}

// A POST body must say it is JSON: browsers send text/plain and form types without asking first.
void require_json(const std::string& content_type) {
  const std::string type = boost::algorithm::trim_copy(content_type.substr(0, content_type.find(';')));
  if (!boost::algorithm::iequals(type, "application/json"))
    throw HttpError{415, "unsupported_media_type",
                    "POST bodies must be sent with \"Content-Type: application/json\"" +
                        (content_type.empty() ? std::string(" (none was given)") : " (got \"" + content_type + "\")")};
}

// The routes that speak TEI's and the Inference API's protocol.
bool is_tei_route(const std::string& path) { return path == "/predict" || path == "/"; }

// Scores of one text for the Inference API's function_to_apply.
std::vector<float> apply_function(const infer::Prediction& p, ScoreFunction f) {
  std::vector<float> out = f == ScoreFunction::Model ? p.probs : p.logits;
  if (f == ScoreFunction::Sigmoid) {
    for (auto& x : out) x = 1.0f / (1.0f + std::exp(-x));
  } else if (f == ScoreFunction::Softmax) {
    const float top = *std::max_element(out.begin(), out.end());
    float sum = 0;
    for (auto& x : out) sum += (x = std::exp(x - top));
    for (auto& x : out) x /= sum;
  }
  return out;
}

class Service {
 public:
  Service(const ServeOptions& o, model::ModelBundle& bundle, infer::Predictor& predictor, ServerMetrics& metrics)
      : o_(o), bundle_(bundle), predictor_(predictor),
        thresholds_(infer::load_thresholds(o.model_dir, bundle.labels())),
        batcher_(predictor, o.max_batch, o.max_batch_tokens, std::chrono::microseconds(static_cast<int64_t>(o.max_wait_ms * 1000)),
                 [&metrics](std::size_t n) { metrics.observe_batch(n); }),
        name_(std::filesystem::path(o.model_dir).filename().string()) {
    if (name_.empty()) name_ = std::filesystem::path(o.model_dir).parent_path().filename().string();
    grouping_ = bundle.labels() == data::goemotions_labels();
  }

  // Parses and tokenizes on the caller's thread, then queues the texts for the batcher; `done` gets
  // the answer on the batcher's thread. Throws HttpError for a request the client got wrong.
  void predict(const std::string& body, std::size_t& texts_out, Respond done) const;
  // Needs a plain float copy of the model (set_explainer_model); one request at a time.
  // Stops with emotune::Cancelled once `client_gone` says nobody waits for the answer.
  std::string explain(const std::string& body, std::size_t& texts_out, const explain::StopRequested& client_gone) const;
  std::string labels_json() const;
  // TEI's POST /predict and the Inference API's POST / (serve/tei.h): the same limits, batcher and
  // back-pressure as predict; errors are TeiError or HttpError.
  void tei_predict(const std::string& body, std::size_t& texts_out, Respond done) const;
  void inference_api(const std::string& body, std::size_t& texts_out, Respond done) const;
  // GET /info: TEI's fields that apply to a classifier.
  std::string info_json() const;
  void set_explainer_model(model::ModelBundle* plain) { plain_ = plain; }
  bool explains() const { return plain_ != nullptr; }

 private:
  std::vector<std::size_t> label_ids(const std::vector<std::string>& names) const;
  // Token ids for TEI: a text over the model's length is an error unless `truncate` (then cut at the
  // end, or at the start with `keep_end`).
  std::vector<text::Encoding> tei_encode(const std::vector<std::string>& texts, bool truncate, bool keep_end) const;
  // Runs already checked encodings through the batcher; `answer` lays out the predictions.
  void run_tei(std::vector<text::Encoding> encodings, Respond done,
               std::function<std::string(const std::vector<infer::Prediction>&)> answer) const;
  void check_token_budget(const std::vector<text::Encoding>& encodings) const;
  void check_explain_work(const ExplainRequest& r, std::size_t named_labels,
                          const std::vector<text::Encoding>& encodings) const;
  std::string predictions_json(const PredictRequest& r, const std::vector<infer::Prediction>& preds,
                               Clock::time_point start) const;

  const ServeOptions& o_;
  model::ModelBundle& bundle_;
  infer::Predictor& predictor_;
  std::vector<float> thresholds_;
  mutable DynamicBatcher batcher_;
  std::string name_;
  bool grouping_ = false;  // a 28-label model can answer in the Ekman and sentiment views
  model::ModelBundle* plain_ = nullptr;  // for explanations
  mutable std::mutex explaining_;
};

void Service::check_token_budget(const std::vector<text::Encoding>& encodings) const {
  std::size_t tokens = 0;
  for (const auto& e : encodings) tokens += e.ids.size();
  if (tokens > o_.max_batch_tokens)
    throw HttpError{413, "too_many_tokens", std::to_string(tokens) + " tokens; at most " +
                                                std::to_string(o_.max_batch_tokens) + " per request (--max-batch-tokens)"};
}

void Service::check_explain_work(const ExplainRequest& r, std::size_t named_labels,
                                 const std::vector<text::Encoding>& encodings) const {
  const std::size_t all = bundle_.labels().size();
  const std::size_t labels = named_labels > 0 ? named_labels : r.predict.top_k > 0 ? std::min(r.predict.top_k, all) : all;
  double work = 0;  // a double: no overflow whatever the limits
  for (const auto& e : encodings) {
    const double tokens = static_cast<double>(e.ids.size());
    const double passes = r.method == "integrated-gradients" ? static_cast<double>(r.steps)
                          : r.method == "occlusion"          ? tokens
                                                             : 1.0;
    work += static_cast<double>(labels) * passes * tokens;
  }
  if (work > static_cast<double>(o_.explain_max_work))
    throw HttpError{413, "too_much_work",
                    "this explanation needs " + std::to_string(static_cast<unsigned long long>(work)) +
                        " units of work (texts x labels x steps x tokens); at most " + std::to_string(o_.explain_max_work) +
                        " (--explain-max-work): send fewer texts, name the labels, or ask for fewer steps"};
}

void Service::predict(const std::string& body, std::size_t& texts_out, Respond done) const {
  const auto t0 = Clock::now();
  auto r = std::make_shared<const PredictRequest>(parse_predict_request(body, {o_.max_batch, o_.max_text_chars, grouping_}));
  texts_out = r->texts.size();
  auto encodings = predictor_.encode(r->texts, r->long_text ? infer::parse_long_text(*r->long_text) : o_.long_text.mode);
  check_token_budget(encodings);
  batcher_.submit(std::move(encodings), [this, r, t0, done](std::vector<infer::Prediction> preds, std::exception_ptr failed) {
    if (failed) return done(error_answer(failed));
    try {
      done(json_answer(predictions_json(*r, preds, t0)));
    } catch (...) {
      done(error_answer(std::current_exception()));
    }
  });
}

std::string Service::predictions_json(const PredictRequest& r, const std::vector<infer::Prediction>& preds,
                                      Clock::time_point t0) const {
  const auto tax = data::parse_taxonomy(r.taxonomy);
  const auto& names = r.taxonomy == "original" ? bundle_.labels() : data::taxonomy_labels(tax);
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
    if (!p.windows.empty()) infer::windows_json(p, r.taxonomy == "original" ? names : std::vector<std::string>{}, item);
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

std::vector<text::Encoding> Service::tei_encode(const std::vector<std::string>& texts, bool truncate,
                                               bool keep_end) const {
  const std::size_t max = predictor_.max_length();
  std::vector<text::Encoding> out;
  out.reserve(texts.size());
  for (const auto& t : texts) {
    // Whole when the end is kept (a text is bounded by --max-text-chars; a code point is at most 4 tokens).
    auto e = bundle_.tokenizer->encode(t, keep_end ? 4 * text::count_code_points(t) + 2 : max);
    if (e.truncated || e.ids.size() > max) {
      if (!truncate)
        throw TeiError{413, "Validation", "`inputs` must have less than " + std::to_string(max) +
                                              " tokens; pass \"truncate\": true to cut it"};
      if (e.ids.size() > max) {  // keep the first special token, the last max - 2 tokens, the last special
        std::vector<std::int32_t> kept{e.ids.front()};
        kept.insert(kept.end(), e.ids.end() - static_cast<std::ptrdiff_t>(max - 1), e.ids.end());
        e.ids = std::move(kept);
      }
      e.truncated = true;
    }
    out.push_back(std::move(e));
  }
  check_token_budget(out);
  return out;
}

void Service::run_tei(std::vector<text::Encoding> encodings, Respond done,
                      std::function<std::string(const std::vector<infer::Prediction>&)> answer) const {
  batcher_.submit(std::move(encodings), [answer, done](std::vector<infer::Prediction> preds, std::exception_ptr failed) {
    if (failed) return done(tei_error_answer(failed));
    try {
      done(json_answer(answer(preds)));
    } catch (...) {
      done(tei_error_answer(std::current_exception()));
    }
  });
}

void Service::tei_predict(const std::string& body, std::size_t& texts_out, Respond done) const {
  const auto r = parse_tei_predict(body, {o_.max_batch, o_.max_text_chars, grouping_});
  texts_out = r.texts.size();
  run_tei(tei_encode(r.texts, r.truncate, r.truncate_left), std::move(done),
          [this, raw = r.raw_scores, batch = r.batch](const std::vector<infer::Prediction>& preds) {
            std::vector<std::vector<LabelScore>> per_text;
            for (const auto& p : preds) per_text.push_back(ranked(bundle_.labels(), raw ? p.logits : p.probs));
            return ranked_json(per_text, batch);
          });
}

void Service::inference_api(const std::string& body, std::size_t& texts_out, Respond done) const {
  const auto r = parse_inference_api(body, {o_.max_batch, o_.max_text_chars, grouping_});
  texts_out = r.texts.size();
  run_tei(tei_encode(r.texts, /*truncate=*/true, /*keep_end=*/false), std::move(done),
          [this, r](const std::vector<infer::Prediction>& preds) {
            std::vector<std::vector<LabelScore>> per_text;
            for (const auto& p : preds) per_text.push_back(ranked(bundle_.labels(), apply_function(p, r.function), r.top_k));
            // A list per text even for one: the Inference API's answer, which InferenceClient reads.
            return ranked_json(per_text, /*nested=*/true);
          });
}

std::string Service::info_json() const {
  ordered_json id2label = ordered_json::object(), label2id = ordered_json::object();
  for (std::size_t i = 0; i < bundle_.labels().size(); ++i) {
    id2label[std::to_string(i)] = bundle_.labels()[i];
    label2id[bundle_.labels()[i]] = i;
  }
  const std::string dtype = o_.precision == "bf16" ? "bfloat16" : o_.precision == "int8" ? "int8" : "float32";
  return ordered_json{{"model_id", name_},
                      {"model_sha", nullptr},
                      {"model_dtype", dtype},
                      {"model_type", {{"classifier", {{"id2label", id2label}, {"label2id", label2id}}}}},
                      {"max_concurrent_requests", o_.max_concurrent_requests},
                      {"max_input_length", predictor_.max_length()},
                      {"max_batch_tokens", o_.max_batch_tokens},
                      {"max_batch_requests", nullptr},
                      {"max_client_batch_size", o_.max_batch},
                      {"auto_truncate", false},
                      {"tokenization_workers", std::thread::hardware_concurrency()},
                      {"version", EMOTUNE_VERSION},
                      {"sha", nullptr},
                      {"docker_label", nullptr}}
      .dump();
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

std::string Service::explain(const std::string& body, std::size_t& texts_out,
                             const explain::StopRequested& client_gone) const {
  const auto t0 = Clock::now();
  const ExplainRequest r = parse_explain_request(body, {o_.max_batch, o_.max_text_chars, grouping_}, o_.explain_max_steps);
  texts_out = r.predict.texts.size();
  const auto named = label_ids(r.labels);
  const auto how = explain::options_named(r.method, r.steps, r.baseline);
  std::vector<float> thr = thresholds_;
  if (r.predict.threshold) std::fill(thr.begin(), thr.end(), *r.predict.threshold);
  const auto encodings = predictor_.encode(r.predict.texts, infer::LongText::truncate);  // explanations: one window
  check_token_budget(encodings);
  check_explain_work(r, named.size(), encodings);

  ordered_json out{{"explanations", json::array()}};
  {
    const std::lock_guard<std::mutex> one_at_a_time(explaining_);
    const explain::Explainer explainer(*plain_, how);
    for (const auto& text : r.predict.texts) {
      explain::stop_if_asked(client_gone);
      const auto chosen = explain::labels_to_explain(explainer.scores(text), thr, r.predict.top_k, named);
      for (const auto& e : explainer.explain(text, chosen, client_gone)) out["explanations"].push_back(explain::to_json(e, text, bundle_.labels()));
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
    for (auto t : {data::Taxonomy::ekman, data::Taxonomy::sentiment}) {
      ordered_json groups = ordered_json::object();
      const auto map = data::taxonomy_map(t);
      for (const auto& g : data::taxonomy_labels(t)) groups[g] = json::array();
      for (std::size_t e = 0; e < map.size(); ++e)
        groups[data::taxonomy_labels(t)[static_cast<std::size_t>(map[e])]].push_back(bundle_.labels()[e]);
      taxonomies[data::taxonomy_name(t)] = groups;
    }
  ordered_json thr = ordered_json::object();
  for (std::size_t i = 0; i < thresholds_.size(); ++i) thr[bundle_.labels()[i]] = thresholds_[i];
  const auto& calibration = predictor_.calibration();
  return ordered_json{{"labels", bundle_.labels()},
                      {"thresholds", thr},
                      {"taxonomies", taxonomies},
                      {"model", name_},
                      {"explain", explains()},
                      {"calibration", calibration.applies() ? json(calibration.fit) : json(nullptr)},
                      {"long_text", o_.long_text.mode == infer::LongText::window ? "window" : "truncate"}}
      .dump();
}

// Which handler answers which method and path; every answer passes through finish() for its
// metrics and its access-log line.
class Router {
 public:
  Router(const ServeOptions& o, Service& service, ServerMetrics& metrics)
      : o_(o), service_(service), metrics_(metrics), labels_(service.labels_json()), info_(service.info_json()),
        loopback_only_(is_loopback_name(o.host)) {}
  // After the HTTP server has stopped: nobody waits for explanations still queued.
  ~Router() {
    explainer_.stop();
    explainer_.join();
  }
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // On an HTTP worker thread.
  void handle(HttpRequest req, Respond respond);
  HttpResponse refuse(int status, const std::string& code, const std::string& message);

 private:
  struct Exchange {
    std::string method, route;
    Clock::time_point start = Clock::now();
    std::size_t texts = 0;
  };
  using Finish = std::function<void(HttpResponse)>;

  // One prediction or explanation in its count, from its start until its answer is handed over
  // (release) or it is dropped unanswered; it leaves the count once.
  struct InProgress {
    explicit InProgress(std::atomic<std::size_t>& count) : n(count), now(++count) {}
    InProgress(const InProgress&) = delete;
    InProgress& operator=(const InProgress&) = delete;
    ~InProgress() { release(); }
    void release() {
      if (!released.exchange(true)) --n;
    }
    std::atomic<std::size_t>& n;
    const std::size_t now;
    std::atomic<bool> released{false};
  };

  Finish finisher(std::shared_ptr<Exchange> x, Respond respond);
  void admit(const HttpRequest& req) const;
  std::optional<HttpResponse> page(const std::string& path) const;
  void post(const HttpRequest& req, std::size_t& texts, Finish finish);

  const ServeOptions& o_;
  Service& service_;
  ServerMetrics& metrics_;
  const std::string labels_, info_;
  const bool loopback_only_;
  std::atomic<std::size_t> in_progress_{0}, explanations_in_progress_{0};
  boost::asio::thread_pool explainer_{1};  // explanations hold a thread for long: never an HTTP worker
};

Router::Finish Router::finisher(std::shared_ptr<Exchange> x, Respond respond) {
  return [this, x, respond](HttpResponse r) {
    const double secs = std::chrono::duration<double>(Clock::now() - x->start).count();
    metrics_.observe_request(x->route, r.status, secs);
    spdlog::info("access method={} route={} status={} texts={} ms={:.2f}", x->method, x->route, r.status, x->texts,
                 secs * 1000);
    respond(std::move(r));
  };
}

// The GET routes (HEAD too: the HTTP layer leaves the body out).
std::optional<HttpResponse> Router::page(const std::string& path) const {
  HttpResponse r;
  if (path == "/health") {
    r.body = R"({"status":"ok"})";
  } else if (path == "/v1/labels") {
    r.body = labels_;
  } else if (path == "/info") {
    r.body = info_;
  } else if (path == "/metrics") {
    r.body = metrics_.prometheus();
    r.content_type = "text/plain; version=0.0.4";
  } else if (path == "/") {
    r.body = kIndexHtml;
    r.content_type = "text/html; charset=utf-8";
  } else if (path == "/favicon.ico") {
    r.status = 204;
    r.content_type = "image/x-icon";
  } else {
    return std::nullopt;
  }
  return r;
}

// Throws HttpError: 403 for a Host that is not ours on a loopback-only server, 401 without the key.
void Router::admit(const HttpRequest& req) const {
  if (loopback_only_ && !req.host.empty() && !is_loopback_name(host_name(req.host)))
    throw HttpError{403, "forbidden_host", "Host \"" + req.host + "\" is not a loopback name: this server listens on " +
                                               o_.host + " only (serve --host to serve other names)"};
  if (!o_.api_key.empty() && req.path != "/health" && !bearer_matches(req.authorization, o_.api_key))
    throw HttpError{401, "unauthorized", "this server needs the header \"Authorization: Bearer <key>\" with its key"};
}

void Router::handle(HttpRequest req, Respond respond) {
  const bool is_post_route = req.path == "/v1/predict" || is_tei_route(req.path) ||
                             (req.path == "/v1/explain" && service_.explains());
  std::optional<HttpResponse> got = page(req.path);
  const bool is_get_route = got.has_value();
  auto x = std::make_shared<Exchange>();
  x->method = req.method;
  x->route = is_post_route || is_get_route ? req.path : "other";
  Finish finish = finisher(x, std::move(respond));
  const bool tei_post = is_tei_route(req.path) && req.method == "POST";
  try {
    admit(req);
    if (is_post_route && req.method == "POST") {
      require_json(req.content_type);
      return post(req, x->texts, finish);
    }
  } catch (...) {
    return finish(tei_post ? tei_error_answer(std::current_exception()) : error_answer(std::current_exception()));
  }
  if (is_get_route && (req.method == "GET" || req.method == "HEAD")) return finish(std::move(*got));
  if (is_post_route || is_get_route) {
    auto r = json_error(405, "method_not_allowed", req.method + " is not allowed on " + req.path);
    r.headers.emplace_back("Allow", is_post_route && is_get_route ? "GET, HEAD, POST" : is_post_route ? "POST" : "GET, HEAD");
    return finish(std::move(r));
  }
  finish(json_error(404, "not_found", "no route " + req.path));
}

void Router::post(const HttpRequest& req, std::size_t& texts, Finish finish) {
  const std::string& path = req.path;
  const std::string& body = req.body;
  // Explanations have their own count: slow ones must not take the slots predictions need.
  const bool explaining = path == "/v1/explain";
  auto counted = std::make_shared<InProgress>(explaining ? explanations_in_progress_ : in_progress_);
  if (explaining && counted->now > o_.max_concurrent_explanations)
    throw HttpError{429, "overloaded", std::to_string(o_.max_concurrent_explanations) +
                                           " explanations are queued or running (--max-concurrent-explanations); retry shortly"};
  if (!explaining && counted->now > o_.max_concurrent_requests)
    throw HttpError{429, "overloaded", std::to_string(o_.max_concurrent_requests) +
                                           " requests are in progress (--max-concurrent-requests); retry shortly"};
  // The count ends before the answer goes out: a client that sends its next request on reading this
  // answer finds the slot free (copies of this callback may outlive the answer a little).
  Finish counted_finish = [finish, counted](HttpResponse r) {
    counted->release();
    finish(std::move(r));
  };
  if (path == "/v1/predict") return service_.predict(body, texts, counted_finish);
  if (path == "/predict") return service_.tei_predict(body, texts, counted_finish);
  if (path == "/") return service_.inference_api(body, texts, counted_finish);
  boost::asio::post(explainer_, [this, body, client_gone = req.client_gone, &texts, counted_finish] {
    try {
      counted_finish(json_answer(service_.explain(body, texts, client_gone)));
    } catch (...) {
      counted_finish(error_answer(std::current_exception()));
    }
  });
}

HttpResponse Router::refuse(int status, const std::string& code, const std::string& message) {
  metrics_.observe_request("other", status, 0);
  spdlog::info("access method=- route=other status={} texts=0 ms=0.00 refused={}", status, code);
  return json_error(status, code, status >= 500 ? internal_error_message(message) : message);
}

}  // namespace

int run_server(const ServeOptions& o) {
  if (o.max_batch == 0) throw std::invalid_argument("{max_batch} must be positive");
  // SIGTERM/SIGINT are taken by one waiting thread (sigwait), never by a handler mid-request.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  const auto load_start = Clock::now();
  // No mapping of the weights file: it may be replaced or truncated while we serve.
  auto [streams, device, bundle] =
      infer::load_for_inference(o.model_dir, o.threads, o.device, o.precision, /*map_embeddings=*/false);
  infer::Predictor predictor(bundle, device, 0, o.long_text);
  ServerMetrics metrics;
  metrics.set_model_load_seconds(std::chrono::duration<double>(Clock::now() - load_start).count());
  std::optional<model::ModelBundle> plain;
  if (o.explain) plain = explain::load_model_to_explain(o.model_dir, device);

  HttpLimits limits;
  limits.max_body_bytes = o.max_body_bytes;
  limits.read_timeout = std::chrono::seconds(o.read_timeout_s);
  HttpServer http(limits);
  const int port = http.listen(o.host, o.port);
  {
    // Declared after the HTTP server, so destroyed before it: the batcher's last answers still find it.
    Service service(o, bundle, predictor, metrics);
    if (plain) service.set_explainer_model(&*plain);
    Router router(o, service, metrics);
    std::atomic<bool> finished{false};
    std::thread stopper([&] {
      int sig = 0;
      sigwait(&stop_signals, &sig);
      if (finished) return;
      spdlog::info("signal {}: no new connections; answering the requests already sent (a second signal stops at once)",
                   sig);
      http.stop();
      sigwait(&stop_signals, &sig);
      if (!finished) http.stop();
    });
    spdlog::info("serving {} on http://{}:{} (max batch {}, max wait {} ms)", o.model_dir, o.host, port, o.max_batch,
                 o.max_wait_ms);
    http.run({[&router](HttpRequest req, Respond respond) { router.handle(std::move(req), std::move(respond)); },
              [&router](int status, const std::string& code, const std::string& message) {
                return router.refuse(status, code, message);
              }});
    finished = true;
    pthread_kill(stopper.native_handle(), SIGTERM);  // release the waiter, wherever it waits
    stopper.join();
  }
  spdlog::info("stopped");
  return 0;
}

}  // namespace emotune::serve
