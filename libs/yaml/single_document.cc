#include "libs/yaml/single_document.h"

#include <sstream>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "yaml-cpp/depthguard.h"
#include "yaml-cpp/eventhandler.h"

namespace cnet::yaml {
namespace {

// Records where each document starts; ignores everything else.
class DocumentStarts : public YAML::EventHandler {
 public:
  explicit DocumentStarts(std::vector<YAML::Mark>* starts) : starts_(starts) {}
  void OnDocumentStart(const YAML::Mark& mark) override { starts_->push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

 private:
  std::vector<YAML::Mark>* starts_;
};

}  // namespace

bool LoadSingleDocument(const std::string& text, YAML::Node* root, LoadError* error) {
  std::vector<YAML::Mark> starts;
  try {
    std::istringstream stream(text);
    YAML::Parser parser(stream);
    DocumentStarts handler(&starts);
    while (starts.size() < 2 && parser.HandleNextDocument(handler)) {
    }
    *root = YAML::Load(text);
  } catch (const YAML::DeepRecursion& e) {
    *error = {e.mark, absl::StrCat("invalid YAML: nested deeper than ", e.depth(), " levels")};
    return false;
  } catch (const YAML::Exception& e) {
    // yaml-cpp quotes the offending input in some messages ("unknown escape
    // character: <the byte>"): escape it, an issue stays one printable line
    // (fuzz finding F1, tests/fuzz).
    *error = {e.mark, absl::StrCat("invalid YAML: ", absl::CHexEscape(e.msg))};
    return false;
  }
  if (starts.size() > 1) {
    // A second document that starts where the first did is the parser
    // making no progress on a character it cannot place.
    const YAML::Mark& second = starts[1];
    bool stuck = second.pos == starts[0].pos && second.pos >= 0 &&
                 static_cast<size_t>(second.pos) < text.size();
    *error = {second,
              stuck ? absl::StrCat("invalid YAML: unexpected character '",
                                   absl::CHexEscape(text.substr(second.pos, 1)), "'")
                    : "expected one YAML document, found several",
              !stuck};
    return false;
  }
  return true;
}

}  // namespace cnet::yaml
