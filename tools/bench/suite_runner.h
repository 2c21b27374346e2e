// Starts the five services for a benchmark on free loopback ports and a
// temporary data directory (through the same code as `cnet up`), and stops
// them at the end — the benchmark always cleans up after itself.
#ifndef CNET_TOOLS_BENCH_SUITE_RUNNER_H_
#define CNET_TOOLS_BENCH_SUITE_RUNNER_H_

#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "libs/config/loader.h"

namespace cnet::bench {

class SuiteRunner {
 public:
  ~SuiteRunner();

  // Starts the suite; `startup` receives the time until all were SERVING.
  // `extra_env` adds configuration (generic CNET_ variables).
  absl::Status Start(absl::Duration* startup,
                     const std::map<std::string, std::string>& extra_env = {});
  void Stop();

  // Address of a service by binary name ("registry", "macs-gateway", ...).
  std::string address(const std::string& name) const;
  // Pid of a running service, 0 when unknown.
  int pid(const std::string& name) const;
  const std::string& data_dir() const { return data_dir_; }
  // The admin credential of this suite (read from its data dir).
  std::string admin_token() const;
  std::string service_credential() const;

 private:
  std::string root_;
  std::string data_dir_;
  std::map<std::string, std::string> env_;
  std::optional<config::Config> config_;
  bool running_ = false;
};

}  // namespace cnet::bench

#endif  // CNET_TOOLS_BENCH_SUITE_RUNNER_H_
