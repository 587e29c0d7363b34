// The HTTP layer alone, over loopback sockets, with handlers that echo: pipelining, limits, slow
// clients, answers from other threads, and stopping with requests already sent.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "serve/http.h"

namespace emotune::serve {
namespace {

using namespace std::chrono_literals;

// A blocking loopback client on a raw socket.
class Client {
 public:
  explicit Client(int port) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) throw std::runtime_error("connect failed");
  }
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool send(const std::string& data) { return ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size()); }

  // Everything received until `count` answers' status lines have arrived with their bodies, the
  // server closed, or the time is up.
  std::string receive(std::chrono::milliseconds within, std::size_t count = 1) {
    const auto end = std::chrono::steady_clock::now() + within;
    while (answers_complete() < count && !closed_) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
      if (left <= 0ms || !read_some(left)) break;
    }
    return data_;
  }

  // Whether the server closes the connection within the time given (what arrives meanwhile is kept).
  bool closed_within(std::chrono::milliseconds within) {
    receive(within, SIZE_MAX);
    return closed_;
  }

 private:
  bool read_some(std::chrono::milliseconds wait) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) return false;
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) {
      closed_ = true;
      return false;
    }
    data_.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  std::size_t answers_complete() const {
    std::size_t n = 0, at = 0;
    for (;;) {
      const auto head_end = data_.find("\r\n\r\n", at);
      if (head_end == std::string::npos) return n;
      const auto length_at = data_.find("Content-Length: ", at);
      std::size_t length = 0;
      if (length_at != std::string::npos && length_at < head_end) length = std::stoul(data_.substr(length_at + 16));
      if (data_.size() < head_end + 4 + length) return n;
      at = head_end + 4 + length;
      ++n;
    }
  }

  int fd_;
  std::string data_;
  bool closed_ = false;
};

std::size_t occurrences(const std::string& s, const std::string& what) {
  std::size_t n = 0;
  for (auto at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

class Http : public ::testing::Test {
 protected:
  void SetUp() override {
    limits_.max_body_bytes = 1000;
    limits_.max_head_bytes = 2048;
    limits_.read_timeout = 1s;
    limits_.keep_alive = 5s;
    limits_.drain_timeout = 10s;
    limits_.workers = 2;
  }
  void TearDown() override {
    if (running_.joinable()) {
      server_->stop();
      server_->stop();
      running_.join();
    }
    for (auto& t : later_) t.join();
  }

  // Echoes "METHOD PATH BODY"; /later answers from another thread after 200 ms; /throw throws.
  void start() {
    server_ = std::make_unique<HttpServer>(limits_);
    port_ = server_->listen("127.0.0.1", 0);
    HttpHandlers h;
    h.handle = [this](HttpRequest req, Respond respond) {
      HttpResponse r;
      r.content_type = "text/plain";
      r.body = req.method + " " + req.path + " " + req.body;
      if (req.path == "/throw") throw std::runtime_error("handler failed");
      if (req.path == "/watch") {  // answers once the client hangs up, or after 2 s: says which
        const std::lock_guard<std::mutex> lock(later_mutex_);
        later_.emplace_back([this, r, respond, gone = req.client_gone]() mutable {
          const auto until = std::chrono::steady_clock::now() + 2s;
          while (!gone() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(10ms);
          hung_up_.set_value(gone());
          r.body = gone() ? "gone" : "still there";
          respond(r);
        });
        return;
      }
      if (req.path == "/later") {
        const std::lock_guard<std::mutex> lock(later_mutex_);
        later_.emplace_back([r, respond] {
          std::this_thread::sleep_for(200ms);
          respond(r);
        });
        return;
      }
      respond(r);
    };
    h.refuse = [](int status, const std::string& code, const std::string&) {  // the body is the code
      HttpResponse r;
      r.status = status;
      r.body = code;
      return r;
    };
    running_ = std::thread([this, h] { server_->run(h); });
  }

  HttpLimits limits_;
  std::unique_ptr<HttpServer> server_;
  int port_ = 0;
  std::thread running_;
  std::mutex later_mutex_;
  std::vector<std::thread> later_;
  std::promise<bool> hung_up_;  // what /watch saw
};

TEST_F(Http, PipelinedRequestsAreAnsweredInOrder) {
  start();
  Client c(port_);
  c.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
         "POST /later HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
         "POST /b?q=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n"
         "HEAD /c HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string got = c.receive(5s, 3);
  const auto a = got.find("GET /a "), later = got.find("POST /later abc"), b = got.find("POST /b xy");
  ASSERT_NE(a, std::string::npos) << got;
  ASSERT_NE(later, std::string::npos) << got;
  ASSERT_NE(b, std::string::npos) << got;
  EXPECT_LT(a, later);
  EXPECT_LT(later, b);
  const std::string head = c.receive(500ms, 4).substr(later);
  EXPECT_EQ(occurrences(head, "HTTP/1.1 200"), 2u) << head;  // b's answer and HEAD's, which has no body
  EXPECT_EQ(head.find("HEAD /c"), std::string::npos);
  EXPECT_NE(head.find("Content-Length: 8"), std::string::npos);  // "HEAD /c " as GET would send it
}

TEST_F(Http, HeadsAndBodiesBeyondTheLimitsAreRefused) {
  start();
  {
    Client c(port_);
    std::string many = "GET /a HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < 400; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
    c.send(many + "\r\n");
    const std::string got = c.receive(3s);
    EXPECT_EQ(got.rfind("HTTP/1.1 431", 0), 0u) << got;
    EXPECT_NE(got.find("headers_too_large"), std::string::npos);
    EXPECT_TRUE(c.closed_within(3s));
  }
  {
    Client c(port_);
    std::string chunked = "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 20; ++i) chunked += "64\r\n" + std::string(100, 'z') + "\r\n";
    c.send(chunked);
    const std::string got = c.receive(3s);
    EXPECT_EQ(got.rfind("HTTP/1.1 413", 0), 0u) << got;
  }
  {
    Client c(port_);
    c.send("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n");  // refused before the body
    EXPECT_EQ(c.receive(3s).rfind("HTTP/1.1 413", 0), 0u);
  }
  {
    Client c(port_);
    c.send("BREW /pot HTCPCP/1.0\r\n\r\n");
    EXPECT_EQ(c.receive(3s).rfind("HTTP/1.1 400", 0), 0u);
  }
  Client ok(port_);
  ok.send("GET /still HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(ok.receive(3s).find("GET /still"), std::string::npos);
}

TEST_F(Http, ASlowClientIsDroppedAndHoldsUpNobody) {
  start();
  Client slow(port_);
  slow.send("GET /slow HTTP/1.1\r\nHost: x\r\n");
  const auto started = std::chrono::steady_clock::now();
  bool dropped = false;
  for (int i = 0; i < 30 && !dropped; ++i) {
    Client other(port_);
    other.send("GET /other HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_NE(other.receive(2s).find("GET /other"), std::string::npos);
    dropped = !slow.send("X-Slow: " + std::to_string(i) + "\r\n") || slow.closed_within(100ms);
  }
  EXPECT_TRUE(dropped);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);  // read_timeout is 1 s
  EXPECT_EQ(slow.receive(0ms).find("/slow"), std::string::npos);
}

TEST_F(Http, AHandlerThatThrowsGivesA500AndTheConnectionLives) {
  start();
  Client c(port_);
  c.send("GET /throw HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string got = c.receive(3s, 2);
  EXPECT_EQ(got.rfind("HTTP/1.1 500", 0), 0u) << got;
  EXPECT_NE(got.find("internal"), std::string::npos);
  EXPECT_NE(got.find("GET /after"), std::string::npos);
}

TEST_F(Http, StopAnswersEveryRequestAlreadySentThenCloses) {
  start();
  Client idle(port_), busy(port_), pipelined(port_);
  idle.send("GET /warm HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_NE(idle.receive(2s).find("GET /warm"), std::string::npos);
  busy.send("POST /later HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok");
  pipelined.send("GET /later HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n");
  std::this_thread::sleep_for(50ms);
  server_->stop();
  const std::string b = busy.receive(3s), p = pipelined.receive(3s, 2);
  EXPECT_NE(b.find("POST /later ok"), std::string::npos) << b;
  EXPECT_NE(b.find("Connection: close"), std::string::npos) << b;
  EXPECT_NE(p.find("GET /later"), std::string::npos) << p;
  EXPECT_NE(p.find("GET /second"), std::string::npos) << p;
  EXPECT_TRUE(idle.closed_within(2s));
  running_.join();  // run() returns once every connection is done
  EXPECT_THROW(Client{port_}, std::runtime_error);  // and nothing listens any more
}

TEST_F(Http, AnAddressInUseIsRefused) {
  start();
  HttpServer second(limits_);
  try {
    second.listen("127.0.0.1", port_);
    FAIL() << "a second server took the port";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(port_)), std::string::npos);
  }
}

TEST_F(Http, AHandlerLearnsThatItsClientHungUp) {
  start();
  auto seen = hung_up_.get_future();
  const auto sent = std::chrono::steady_clock::now();
  {
    Client c(port_);
    c.send("POST /watch HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi");
    std::this_thread::sleep_for(100ms);
  }  // closed while the handler works
  ASSERT_EQ(seen.wait_for(3s), std::future_status::ready);
  EXPECT_TRUE(seen.get());
  EXPECT_LT(std::chrono::steady_clock::now() - sent, 1500ms);  // told at the close, not at the 2 s limit
}

TEST_F(Http, AClientThatWaitsIsNotTakenForGoneAndKeepsItsConnection) {
  start();
  auto seen = hung_up_.get_future();
  Client c(port_);
  c.send("POST /watch HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi");
  const std::string got = c.receive(5s);
  EXPECT_NE(got.find("still there"), std::string::npos) << got;
  EXPECT_FALSE(seen.get());
  // The watch is over once the answer is written: the connection serves its next request.
  c.send("GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_NE(c.receive(3s, 2).find("GET /next"), std::string::npos);
}

}  // namespace
}  // namespace emotune::serve
