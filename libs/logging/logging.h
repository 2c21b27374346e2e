// Structured logging for every binary: glog's LOG(...) macros, written as
// one JSON object per line:
//   {"ts":"2026-11-26T10:00:00.123456Z","level":"INFO","service":"registry",
//    "file":"main.cc","line":42,"msg":"listening on 127.0.0.1:7101"}
// to a per-service file (append) or to stderr. glog's own text output and
// log files are turned off so nothing is written twice.
#ifndef CNET_LIBS_LOGGING_LOGGING_H_
#define CNET_LIBS_LOGGING_LOGGING_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace cnet {

// Call once at the top of main(). `log_file` empty means stderr. Fails when
// the file cannot be opened (the caller prints the one-line reason and
// exits non-zero).
absl::Status InitLogging(const char* argv0, std::string_view service,
                         const std::string& log_file);

// Encodes one log record as a JSON line (exposed for tests).
std::string FormatJsonLogLine(std::string_view ts, std::string_view level,
                              std::string_view service, std::string_view file,
                              int line, std::string_view msg);

// Escapes a string for inclusion between JSON double quotes.
std::string JsonEscape(std::string_view s);

}  // namespace cnet

#endif  // CNET_LIBS_LOGGING_LOGGING_H_
