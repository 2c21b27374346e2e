// Fuzz targets of the skill engine's input formats (see tests/fuzz for the
// conventions): the skill YAML loader and the template / condition
// expression language.
#ifndef CNET_SERVICES_SKILLS_FUZZ_SKILLS_TARGETS_H_
#define CNET_SERVICES_SKILLS_FUZZ_SKILLS_TARGETS_H_

#include <string_view>

namespace cnet::skills::fuzz {

// ParseSkillFile on arbitrary text: never throws; every issue has the file,
// a line (>= 1) and column (>= 1) inside the document or 0 for whole-file
// issues, and a one-line reason; parsing is deterministic (same issues on a
// second parse).
void FuzzSkillDocument(std::string_view data);

// Template::Parse, ParseCondition and Expression::Parse on arbitrary text:
// a syntax error's offset lies within the text; whatever parses renders /
// evaluates against a scope with nested data without crashing (errors are
// statuses); every reference's offset lies within the text.
void FuzzTemplate(std::string_view data);

}  // namespace cnet::skills::fuzz

#endif  // CNET_SERVICES_SKILLS_FUZZ_SKILLS_TARGETS_H_
