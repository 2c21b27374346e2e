// Server-sent events (text/event-stream) parsing and the decoding of
// Firebase's streaming events. Both are pure functions of their input: no
// I/O, no clock, safe on hostile bytes (fuzzed by sse_fuzz_test).
//
// SseParser accepts bytes in any chunking and yields complete events:
//   - lines end with LF, CRLF or CR (a CRLF split across chunks is one end);
//   - "event: x" sets the type; "data: y" lines are joined with '\n';
//   - a line starting with ':' is a comment; "id:" and "retry:" are kept;
//   - one leading space after ':' is removed; a line without ':' is a field
//     with an empty value; unknown fields are ignored;
//   - a blank line dispatches the event if it has data or an event type
//     (type defaults to "message");
//   - a line longer than max_line_bytes or an event larger than
//     max_event_bytes makes Feed() return RESOURCE_EXHAUSTED; the parser is
//     then poisoned (every later Feed fails) — the caller drops the stream.
#ifndef CNET_LIBS_FIREBASE_SSE_PARSER_H_
#define CNET_LIBS_FIREBASE_SSE_PARSER_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace cnet::firebase {

struct SseEvent {
  std::string event = "message";
  std::string data;
  std::string id;
};

struct SseLimits {
  size_t max_line_bytes = 1u << 20;
  size_t max_event_bytes = 16u << 20;
};

class SseParser {
 public:
  explicit SseParser(SseLimits limits = {});

  // Appends `bytes`; complete events are appended to `out`.
  absl::Status Feed(absl::string_view bytes, std::vector<SseEvent>* out);

  // Bytes buffered for the event in progress (line + data so far).
  size_t buffered_bytes() const;

 private:
  absl::Status ProcessLine(absl::string_view line, std::vector<SseEvent>* out);

  SseLimits limits_;
  std::string line_;
  bool last_was_cr_ = false;
  bool poisoned_ = false;
  std::string event_type_;
  std::string data_;
  bool has_data_ = false;
  std::string last_id_;
};

// A decoded Firebase streaming event.
struct StreamEvent {
  enum class Type { kPut, kPatch, kKeepAlive, kCancel, kAuthRevoked };
  Type type = Type::kKeepAlive;
  // put/patch: the path relative to the streamed location ("/" = itself).
  std::string path;
  // put: the new value at `path` (null = deleted); patch: an object of
  // children of `path` to replace (null children deleted).
  nlohmann::json data;
  // cancel / auth_revoked: the server's reason text (may be empty).
  std::string reason;
  // Set by FirebaseStream (never by DecodeStreamEvent): this is the first
  // event of a connection, a put at "/" holding the whole value.
  bool snapshot = false;
  // Set by FirebaseStream: a snapshot after a reconnect; the receiver must
  // replace (not merge) what it holds, since events may have been missed.
  bool resync = false;
};

const char* StreamEventTypeName(StreamEvent::Type t);

// Decodes one SSE event from a Firebase stream. put/patch need data
// {"path": "/...", "data": ...} with a path starting with '/' (and patch
// data an object); unknown event types, malformed JSON or wrong shapes are
// INVALID_ARGUMENT naming the event and the problem. JSON nesting deeper
// than 512 levels is rejected.
absl::StatusOr<StreamEvent> DecodeStreamEvent(const SseEvent& event);

}  // namespace cnet::firebase

#endif  // CNET_LIBS_FIREBASE_SSE_PARSER_H_
