#include "services/skills/semver.h"

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace cnet::skills {
namespace {

bool ParseNumber(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 9) return false;
  if (s.size() > 1 && s[0] == '0') return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

// A possibly partial version: 1, 1.2 or 1.2.3 (`parts` says how many).
struct Partial {
  Semver v;
  int parts = 0;
};

bool ParsePartial(std::string_view s, Partial* out) {
  std::vector<std::string_view> pieces;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i) {
    if (i == s.size() || s[i] == '.') {
      pieces.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  if (pieces.empty() || pieces.size() > 3) return false;
  int64_t* fields[3] = {&out->v.major, &out->v.minor, &out->v.patch};
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (!ParseNumber(pieces[i], fields[i])) return false;
  }
  out->parts = static_cast<int>(pieces.size());
  return true;
}

// The first version after every version with this prefix.
Semver NextAfterPrefix(const Partial& p) {
  Semver v = p.v;
  if (p.parts == 1) return Semver{v.major + 1, 0, 0};
  if (p.parts == 2) return Semver{v.major, v.minor + 1, 0};
  return Semver{v.major, v.minor, v.patch + 1};
}

}  // namespace

bool Semver::Parse(std::string_view text, Semver* out) {
  Partial p;
  if (!ParsePartial(text, &p) || p.parts != 3) return false;
  *out = p.v;
  return true;
}

std::string Semver::ToString() const { return absl::StrCat(major, ".", minor, ".", patch); }

void VersionRange::AddLower(const Semver& v, bool inclusive) {
  if (!lower_.present || lower_.v < v || (lower_.v == v && !inclusive)) {
    lower_ = Bound{true, inclusive, v};
  }
}

void VersionRange::AddUpper(const Semver& v, bool inclusive) {
  if (!upper_.present || v < upper_.v || (upper_.v == v && !inclusive)) {
    upper_ = Bound{true, inclusive, v};
  }
}

absl::StatusOr<VersionRange> VersionRange::Parse(std::string_view text) {
  VersionRange range;
  range.text_ = std::string(text);
  // Split on spaces and commas; an operator alone joins the next token.
  std::vector<std::string> tokens;
  std::string pending;
  for (absl::string_view piece :
       absl::StrSplit(absl::string_view(text.data(), text.size()), absl::ByAnyChar(" ,\t"),
                      absl::SkipEmpty())) {
    std::string tok(piece);
    if (tok == ">=" || tok == "<=" || tok == ">" || tok == "<" || tok == "=" ||
        tok == "^" || tok == "~") {
      pending += tok;
      continue;
    }
    tokens.push_back(pending + tok);
    pending.clear();
  }
  if (!pending.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("version range \"", range.text_, "\": operator \"", pending,
                     "\" has no version after it"));
  }
  for (const std::string& tok : tokens) {
    if (tok == "*" || tok == "x") continue;
    std::string op;
    size_t i = 0;
    while (i < tok.size() && std::string_view("<>=^~").find(tok[i]) != std::string_view::npos) {
      op += tok[i++];
    }
    Partial p;
    if (!ParsePartial(std::string_view(tok).substr(i), &p)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "version range \"", range.text_, "\": \"", tok,
          "\" is not a version comparator (expected e.g. 1.2.3, ^1.2, ~1.2, >=1.0 <2.0)"));
    }
    if (op.empty() || op == "=") {
      range.AddLower(p.v, true);
      if (p.parts == 3) {
        range.AddUpper(p.v, true);
      } else {
        range.AddUpper(NextAfterPrefix(p), false);
      }
    } else if (op == "^") {
      range.AddLower(p.v, true);
      Semver hi;
      if (p.v.major > 0 || p.parts == 1) {
        hi = Semver{p.v.major + 1, 0, 0};
      } else if (p.v.minor > 0 || p.parts == 2) {
        hi = Semver{0, p.v.minor + 1, 0};
      } else {
        hi = Semver{0, 0, p.v.patch + 1};
      }
      range.AddUpper(hi, false);
    } else if (op == "~") {
      range.AddLower(p.v, true);
      range.AddUpper(p.parts == 1 ? Semver{p.v.major + 1, 0, 0}
                                  : Semver{p.v.major, p.v.minor + 1, 0},
                     false);
    } else if (op == ">=") {
      range.AddLower(p.v, true);
    } else if (op == ">") {
      if (p.parts == 3) {
        range.AddLower(p.v, false);
      } else {
        range.AddLower(NextAfterPrefix(p), true);
      }
    } else if (op == "<") {
      range.AddUpper(p.v, false);
    } else if (op == "<=") {
      if (p.parts == 3) {
        range.AddUpper(p.v, true);
      } else {
        range.AddUpper(NextAfterPrefix(p), false);
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "version range \"", range.text_, "\": unknown operator \"", op, "\" in \"", tok, "\""));
    }
  }
  return range;
}

bool VersionRange::Matches(const Semver& v) const {
  if (lower_.present && (v < lower_.v || (v == lower_.v && !lower_.inclusive))) return false;
  if (upper_.present && (upper_.v < v || (v == upper_.v && !upper_.inclusive))) return false;
  return true;
}

bool VersionRange::Unsatisfiable() const {
  if (!lower_.present || !upper_.present) return false;
  if (upper_.v < lower_.v) return true;
  if (upper_.v == lower_.v) return !(lower_.inclusive && upper_.inclusive);
  return false;
}

VersionRange VersionRange::Intersect(const VersionRange& other) const {
  VersionRange r = *this;
  r.text_ = text_.empty() ? other.text_
                          : (other.text_.empty() ? text_ : text_ + " " + other.text_);
  if (other.lower_.present) r.AddLower(other.lower_.v, other.lower_.inclusive);
  if (other.upper_.present) r.AddUpper(other.upper_.v, other.upper_.inclusive);
  return r;
}

}  // namespace cnet::skills
