// Loading exactly one YAML document safely with Debian's yaml-cpp 0.7, for
// every YAML the suite reads from users (config layers, skills).
//
// Never YAML::LoadAll: in yaml-cpp 0.7 it loops forever, allocating, on a
// document that starts with a stray ',' (jbeder/yaml-cpp#1040, fixed
// upstream by #1319 but not in Debian 12). The documents are counted with a
// bounded parser pass instead, then the first one is loaded. Nesting deeper
// than yaml-cpp's limit is reported as such (yaml-cpp itself says "bad file").
#ifndef CNET_LIBS_YAML_SINGLE_DOCUMENT_H_
#define CNET_LIBS_YAML_SINGLE_DOCUMENT_H_

#include <string>

#include "yaml-cpp/yaml.h"

namespace cnet::yaml {

struct LoadError {
  YAML::Mark mark;      // 0-based, as yaml-cpp reports it
  std::string message;  // "invalid YAML: ...", one line
  // True when the text is valid YAML but holds more than one document
  // (`mark` is where the second starts).
  bool several_documents = false;
};

// Loads the only document of `text` into *root (Null for an empty text).
// Returns false and fills *error on a syntax error, too deep nesting, a
// character the parser cannot place, or more than one document.
bool LoadSingleDocument(const std::string& text, YAML::Node* root, LoadError* error);

}  // namespace cnet::yaml

#endif  // CNET_LIBS_YAML_SINGLE_DOCUMENT_H_
