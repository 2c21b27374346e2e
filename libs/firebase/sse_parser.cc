#include "libs/firebase/sse_parser.h"

#include "libs/http/json_depth.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace cnet::firebase {

SseParser::SseParser(SseLimits limits) : limits_(limits) {}

size_t SseParser::buffered_bytes() const { return line_.size() + data_.size(); }

absl::Status SseParser::Feed(absl::string_view bytes, std::vector<SseEvent>* out) {
  if (poisoned_) {
    return absl::ResourceExhaustedError("event stream: parser stopped after an oversize line/event");
  }
  size_t i = 0;
  while (i < bytes.size()) {
    char c = bytes[i];
    if (last_was_cr_ && c == '\n') {
      // Second half of a CRLF whose CR ended the previous line.
      last_was_cr_ = false;
      ++i;
      continue;
    }
    last_was_cr_ = false;
    // Copy the run of ordinary bytes at once.
    size_t end = i;
    while (end < bytes.size() && bytes[end] != '\n' && bytes[end] != '\r') ++end;
    if (end > i) {
      if (line_.size() + (end - i) > limits_.max_line_bytes) {
        poisoned_ = true;
        return absl::ResourceExhaustedError(
            absl::StrCat("event stream: line longer than ", limits_.max_line_bytes, " bytes"));
      }
      line_.append(bytes.data() + i, end - i);
      i = end;
      continue;
    }
    // c is CR or LF: a line ends.
    if (c == '\r') last_was_cr_ = true;
    ++i;
    std::string line;
    line.swap(line_);
    absl::Status s = ProcessLine(line, out);
    if (!s.ok()) {
      poisoned_ = true;
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status SseParser::ProcessLine(absl::string_view line, std::vector<SseEvent>* out) {
  if (line.empty()) {
    if (has_data_ || !event_type_.empty()) {
      SseEvent ev;
      ev.event = event_type_.empty() ? "message" : event_type_;
      ev.data = std::move(data_);
      ev.id = last_id_;
      out->push_back(std::move(ev));
    }
    event_type_.clear();
    data_.clear();
    has_data_ = false;
    return absl::OkStatus();
  }
  if (line[0] == ':') return absl::OkStatus();  // comment
  absl::string_view field = line;
  absl::string_view value;
  size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
  }
  if (field == "event") {
    event_type_ = std::string(value);
  } else if (field == "data") {
    size_t add = value.size() + (has_data_ ? 1 : 0);
    if (data_.size() + add > limits_.max_event_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("event stream: event larger than ", limits_.max_event_bytes, " bytes"));
    }
    if (has_data_) data_ += '\n';
    data_.append(value.data(), value.size());
    has_data_ = true;
  } else if (field == "id") {
    if (value.find('\0') == absl::string_view::npos) last_id_ = std::string(value);
  }
  // "retry" and unknown fields: ignored (reconnect policy is ours).
  return absl::OkStatus();
}

const char* StreamEventTypeName(StreamEvent::Type t) {
  switch (t) {
    case StreamEvent::Type::kPut:
      return "put";
    case StreamEvent::Type::kPatch:
      return "patch";
    case StreamEvent::Type::kKeepAlive:
      return "keep-alive";
    case StreamEvent::Type::kCancel:
      return "cancel";
    case StreamEvent::Type::kAuthRevoked:
      return "auth_revoked";
  }
  return "unknown";
}

namespace {

constexpr int kMaxJsonDepth = 512;

absl::StatusOr<nlohmann::json> ParseJson(absl::string_view s, absl::string_view what) {
  if (!http::JsonDepthWithinLimit(s, kMaxJsonDepth)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": JSON nested deeper than ", kMaxJsonDepth, " levels"));
  }
  nlohmann::json j = nlohmann::json::parse(s.begin(), s.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError(absl::StrCat(what, ": malformed JSON"));
  return j;
}

std::string Preview(absl::string_view s) {
  std::string out(s.substr(0, 60));
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) c = '?';
  }
  return s.size() > 60 ? out + "..." : out;
}

}  // namespace

absl::StatusOr<StreamEvent> DecodeStreamEvent(const SseEvent& event) {
  StreamEvent out;
  const std::string& type = event.event;
  if (type == "keep-alive") {
    out.type = StreamEvent::Type::kKeepAlive;
    return out;
  }
  if (type == "cancel" || type == "auth_revoked") {
    out.type = type == "cancel" ? StreamEvent::Type::kCancel : StreamEvent::Type::kAuthRevoked;
    // Firebase sends a plain string (auth_revoked) or null/JSON (cancel).
    auto j = ParseJson(event.data, type);
    if (j.ok() && j->is_string()) {
      out.reason = j->get<std::string>();
    } else if (!(j.ok() && j->is_null())) {
      out.reason = Preview(event.data);
    }
    return out;
  }
  if (type != "put" && type != "patch") {
    return absl::InvalidArgumentError(
        absl::StrCat("stream event \"", Preview(type), "\": unknown event type"));
  }
  std::string what = absl::StrCat("stream event \"", type, "\"");
  auto parsed = ParseJson(event.data, what);
  if (!parsed.ok()) return parsed.status();
  const nlohmann::json& j = *parsed;
  if (!j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": data is not a JSON object"));
  }
  auto path = j.find("path");
  if (path == j.end() || !path->is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": missing string field \"path\""));
  }
  out.path = path->get<std::string>();
  if (!absl::StartsWith(out.path, "/")) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": path \"", Preview(out.path), "\" does not start with '/'"));
  }
  auto data = j.find("data");
  if (data == j.end()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": missing field \"data\""));
  }
  out.data = *data;
  if (type == "put") {
    out.type = StreamEvent::Type::kPut;
  } else {
    out.type = StreamEvent::Type::kPatch;
    if (!out.data.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": patch data is not an object"));
    }
  }
  return out;
}

}  // namespace cnet::firebase
