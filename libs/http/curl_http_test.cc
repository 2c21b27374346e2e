// CurlHttpClient: URL helpers (redaction, encoding, redirects keeping the
// query), and requests against a local httplib server: headers, the size
// cap, streaming with abort, and transport error mapping.
#include "libs/http/curl_http.h"

#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "gtest/gtest.h"

namespace cnet::http {
namespace {

TEST(UrlTest, RedactsCredentials) {
  EXPECT_EQ(RedactUrl("https://db/x.json?auth=abc&print=silent"),
            "https://db/x.json?auth=REDACTED&print=silent");
  EXPECT_EQ(RedactUrl("https://db/x.json?print=silent&access_token=t0k#frag"),
            "https://db/x.json?print=silent&access_token=REDACTED#frag");
  EXPECT_EQ(RedactUrl("https://db/x.json"), "https://db/x.json");
  EXPECT_EQ(RedactUrl("h?Token=1&key=2&x=3"), "h?Token=REDACTED&key=REDACTED&x=3");
}

TEST(UrlTest, EncodesAndResolvesRedirects) {
  EXPECT_EQ(UrlEncode("a b/\"$key\""), "a%20b%2F%22%24key%22");
  EXPECT_EQ(QueryOf("http://h/p?a=1&b=2#x"), "a=1&b=2");
  EXPECT_EQ(ResolveRedirect("https://a/x.json?auth=s", "https://b/x.json?ns=1"),
            "https://b/x.json?ns=1");
  EXPECT_EQ(ResolveRedirect("https://a/x.json?auth=s", "https://b/x.json"),
            "https://b/x.json?auth=s");
  EXPECT_EQ(ResolveRedirect("http://a:8/p/x.json?auth=s", "/y.json"), "http://a:8/y.json?auth=s");
  EXPECT_EQ(ResolveRedirect("http://a:8/p/x.json?auth=s", "y.json"), "http://a:8/p/y.json?auth=s");
}

class LocalServer {
 public:
  LocalServer() {
    svr_.set_tcp_nodelay(true);
    svr_.Get("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.set_header("X-Seen-Accept", req.get_header_value("Accept"));
      res.set_content("hello", "text/plain");
    });
    svr_.Put("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(req.body, "application/json");
    });
    svr_.Get("/big", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(100000, 'x'), "text/plain");
    });
    svr_.Get("/redirect", [this](const httplib::Request& req, httplib::Response& res) {
      res.status = 307;
      res.set_header("Location", "http://127.0.0.1:" + std::to_string(port_) + "/landing");
    });
    svr_.Get("/landing", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(req.get_param_value("auth"), "text/plain");
    });
    svr_.Get("/to", [](const httplib::Request& req, httplib::Response& res) {
      res.status = 307;
      res.set_header("Location", req.get_param_value("target"));
    });
    svr_.Get("/whoami", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(req.get_header_value("Authorization"), "text/plain");
    });
    svr_.Get("/forever", [](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider("text/event-stream", [](size_t, httplib::DataSink& sink) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        return sink.write(":\n", 2);
      });
    });
    port_ = svr_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { svr_.listen_after_bind(); });
    while (!svr_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~LocalServer() {
    svr_.stop();
    thread_.join();
  }
  std::string url(const std::string& p) const {
    return "http://127.0.0.1:" + std::to_string(port_) + p;
  }

 private:
  httplib::Server svr_;
  int port_ = 0;
  std::thread thread_;
};

TEST(CurlHttpClientTest, RequestsHeadersAndBodies) {
  LocalServer s;
  CurlHttpClient c;
  HttpRequest get;
  get.url = s.url("/echo");
  get.headers.emplace_back("Accept", "application/json");
  auto r = c.Do(get);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hello");
  EXPECT_EQ(r->Header("x-seen-accept"), "application/json");
  EXPECT_EQ(r->Header("X-SEEN-ACCEPT"), "application/json");
  HttpRequest put;
  put.method = "PUT";
  put.url = s.url("/echo");
  put.body = "{\"a\":1}";
  r = c.Do(put);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, "{\"a\":1}");
  EXPECT_EQ(c.Do(get)->status, 200);
  EXPECT_LE(c.connections_opened(), 1);  // kept alive
}

TEST(CurlHttpClientTest, RedirectKeepsQuery) {
  LocalServer s;
  CurlHttpClient c;
  HttpRequest get;
  get.url = s.url("/redirect?auth=secret-1");
  auto r = c.Do(get);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body, "secret-1");
}

TEST(CurlHttpClientTest, AuthorizationHeaderStaysWithinTheOrigin) {
  LocalServer a, b;
  CurlHttpClient c;
  HttpRequest same;
  same.url = a.url("/to?target=" + UrlEncode(a.url("/whoami")));
  same.headers.emplace_back("Authorization", "Bearer tok");
  auto r = c.Do(same);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body, "Bearer tok");
  HttpRequest cross = same;
  cross.url = a.url("/to?target=" + UrlEncode(b.url("/whoami")));
  r = c.Do(cross);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->body, "");
}

TEST(CurlHttpClientTest, ResponseCapRefuses) {
  LocalServer s;
  HttpOptions o;
  o.max_response_bytes = 1000;
  CurlHttpClient c(o);
  HttpRequest get;
  get.url = s.url("/big?auth=zzz");
  auto r = c.Do(get);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kOutOfRange) << r.status();
  EXPECT_EQ(std::string(r.status().message()).find("zzz"), std::string::npos);
}

TEST(CurlHttpClientTest, StreamAbortsPromptly) {
  LocalServer s;
  CurlHttpClient c;
  HttpRequest get;
  get.url = s.url("/forever");
  std::atomic<int> chunks{0};
  int status = 0;
  CurlHttpClient::StreamCallbacks cb;
  cb.on_response = [&](int code, const std::multimap<std::string, std::string>&) {
    status = code;
    return true;
  };
  cb.on_data = [&](absl::string_view) {
    ++chunks;
    return true;
  };
  cb.should_abort = [&] { return chunks.load() >= 3; };
  absl::Status st = c.Stream(get, cb);
  EXPECT_EQ(st.code(), absl::StatusCode::kCancelled) << st;
  EXPECT_EQ(status, 200);
  EXPECT_GE(chunks.load(), 3);
}

TEST(CurlHttpClientTest, ConnectionRefusedIsUnavailableAndNotSent) {
  // A port that was free a moment ago and has no listener.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  int port = ntohs(addr.sin_port);
  ::close(fd);
  CurlHttpClient c;
  HttpRequest get;
  get.url = "http://127.0.0.1:" + std::to_string(port) + "/x.json?auth=hidden";
  auto r = c.Do(get);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_TRUE(RequestNotSent(r.status()));
  EXPECT_EQ(std::string(r.status().message()).find("hidden"), std::string::npos);
}

}  // namespace
}  // namespace cnet::http
