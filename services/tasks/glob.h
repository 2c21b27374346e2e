// The path and glob language of path reservations (tasks.proto, top of the
// file), and the two questions the board asks of it, answered exactly:
//   - does this glob match this concrete path?
//   - do these two globs overlap (is there a path both match)?
//
// Paths are relative, '/'-separated, 1..1024 bytes, with no leading '/' and
// no empty, '.' or '..' segments. In a glob, `*` matches any run of
// characters within one segment, `?` one character within a segment, `**`
// as a whole segment any number of segments (including none), `\` escapes
// the next character, and every other character is literal. A trailing '/'
// means the whole directory (`src/` = `src/**`).
//
// Overlap is decided on the product of the two patterns' automata (segment
// level for `**`, character level within a segment), so it is exact for
// this language — except that a witness segment is only required to be
// non-empty: two patterns whose only common segments are "." or ".." (e.g.
// `.?` and `?.`) are reported as overlapping, the safe side for a lock.
#ifndef CNET_SERVICES_TASKS_GLOB_H_
#define CNET_SERVICES_TASKS_GLOB_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace cnet::tasks {

class Glob {
 public:
  // INVALID_ARGUMENT naming `field` and what is wrong.
  static absl::StatusOr<Glob> Parse(const std::string& pattern, const std::string& field);
  // A concrete path (every character literal); validated like a pattern.
  static absl::StatusOr<Glob> Literal(const std::string& path, const std::string& field);

  bool Matches(const Glob& path) const { return Overlaps(path); }
  bool Overlaps(const Glob& other) const;
  const std::string& text() const { return text_; }

 private:
  struct Token {
    enum Kind { kChar, kAny, kStar } kind = kChar;  // literal, ?, *
    char ch = 0;
  };
  struct Segment {
    bool globstar = false;  // `**`
    std::vector<Token> tokens;
  };
  static bool SegmentsOverlap(const Segment& a, const Segment& b);

  std::string text_;
  std::vector<Segment> segments_;
};

}  // namespace cnet::tasks

#endif  // CNET_SERVICES_TASKS_GLOB_H_
