#include "libs/metrics/metrics.h"

#include <httplib.h>

#include <regex>
#include <sstream>

#include "gtest/gtest.h"

namespace cnet::metrics {
namespace {

// Every non-comment line is `name{labels} value` per the exposition format.
void ExpectWellFormed(const std::string& text) {
  std::regex sample(R"(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*"(,[a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*")*\})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN)$)");
  std::istringstream in(text);
  std::string line;
  int samples = 0;
  while (std::getline(in, line)) {
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) continue;
    EXPECT_TRUE(std::regex_match(line, sample)) << line;
    ++samples;
  }
  EXPECT_GT(samples, 0);
}

TEST(RegistryTest, RendersCountersHistogramsAndGauges) {
  Registry r;
  r.CounterAdd("x_total", "things", {{"kind", "a\"b"}}, 2);
  r.CounterAdd("x_total", "things", {{"kind", "a\"b"}});
  r.Observe("lat_seconds", "latency", {{"m", "/p.S/M"}}, 0.003);
  r.Observe("lat_seconds", "latency", {{"m", "/p.S/M"}}, 20);
  r.Gauge("depth", "queue depth", [] {
    return std::vector<std::pair<Labels, double>>{{{{"q", "in"}}, 7}};
  });
  std::string text = r.Render();
  EXPECT_NE(text.find("# TYPE x_total counter"), std::string::npos);
  EXPECT_NE(text.find("x_total{kind=\"a\\\"b\"} 3"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_bucket{m=\"/p.S/M\",le=\"0.005\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("lat_seconds_bucket{m=\"/p.S/M\",le=\"+Inf\"} 2"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_count{m=\"/p.S/M\"} 2"), std::string::npos);
  EXPECT_NE(text.find("# TYPE depth gauge\ndepth{q=\"in\"} 7"), std::string::npos);
  ExpectWellFormed(text);
}

TEST(HttpEndpointTest, ServesTheRegistryOverHttp) {
  Registry r;
  r.CounterAdd("hits_total", "hits", {});
  auto ep = HttpEndpoint::Start("127.0.0.1", 0, &r);
  ASSERT_TRUE(ep.ok()) << ep.status();
  httplib::Client client("127.0.0.1", (*ep)->port());
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->get_header_value("Content-Type").find("version=0.0.4"), std::string::npos);
  EXPECT_NE(res->body.find("hits_total 1"), std::string::npos);
  ExpectWellFormed(res->body);
  auto busy = HttpEndpoint::Start("127.0.0.1", (*ep)->port(), &r);
  EXPECT_FALSE(busy.ok());
}

}  // namespace
}  // namespace cnet::metrics
