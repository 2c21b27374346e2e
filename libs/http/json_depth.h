// A guard run before nlohmann::json::parse on untrusted input: nlohmann
// parses recursively, so deep nesting ([[[[...) would exhaust the stack.
#ifndef CNET_LIBS_HTTP_JSON_DEPTH_H_
#define CNET_LIBS_HTTP_JSON_DEPTH_H_

#include "absl/strings/string_view.h"

namespace cnet::http {

// True when no array/object in `s` nests deeper than `max_depth` levels
// (brackets inside JSON strings, escapes included, are not counted). A
// linear scan; it does not validate the JSON otherwise.
bool JsonDepthWithinLimit(absl::string_view s, int max_depth);

}  // namespace cnet::http

#endif  // CNET_LIBS_HTTP_JSON_DEPTH_H_
