// Semantic versions of skills and the version ranges a composing step may
// ask for (`version: "^1.2"`).
//
// Versions are strictly MAJOR.MINOR.PATCH (digits, no leading zeros, no
// pre-release or build suffix). A range is one or more comparators joined
// by spaces, all of which must hold (AND):
//   1.2.3  =1.2.3   exactly that version
//   1.2    1        every version with that prefix (1.2.x, 1.x.x)
//   ^1.2.3          >=1.2.3 <2.0.0   (^0.2.3: <0.3.0, ^0.0.3: <0.0.4)
//   ~1.2.3  ~1.2    >=1.2.3 <1.3.0
//   >=1.0  >1.0  <2  <=1.4.2   ordinary comparisons (partial versions
//                   are completed with zeros, ">1.2" means ">=1.3.0")
//   *  (or empty)   any version
#ifndef CNET_SERVICES_SKILLS_SEMVER_H_
#define CNET_SERVICES_SKILLS_SEMVER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <tuple>

#include "absl/status/statusor.h"

namespace cnet::skills {

struct Semver {
  int64_t major = 0;
  int64_t minor = 0;
  int64_t patch = 0;

  // False unless `text` is exactly MAJOR.MINOR.PATCH.
  static bool Parse(std::string_view text, Semver* out);
  std::string ToString() const;

  friend bool operator<(const Semver& a, const Semver& b) {
    return std::tie(a.major, a.minor, a.patch) < std::tie(b.major, b.minor, b.patch);
  }
  friend bool operator==(const Semver& a, const Semver& b) {
    return !(a < b) && !(b < a);
  }
  friend bool operator!=(const Semver& a, const Semver& b) { return !(a == b); }
  friend bool operator<=(const Semver& a, const Semver& b) { return !(b < a); }
};

class VersionRange {
 public:
  // Any version.
  VersionRange() = default;
  // INVALID_ARGUMENT with a one-line reason for a malformed range.
  static absl::StatusOr<VersionRange> Parse(std::string_view text);

  bool Matches(const Semver& v) const;
  // True when no version at all can match (e.g. ">=2 <1").
  bool Unsatisfiable() const;
  // The intersection of two ranges (both must hold).
  VersionRange Intersect(const VersionRange& other) const;
  const std::string& text() const { return text_; }

 private:
  struct Bound {
    bool present = false;
    bool inclusive = false;
    Semver v;
  };
  void AddLower(const Semver& v, bool inclusive);
  void AddUpper(const Semver& v, bool inclusive);

  std::string text_;
  Bound lower_;
  Bound upper_;
};

}  // namespace cnet::skills

#endif  // CNET_SERVICES_SKILLS_SEMVER_H_
