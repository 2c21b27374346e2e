#include "services/tasks/glob.h"

#include <deque>
#include <set>
#include <tuple>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace cnet::tasks {
namespace {

absl::Status Bad(const std::string& field, const std::string& pattern, const std::string& why) {
  std::string shown = pattern.size() > 80 ? pattern.substr(0, 77) + "..." : pattern;
  return absl::InvalidArgumentError(
      absl::StrCat(field, " \"", absl::CHexEscape(shown), "\": ", why));
}

}  // namespace

absl::StatusOr<Glob> Glob::Parse(const std::string& pattern, const std::string& field) {
  if (pattern.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": empty"));
  if (pattern.size() > 1024) return Bad(field, pattern, "longer than 1024 bytes");
  if (pattern[0] == '/') return Bad(field, pattern, "must be relative (no leading '/')");
  Glob g;
  g.text_ = pattern;
  Segment cur;
  std::string literal;  // the segment's text when it has no wildcard
  bool wild = false;
  auto finish = [&](bool last) -> absl::Status {
    if (cur.tokens.empty()) {
      if (last) return absl::OkStatus();  // trailing '/': handled by the caller
      return Bad(field, pattern, "empty segment ('//')");
    }
    if (!wild && (literal == "." || literal == "..")) {
      return Bad(field, pattern, "'.' and '..' segments are not allowed");
    }
    if (cur.tokens.size() == 2 && cur.tokens[0].kind == Token::kStar &&
        cur.tokens[1].kind == Token::kStar) {
      cur.globstar = true;
    }
    g.segments_.push_back(std::move(cur));
    cur = Segment();
    literal.clear();
    wild = false;
    return absl::OkStatus();
  };
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '/') {
      absl::Status s = finish(false);
      if (!s.ok()) return s;
      continue;
    }
    Token t;
    if (c == '\\') {
      if (i + 1 >= pattern.size()) return Bad(field, pattern, "ends with an escape '\\'");
      c = pattern[++i];
      if (c == '/') return Bad(field, pattern, "'/' cannot be escaped");
      t.ch = c;
      literal.push_back(c);
    } else if (c == '*') {
      t.kind = Token::kStar;
      wild = true;
    } else if (c == '?') {
      t.kind = Token::kAny;
      wild = true;
    } else {
      t.ch = c;
      literal.push_back(c);
    }
    cur.tokens.push_back(t);
  }
  bool trailing_slash = pattern.back() == '/';
  absl::Status s = finish(true);
  if (!s.ok()) return s;
  if (g.segments_.empty()) return Bad(field, pattern, "names no path");
  if (trailing_slash) {
    Segment all;
    all.globstar = true;
    all.tokens = {Token{Token::kStar, 0}, Token{Token::kStar, 0}};
    g.segments_.push_back(std::move(all));
  }
  return g;
}

absl::StatusOr<Glob> Glob::Literal(const std::string& path, const std::string& field) {
  if (path.empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": empty"));
  if (path.size() > 1024) return Bad(field, path, "longer than 1024 bytes");
  if (path[0] == '/') return Bad(field, path, "must be relative (no leading '/')");
  if (path.back() == '/') return Bad(field, path, "must name a file, not end with '/'");
  Glob g;
  g.text_ = path;
  Segment cur;
  std::string text;
  for (size_t i = 0; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      if (cur.tokens.empty()) return Bad(field, path, "empty segment ('//')");
      if (text == "." || text == "..") {
        return Bad(field, path, "'.' and '..' segments are not allowed");
      }
      g.segments_.push_back(std::move(cur));
      cur = Segment();
      text.clear();
      continue;
    }
    cur.tokens.push_back(Token{Token::kChar, path[i]});
    text.push_back(path[i]);
  }
  return g;
}

// Is there a non-empty string matching both segment patterns? Breadth-first
// search over (position in a, position in b, consumed anything).
bool Glob::SegmentsOverlap(const Segment& a, const Segment& b) {
  const std::vector<Token>& x = a.tokens;
  const std::vector<Token>& y = b.tokens;
  using State = std::tuple<size_t, size_t, bool>;
  std::set<State> seen;
  std::deque<State> todo{{0, 0, false}};
  while (!todo.empty()) {
    auto [i, j, some] = todo.front();
    todo.pop_front();
    if (!seen.insert({i, j, some}).second) continue;
    if (i == x.size() && j == y.size() && some) return true;
    // A star may match nothing.
    if (i < x.size() && x[i].kind == Token::kStar) todo.push_back({i + 1, j, some});
    if (j < y.size() && y[j].kind == Token::kStar) todo.push_back({i, j + 1, some});
    // Both sides consume one common character.
    if (i < x.size() && j < y.size()) {
      const Token& p = x[i];
      const Token& q = y[j];
      bool compatible = !(p.kind == Token::kChar && q.kind == Token::kChar && p.ch != q.ch);
      if (compatible) {
        size_t ni = p.kind == Token::kStar ? i : i + 1;
        size_t nj = q.kind == Token::kStar ? j : j + 1;
        todo.push_back({ni, nj, true});
      }
    }
  }
  return false;
}

// Is there a path (at least one segment) matching both? The same search at
// segment level, `**` consuming any number of segments.
bool Glob::Overlaps(const Glob& other) const {
  const std::vector<Segment>& x = segments_;
  const std::vector<Segment>& y = other.segments_;
  using State = std::tuple<size_t, size_t, bool>;
  std::set<State> seen;
  std::deque<State> todo{{0, 0, false}};
  while (!todo.empty()) {
    auto [i, j, some] = todo.front();
    todo.pop_front();
    if (!seen.insert({i, j, some}).second) continue;
    if (i == x.size() && j == y.size() && some) return true;
    if (i < x.size() && x[i].globstar) todo.push_back({i + 1, j, some});
    if (j < y.size() && y[j].globstar) todo.push_back({i, j + 1, some});
    if (i < x.size() && j < y.size()) {
      const Segment& p = x[i];
      const Segment& q = y[j];
      if (p.globstar && q.globstar) {
        todo.push_back({i, j, true});
      } else if (p.globstar) {
        todo.push_back({i, j + 1, true});  // ** swallows a segment matching q
      } else if (q.globstar) {
        todo.push_back({i + 1, j, true});
      } else if (SegmentsOverlap(p, q)) {
        todo.push_back({i + 1, j + 1, true});
      }
    }
  }
  return false;
}

}  // namespace cnet::tasks
