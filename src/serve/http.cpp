#include "serve/http.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <optional>
#include <stdexcept>
#include <thread>
#include <unordered_set>

namespace emotune::serve {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// A connection that goes idle while the server drains may still have a request on its way (sent
// just before the signal, not yet read): it gets this long for the first byte to arrive.
constexpr auto kDrainGrace = std::chrono::milliseconds(300);
// After an answer that closes the connection, what the client still sends (the rest of a refused
// body) is read and dropped for up to this long: closing a socket with unread data resets the
// connection, and the client could lose the answer before reading it.
constexpr auto kLinger = std::chrono::seconds(2);

class Connection;

}  // namespace

struct HttpServer::Core {
  explicit Core(HttpLimits l) : limits(l) {}

  void accept();
  void open_connection(tcp::socket socket);
  void begin_drain();
  void forget(Connection* c);

  HttpLimits limits;
  HttpHandlers handlers;
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  asio::steady_timer accept_retry{io}, drain_deadline{io};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> keep_running;
  std::optional<asio::thread_pool> workers;
  std::unordered_set<Connection*> open;  // touched on the I/O thread only
  bool draining = false;
  std::atomic<int> stop_calls{0};
};

namespace {

// One client connection: wait for a request, read its head and body, hand it to a worker, write the
// answer, repeat. Runs on the I/O thread; answers come back to it by asio::post.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(HttpServer::Core& core, tcp::socket socket)
      : core_(core), stream_(std::move(socket)), buffer_(std::max<std::size_t>(2 * core.limits.max_head_bytes, 8192)) {}

  void start() { wait_for_request(); }

  // The server stops: an idle connection gets a short grace instead of its keep-alive time.
  // One still sending its head (a trickling client) is dropped: it has sent no request yet.
  void drain() {
    const bool head_arriving = state_ == State::reading && parser_ && !parser_->is_header_done();
    if (state_ == State::idle || head_arriving) stream_.cancel();
  }

 private:
  enum class State { idle, reading, handling, writing, lingering, closed };

  void wait_for_request() {
    state_ = State::idle;
    if (buffer_.capacity() > 65536) buffer_.shrink_to_fit();  // idle, it keeps no large body's memory
    if (core_.draining)
      stream_.expires_after(kDrainGrace);
    else
      stream_.expires_after(core_.limits.keep_alive);
    stream_.async_read_some(buffer_.prepare(4096), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      self->on_first_bytes(ec, n);
    });
  }

  void on_first_bytes(beast::error_code ec, std::size_t n) {
    if (ec == asio::error::operation_aborted && core_.draining && state_ == State::idle) return wait_for_request();
    if (ec) return close();  // idle too long, or the client went away
    buffer_.commit(n);
    read_head();
  }

  void read_head() {
    state_ = State::reading;
    deadline_ = Clock::now() + core_.limits.read_timeout;
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(core_.limits.max_head_bytes, UINT32_MAX)));
    parser_->body_limit(core_.limits.max_body_bytes);
    // Beast bounds neither chunk extensions nor trailers: the buffer's maximum bounds one line and
    // the trailers; this bounds the extensions of all chunks together.
    extension_bytes_ = 0;
    parser_->on_chunk_header(count_extensions_);  // held by reference
    stream_.expires_at(deadline_);
    http::async_read_header(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      self->on_head(ec);
    });
  }

  void on_head(beast::error_code ec) {
    if (ec) return on_read_error(ec);
    const auto& req = parser_->get();
    keep_alive_ = req.keep_alive();
    version_ = req.version();
    head_only_ = req.method() == http::verb::head;
    if (parser_->is_done()) return dispatch();
    if (beast::iequals(req[http::field::expect], "100-continue")) return send_continue();
    read_body();
  }

  // The client waits for this before it sends the body (curl does, for bodies over 1 KB).
  void send_continue() {
    auto interim = std::make_shared<http::response<http::empty_body>>(http::status::continue_, version_);
    stream_.expires_after(core_.limits.write_timeout);
    http::async_write(stream_, *interim, [self = shared_from_this(), interim](beast::error_code ec, std::size_t) {
      if (ec) return self->close();
      self->read_body();
    });
  }

  void read_body() {
    stream_.expires_at(deadline_);
    http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->on_read_error(ec);
      self->dispatch();
    });
  }

  void on_read_error(beast::error_code ec) {
    const auto& l = core_.limits;
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow)
      return refuse(431, "headers_too_large", "the request line and headers (or chunk extensions, or trailers) exceed " +
                                                  std::to_string(l.max_head_bytes) + " bytes");
    if (ec == http::error::body_limit)
      return refuse(413, "body_too_large", "the body exceeds " + std::to_string(l.max_body_bytes) + " bytes");
    // Too slow (the stream has closed the socket), or gone: nobody to answer.
    if (ec == beast::error::timeout || ec == http::error::end_of_stream || ec == http::error::partial_message ||
        ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::operation_aborted)
      return close();
    refuse(400, "bad_request", "malformed HTTP request (" + ec.message() + ")");
  }

  void refuse(int status, const std::string& code, const std::string& message) {
    keep_alive_ = false;
    answer(core_.handlers.refuse(status, code, message));
  }

  void dispatch() {
    state_ = State::handling;
    auto& req = parser_->get();
    HttpRequest request;
    request.method = std::string(req.method_string());
    const std::string_view target(req.target().data(), req.target().size());
    request.path = std::string(target.substr(0, target.find('?')));
    request.body = std::move(req.body());
    request.content_type = std::string(req[http::field::content_type]);
    request.host = std::string(req[http::field::host]);
    request.authorization = std::string(req[http::field::authorization]);
    auto gone = std::make_shared<std::atomic<bool>>(false);
    request.client_gone = [gone] { return gone->load(); };
    watch_for_hang_up(std::move(gone));
    asio::post(*core_.workers, [self = shared_from_this(), request = std::move(request)]() mutable {
      self->handle(std::move(request));
    });
  }

  // While the request is handled nothing reads the socket: it turns readable with no bytes waiting
  // only when the client has closed (or reset) the connection.
  void watch_for_hang_up(std::shared_ptr<std::atomic<bool>> gone) {
    if (buffer_.size() > 0) return;  // a pipelined request is here already: its bytes hide a close
    watching_ = true;
    stream_.socket().async_wait(tcp::socket::wait_read, [self = shared_from_this(), gone](beast::error_code ec) {
      if (ec) return;  // cancelled: the answer is on its way, or the connection closed
      self->watching_ = false;
      beast::error_code e;
      if (self->stream_.socket().available(e) == 0 || e) gone->store(true);
    });
  }

  // On a worker thread.
  void handle(HttpRequest request) {
    auto answered = std::make_shared<std::atomic<bool>>(false);
    Respond respond = [self = shared_from_this(), answered](HttpResponse r) {
      if (answered->exchange(true)) return;
      asio::post(self->core_.io, [self, r = std::move(r)]() mutable { self->answer(std::move(r)); });
    };
    try {
      core_.handlers.handle(std::move(request), respond);
    } catch (const std::exception& e) {
      // The handlers answer their own failures; this is the last resort, and says nothing of ours.
      spdlog::error("http: a handler failed: {}", e.what());
      respond(core_.handlers.refuse(500, "internal", "internal error (the server's log has the details)"));
    }
  }

  // On the I/O thread.
  void answer(HttpResponse r) {
    if (state_ == State::closed) return;
    state_ = State::writing;
    if (watching_) {  // nothing else waits on the socket now: this cancels the watch alone
      watching_ = false;
      beast::error_code ignored;
      stream_.socket().cancel(ignored);
    }
    auto out = std::make_shared<Outgoing>();
    auto& res = out->response;
    res.version(version_);
    res.result(static_cast<unsigned>(r.status));
    res.set(http::field::content_type, r.content_type);
    for (const auto& [name, value] : r.headers) res.set(name, value);
    res.body() = std::move(r.body);
    res.prepare_payload();
    // While draining, stay open only for requests already sent on this connection (pipelined).
    beast::error_code ec;
    const bool more_sent = buffer_.size() > 0 || stream_.socket().available(ec) > 0;
    const bool keep = keep_alive_ && (!core_.draining || more_sent);
    res.keep_alive(keep);
    out->serializer.emplace(res);
    stream_.expires_after(core_.limits.write_timeout);
    auto done = [self = shared_from_this(), out, keep](beast::error_code ec, std::size_t) { self->on_written(ec, keep); };
    if (head_only_)
      http::async_write_header(stream_, *out->serializer, std::move(done));
    else
      http::async_write(stream_, *out->serializer, std::move(done));
  }

  void on_written(beast::error_code ec, bool keep) {
    if (ec) return close();
    if (!keep) return linger();
    if (buffer_.size() > 0) return read_head();  // pipelined: the next request is already here
    wait_for_request();
  }

  void linger() {
    state_ = State::lingering;
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    buffer_.clear();
    linger_until_ = Clock::now() + kLinger;
    drop_input();
  }

  void drop_input() {
    stream_.expires_at(linger_until_);
    stream_.async_read_some(buffer_.prepare(std::min<std::size_t>(65536, buffer_.max_size())),
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->close();
      self->drop_input();
    });
  }

  void close() {
    if (state_ == State::closed) return;
    state_ = State::closed;
    beast::error_code ignored;
    stream_.socket().close(ignored);
    core_.forget(this);
  }

  struct Outgoing {
    http::response<http::string_body> response;
    std::optional<http::response_serializer<http::string_body>> serializer;
  };

  HttpServer::Core& core_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  State state_ = State::idle;
  Clock::time_point deadline_, linger_until_;
  bool keep_alive_ = true;
  bool head_only_ = false;
  bool watching_ = false;  // for the client hanging up while its request is handled
  unsigned version_ = 11;
  std::size_t extension_bytes_ = 0;
  std::function<void(std::uint64_t, beast::string_view, beast::error_code&)> count_extensions_ =
      [this](std::uint64_t, beast::string_view extensions, beast::error_code& ec) {
        extension_bytes_ += extensions.size();
        if (extension_bytes_ > core_.limits.max_head_bytes) ec = http::error::header_limit;
      };
};

}  // namespace

void HttpServer::Core::accept() {
  acceptor.async_accept(io, [this](beast::error_code ec, tcp::socket socket) {
    if (!acceptor.is_open()) return;
    if (ec) {
      // Out of file descriptors (or a client gone before it was accepted): try again shortly
      // rather than spin; the connection waits in the backlog meanwhile.
      spdlog::warn("accept failed: {}", ec.message());
      accept_retry.expires_after(std::chrono::milliseconds(100));
      accept_retry.async_wait([this](beast::error_code e) {
        if (!e) accept();
      });
      return;
    }
    open_connection(std::move(socket));
    accept();
  });
}

void HttpServer::Core::open_connection(tcp::socket socket) {
  beast::error_code ignored;
  // Head and body go out in one write, but a 100 Continue and its answer do not: without
  // TCP_NODELAY, Nagle's algorithm and the client's delayed ACK add ~40 ms.
  socket.set_option(tcp::no_delay(true), ignored);
  auto c = std::make_shared<Connection>(*this, std::move(socket));
  open.insert(c.get());
  c->start();
}

void HttpServer::Core::begin_drain() {
  if (draining) return;
  draining = true;
  beast::error_code ec;
  // Connections the kernel completed on our behalf wait in the backlog: their clients have sent
  // requests too.
  acceptor.non_blocking(true, ec);
  for (;;) {
    tcp::socket socket(io);
    acceptor.accept(socket, ec);
    if (ec) break;
    open_connection(std::move(socket));
  }
  acceptor.close(ec);
  accept_retry.cancel();
  for (auto* c : open) c->drain();
  drain_deadline.expires_after(limits.drain_timeout);
  drain_deadline.async_wait([this](beast::error_code e) {
    if (e) return;
    spdlog::warn("{} connection(s) still open after {} s; closing them", open.size(), limits.drain_timeout.count());
    io.stop();
  });
  if (open.empty()) forget(nullptr);
}

void HttpServer::Core::forget(Connection* c) {
  open.erase(c);
  if (draining && open.empty()) {
    drain_deadline.cancel();
    keep_running.reset();  // run() returns once the last handlers have run
  }
}

HttpServer::HttpServer(HttpLimits limits) : core_(std::make_unique<Core>(limits)) {}

HttpServer::~HttpServer() {
  core_->io.stop();
  if (core_->workers) core_->workers->join();
}

int HttpServer::listen(const std::string& host, int port) {
  auto& acceptor = core_->acceptor;
  const std::string where = host + ":" + std::to_string(port);
  try {
    tcp::resolver resolver(core_->io);
    const auto found = resolver.resolve(host, std::to_string(port), tcp::resolver::passive | tcp::resolver::numeric_service);
    const tcp::endpoint endpoint = found.begin()->endpoint();
    acceptor.open(endpoint.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen(asio::socket_base::max_listen_connections);
  } catch (const boost::system::system_error& e) {
    beast::error_code ignored;
    acceptor.close(ignored);
    throw std::runtime_error("cannot listen on " + where + " (" + e.code().message() +
                             "; in use by another process, or not an address of this machine)");
  }
  return acceptor.local_endpoint().port();
}

void HttpServer::run(HttpHandlers handlers) {
  auto& core = *core_;
  core.handlers = std::move(handlers);
  const std::size_t workers =
      core.limits.workers ? core.limits.workers : std::max<std::size_t>(2, std::thread::hardware_concurrency());
  core.workers.emplace(workers);
  core.keep_running.emplace(core.io.get_executor());
  core.accept();
  for (;;) {
    try {
      core.io.run();
      break;
    } catch (const std::exception& e) {  // one connection's failure is not the server's
      spdlog::error("http: {}", e.what());
    }
  }
  core.workers->join();
}

void HttpServer::stop() {
  if (++core_->stop_calls == 1)
    asio::post(core_->io, [core = core_.get()] { core->begin_drain(); });
  else
    core_->io.stop();
}

}  // namespace emotune::serve
