// Prometheus metrics for every binary: counters, gauges (sampled by
// callback at scrape time) and histograms, rendered in the text exposition
// format (version 0.0.4); one shared gRPC server interceptor that counts
// every rpc by method and status code and times it; and a small HTTP
// endpoint (GET /metrics) on the binary's own metrics port.
#ifndef CNET_LIBS_METRICS_METRICS_H_
#define CNET_LIBS_METRICS_METRICS_H_

#include <grpcpp/support/server_interceptor.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace httplib {
class Server;
}

namespace cnet::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Registry {
 public:
  // The process-wide registry every binary exposes.
  static Registry* Default();

  // Adds `delta` to counter `name` with `labels`; created on first use.
  void CounterAdd(const std::string& name, const std::string& help, const Labels& labels,
                  double delta = 1);
  // Records `value` (seconds) in histogram `name` (fixed latency buckets
  // from 100 us to 10 s).
  void Observe(const std::string& name, const std::string& help, const Labels& labels,
               double value);
  // A gauge family sampled at each scrape: `sample` returns (labels, value)
  // pairs. Replaces an earlier gauge of the same name.
  void Gauge(const std::string& name, const std::string& help,
             std::function<std::vector<std::pair<Labels, double>>()> sample);

  // The text exposition format.
  std::string Render() const;

 private:
  struct Histogram {
    std::vector<uint64_t> buckets;  // cumulative counts per upper bound
    uint64_t count = 0;
    double sum = 0;
  };
  struct Family {
    std::string help;
    std::string type;  // counter | histogram
    std::map<Labels, double> counters;
    std::map<Labels, Histogram> histograms;
  };

  mutable absl::Mutex mu_;
  std::map<std::string, Family> families_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::pair<std::string, std::function<std::vector<std::pair<Labels, double>>()>>>
      gauges_ ABSL_GUARDED_BY(mu_);
};

// Counts and times every rpc: cnet_rpc_requests_total{method,code} and
// cnet_rpc_duration_seconds{method}.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeRpcMetricsInterceptorFactory(Registry* registry = Registry::Default());

// Serves GET /metrics (and /healthz) on 127.0.0.1-or-`host`:`port` from a
// background thread. Port 0 picks a free port (see port()).
class HttpEndpoint {
 public:
  static absl::StatusOr<std::unique_ptr<HttpEndpoint>> Start(const std::string& host, int port,
                                                             Registry* registry);
  ~HttpEndpoint();
  int port() const { return port_; }

 private:
  HttpEndpoint() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace cnet::metrics

#endif  // CNET_LIBS_METRICS_METRICS_H_
