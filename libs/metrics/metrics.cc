#include "libs/metrics/metrics.h"

#include <httplib.h>

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace cnet::metrics {
namespace {

const std::vector<double>& Bounds() {
  static const auto* bounds = new std::vector<double>{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
      0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
  return *bounds;
}

std::string EscapeLabel(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out.push_back(c);
  }
  return out;
}

std::string LabelText(const Labels& labels, const std::string& extra = "") {
  std::string out;
  for (const auto& [k, v] : labels) {
    absl::StrAppend(&out, out.empty() ? "" : ",", k, "=\"", EscapeLabel(v), "\"");
  }
  if (!extra.empty()) absl::StrAppend(&out, out.empty() ? "" : ",", extra);
  return out.empty() ? "" : absl::StrCat("{", out, "}");
}

std::string Num(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return absl::StrFormat("%.0f", v);
  return absl::StrFormat("%.9g", v);
}

}  // namespace

Registry* Registry::Default() {
  static Registry* registry = new Registry();
  return registry;
}

void Registry::CounterAdd(const std::string& name, const std::string& help,
                          const Labels& labels, double delta) {
  absl::MutexLock lock(&mu_);
  Family& f = families_[name];
  f.help = help;
  f.type = "counter";
  f.counters[labels] += delta;
}

void Registry::Observe(const std::string& name, const std::string& help, const Labels& labels,
                       double value) {
  absl::MutexLock lock(&mu_);
  Family& f = families_[name];
  f.help = help;
  f.type = "histogram";
  Histogram& h = f.histograms[labels];
  if (h.buckets.empty()) h.buckets.assign(Bounds().size(), 0);
  for (size_t i = 0; i < Bounds().size(); ++i) {
    if (value <= Bounds()[i]) ++h.buckets[i];
  }
  ++h.count;
  h.sum += value;
}

void Registry::Gauge(const std::string& name, const std::string& help,
                     std::function<std::vector<std::pair<Labels, double>>()> sample) {
  absl::MutexLock lock(&mu_);
  gauges_[name] = {help, std::move(sample)};
}

std::string Registry::Render() const {
  std::string out;
  std::map<std::string, std::pair<std::string, std::function<std::vector<std::pair<Labels, double>>()>>>
      gauges;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, f] : families_) {
      absl::StrAppend(&out, "# HELP ", name, " ", f.help, "\n# TYPE ", name, " ", f.type, "\n");
      for (const auto& [labels, v] : f.counters) {
        absl::StrAppend(&out, name, LabelText(labels), " ", Num(v), "\n");
      }
      for (const auto& [labels, h] : f.histograms) {
        for (size_t i = 0; i < Bounds().size(); ++i) {
          absl::StrAppend(&out, name, "_bucket",
                          LabelText(labels, absl::StrCat("le=\"", Num(Bounds()[i]), "\"")), " ",
                          h.buckets[i], "\n");
        }
        absl::StrAppend(&out, name, "_bucket", LabelText(labels, "le=\"+Inf\""), " ", h.count,
                        "\n", name, "_sum", LabelText(labels), " ", Num(h.sum), "\n", name,
                        "_count", LabelText(labels), " ", h.count, "\n");
      }
    }
    gauges = gauges_;
  }
  // Gauges are sampled outside the lock: a callback may take its own locks.
  for (const auto& [name, g] : gauges) {
    absl::StrAppend(&out, "# HELP ", name, " ", g.first, "\n# TYPE ", name, " gauge\n");
    for (const auto& [labels, v] : g.second()) {
      absl::StrAppend(&out, name, LabelText(labels), " ", Num(v), "\n");
    }
  }
  return out;
}

namespace {

class RpcMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  RpcMetricsInterceptor(grpc::experimental::ServerRpcInfo* info, Registry* registry)
      : method_(info->method()), registry_(registry), start_(absl::Now()) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      grpc::Status status = methods->GetSendStatus();
      registry_->CounterAdd("cnet_rpc_requests_total", "Completed rpcs by method and status code.",
                            {{"method", method_}, {"code", CodeName(status.error_code())}});
      registry_->Observe("cnet_rpc_duration_seconds", "Server-side rpc duration.",
                         {{"method", method_}}, absl::ToDoubleSeconds(absl::Now() - start_));
    }
    methods->Proceed();
  }

 private:
  static std::string CodeName(grpc::StatusCode code) {
    static const char* kNames[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
                                   "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
                                   "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                   "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
                                   "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                                   "UNAUTHENTICATED"};
    int i = static_cast<int>(code);
    return i >= 0 && i < 17 ? kNames[i] : std::to_string(i);
  }

  std::string method_;
  Registry* registry_;
  absl::Time start_;
};

class RpcMetricsFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcMetricsFactory(Registry* r) : r_(r) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new RpcMetricsInterceptor(info, r_);
  }

 private:
  Registry* r_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeRpcMetricsInterceptorFactory(Registry* registry) {
  return std::make_unique<RpcMetricsFactory>(registry);
}

absl::StatusOr<std::unique_ptr<HttpEndpoint>> HttpEndpoint::Start(const std::string& host,
                                                                  int port, Registry* registry) {
  std::unique_ptr<HttpEndpoint> ep(new HttpEndpoint());
  ep->server_ = std::make_unique<httplib::Server>();
  // httplib's default adds SO_REUSEPORT, which would let a second process
  // share the port silently; keep only SO_REUSEADDR.
  ep->server_->set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  ep->server_->Get("/metrics", [registry](const httplib::Request&, httplib::Response& res) {
    res.set_content(registry->Render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  ep->server_->Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  if (port == 0) {
    ep->port_ = ep->server_->bind_to_any_port(host);
  } else {
    ep->port_ = ep->server_->bind_to_port(host, port) ? port : -1;
  }
  if (ep->port_ <= 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("metrics: cannot listen on ", host, ":", port, " (address in use?)"));
  }
  httplib::Server* raw = ep->server_.get();
  ep->thread_ = std::thread([raw] { raw->listen_after_bind(); });
  return ep;
}

HttpEndpoint::~HttpEndpoint() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace cnet::metrics
