#include "libs/logging/logging.h"

#include <fcntl.h>
#include <glog/logging.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace cnet {

std::string JsonEscape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  return out;
}

std::string FormatJsonLogLine(std::string_view ts, std::string_view level,
                              std::string_view service, std::string_view file,
                              int line, std::string_view msg) {
  return absl::StrCat("{\"ts\":\"", JsonEscape(ts), "\",\"level\":\"",
                      JsonEscape(level), "\",\"service\":\"", JsonEscape(service),
                      "\",\"file\":\"", JsonEscape(file), "\",\"line\":", line,
                      ",\"msg\":\"", JsonEscape(msg), "\"}\n");
}

namespace {

class JsonSink final : public google::LogSink {
 public:
  JsonSink(std::string service, int fd) : service_(std::move(service)), fd_(fd) {}

  void send(google::LogSeverity severity, const char* /*full_filename*/,
            const char* base_filename, int line,
            const google::LogMessageTime& time, const char* message,
            size_t message_len) override {
    const std::tm& tm = time.tm();
    std::string ts = absl::StrFormat("%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
                                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                                     tm.tm_hour, tm.tm_min, tm.tm_sec, time.usec());
    std::string text = FormatJsonLogLine(
        ts, google::GetLogSeverityName(severity), service_, base_filename, line,
        std::string_view(message, message_len));
    std::lock_guard<std::mutex> lock(mu_);
    // One write() per line keeps lines whole even with several writers.
    ssize_t ignored = ::write(fd_, text.data(), text.size());
    (void)ignored;
  }

 private:
  std::string service_;
  int fd_;
  std::mutex mu_;
};

}  // namespace

absl::Status InitLogging(const char* argv0, std::string_view service,
                         const std::string& log_file) {
  int fd = STDERR_FILENO;
  if (!log_file.empty()) {
    std::error_code ec;
    std::filesystem::path parent = std::filesystem::path(log_file).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    fd = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot open log file ", log_file, ": ", std::strerror(errno)));
    }
  }
  // glog writes to UTC so "Z" timestamps are true.
  FLAGS_log_utc_time = true;
  FLAGS_logtostderr = false;
  FLAGS_alsologtostderr = false;
  FLAGS_stderrthreshold = google::NUM_SEVERITIES;
  google::InitGoogleLogging(argv0);
  for (int s = 0; s < google::NUM_SEVERITIES; ++s) {
    google::SetLogDestination(s, "");
  }
  static JsonSink* sink = new JsonSink(std::string(service), fd);
  google::AddLogSink(sink);
  return absl::OkStatus();
}

}  // namespace cnet
