// The start and stop sequence every binary of the suite shares, so each
// main.cc stays a few lines: parse the common flags, load the configuration
// layers (exiting non-zero with a one-line reason when they are invalid,
// before anything is written), set up JSON logging, serve until SIGINT or
// SIGTERM, then drain.
//
// Common flags (each binary):
//   --listen HOST:PORT   overrides services.<name>_addr (port 0 = any free port)
//   --data-dir DIR       overrides services.data_dir
//   --log-file PATH      JSON log destination; "-" = stderr
//                        (default <services.log_dir>/<name>.log)
//   --project-dir DIR    where config.yaml / config.example.yaml are read
//                        (default: the working directory)
//   --port-file PATH     after binding, write the chosen port there (atomic),
//                        and the metrics port to PATH.metrics
// Metrics: when services.metrics_enabled, every rpc is counted and timed by
// the shared interceptor and GET /metrics serves the Prometheus text format
// on services.bind_host:services.<name>_metrics_port (0 = any free port).
// Flags are applied as environment entries of the generic scheme
// (CNET_SERVICES__DATA_DIR, ...), so they take part in validation and the
// config service reports them with layer "environment".
#ifndef CNET_LIBS_SERVER_BOOTSTRAP_H_
#define CNET_LIBS_SERVER_BOOTSTRAP_H_

#include <functional>
#include <string>
#include <string_view>

#include "libs/config/loader.h"
#include "libs/server/server.h"

namespace cnet {

struct Boot {
  std::string name;                  // "registry", "config", ...
  config::LoadOptions load_options;  // as used, flags applied
  config::Config config;
  std::string listen_address;
  std::string data_dir;  // tilde expanded, exists after BootOrExit
  std::string port_file;
  std::string address_key;  // e.g. "services.registry_addr"
};

// Exits the process with status 2 and one line on stderr
// ("<name>: <reason>") when flags or configuration are invalid, or the data
// directory cannot be created.
Boot BootOrExit(int argc, char** argv, std::string_view name,
                std::string_view address_key);

struct ServeHooks {
  // Runs on SIGHUP (the server keeps serving).
  std::function<void()> on_reload;
  // Runs after health turned NOT_SERVING and before the listener drains,
  // e.g. to close event hubs so streams end cleanly.
  std::function<void()> on_shutdown;
};

// Starts the server (exits 2 with a one-line reason if it cannot bind),
// writes the port file, waits for SIGINT/SIGTERM (SIGHUP calls on_reload),
// then shuts down with the configured drain deadline. Returns main's exit
// status. BlockShutdownSignals() must have been called first thing in main.
int ServeUntilSignal(const Boot& boot, ServerOptions options,
                     const ServeHooks& hooks = {});

// Logs a warning for each secret set by a file that other users can read.
void WarnAboutExposedSecrets(const config::Config& config);

// Writes `content` to `path` via a temporary file and rename.
absl::Status WriteFileAtomically(const std::string& path, std::string_view content);

}  // namespace cnet

#endif  // CNET_LIBS_SERVER_BOOTSTRAP_H_
