#include "services/skills/loader.h"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "libs/crypto/crypto.h"
#include "libs/files/file_watcher.h"
#include "libs/yaml/single_document.h"

namespace cnet::skills {
namespace {

namespace fs = std::filesystem;

bool IsIdent(const std::string& s) {
  if (s.empty() || s.size() > 64 || s[0] < 'a' || s[0] > 'z') return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

bool IsCapability(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
          c == '-')) {
      return false;
    }
  }
  return true;
}

std::string Quoted(const std::string& s) { return absl::StrCat("\"", s, "\""); }

std::string DidYouMean(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best = Closest(word, candidates);
  return best.empty() ? "" : absl::StrCat(" (did you mean \"", best, "\"?)");
}

std::string KindOf(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: return "map";
    case YAML::NodeType::Sequence: return "list";
    case YAML::NodeType::Null: return "nothing";
    case YAML::NodeType::Scalar: return "scalar";
    default: return "nothing";
  }
}

bool IsPlainInt(const std::string& s) {
  size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (i >= s.size()) return false;
  for (; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
  }
  return true;
}

bool IsPlainFloat(const std::string& s, double* out) {
  bool digit = false;
  for (char c : s) {
    if (c >= '0' && c <= '9') digit = true;
    if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-')) {
      return false;
    }
  }
  if (!digit) return false;
  char* end = nullptr;
  *out = std::strtod(s.c_str(), &end);
  return end != nullptr && *end == '\0' && std::isfinite(*out);
}

// A YAML scalar as JSON under the YAML 1.2 core schema: quoted scalars are
// strings; plain ones may be null, bool, int or float.
Json ScalarToJson(const YAML::Node& n) {
  if (n.IsNull()) return nullptr;
  const std::string& s = n.Scalar();
  if (n.Tag() != "?") return Json(s);
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (IsPlainInt(s)) {
    errno = 0;
    long long v = std::strtoll(s.c_str(), nullptr, 10);
    if (errno == 0 && std::llabs(v) < (1LL << 53)) return static_cast<int64_t>(v);
  }
  double d = 0;
  if (IsPlainFloat(s, &d)) return d;
  return Json(s);
}

// An issue's reason is one printable line of bounded size, whatever
// value it quotes (fuzz finding F2, services/skills/fuzz): control bytes
// escaped, cut at 512 bytes.
std::string OneLine(std::string reason) {
  std::string out;
  out.reserve(std::min<size_t>(reason.size(), 520));
  for (char c : reason) {
    if (out.size() >= 512) {
      out += "...";
      break;
    }
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      out += absl::StrCat("\\x", absl::Hex(u, absl::kZeroPad2));
    } else {
      out += c;
    }
  }
  return out;
}

// Checks one document and fills a ParsedFile.
class FileParser {
 public:
  FileParser(ParsedFile* out, const ActionCatalog& actions) : out_(out), actions_(actions) {}

  void Run();

 private:
  // A string scalar holding templates or an expression, whose references
  // are checked once every step is known.
  struct Site {
    YAML::Node node;
    std::string doc_path;
    std::string step_path;  // owning step's yaml path; empty for skill outputs
    std::vector<Reference> refs;
    const ActionSpec* output_spec = nullptr;  // wait_for: `output` root allowed
  };

  // --- issues and positions ---
  void AddAt(IssueCode code, SourcePos pos, const std::string& path, std::string reason,
             Severity severity = Severity::kError) {
    Issue issue;
    issue.file = out_->file;
    issue.line = pos.line;
    issue.column = pos.column;
    issue.severity = severity;
    issue.code = code;
    issue.reason = OneLine(std::move(reason));
    issue.path = path;
    out_->issues.push_back(std::move(issue));
  }
  void Add(IssueCode code, const YAML::Node& at, const std::string& path, std::string reason,
           Severity severity = Severity::kError) {
    AddAt(code, Pos(at), path, std::move(reason), severity);
  }
  SourcePos Pos(const YAML::Node& n) const {
    if (!n.IsDefined()) return {};
    YAML::Mark m = n.Mark();
    if (m.line < 0) return {};
    return {m.line + 1, m.column + 1};
  }
  // Position of byte `offset` inside a scalar's value. Exact for one-line
  // plain and quoted scalars without escapes; else the scalar's start.
  SourcePos PosIn(const YAML::Node& n, int offset) const {
    SourcePos pos = Pos(n);
    if (pos.line == 0 || !n.IsScalar()) return pos;
    YAML::Mark m = n.Mark();
    const std::string& v = n.Scalar();
    const std::string& src = out_->source;
    if (v.find('\n') != std::string::npos || m.pos < 0) return pos;
    size_t p = static_cast<size_t>(m.pos);
    if (p < src.size() && (src[p] == '"' || src[p] == '\'')) {
      if (src.compare(p + 1, v.size(), v) == 0) pos.column += 1 + offset;
    } else if (src.compare(p, v.size(), v) == 0) {
      pos.column += offset;
    }
    return pos;
  }
  SourcePos KeyPos(const YAML::const_iterator& it) const { return Pos(it->first); }

  // Iterates a map, reporting duplicate and non-scalar keys; calls fn(key,
  // key node, value node) for the first occurrence of each key.
  void ForEachKey(const YAML::Node& map, const std::string& path,
                  const std::function<void(const std::string&, const YAML::Node&,
                                           const YAML::Node&)>& fn) {
    std::map<std::string, int> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      if (!it->first.IsScalar()) {
        Add(IssueCode::kWrongType, it->first, path, "keys must be plain names");
        continue;
      }
      std::string key = it->first.Scalar();
      auto [pos, inserted] = seen.emplace(key, Pos(it->first).line);
      if (!inserted) {
        Add(IssueCode::kSchema, it->first, Join(path, key),
            absl::StrCat("duplicate key ", Quoted(key), " (first at line ", pos->second, ")"));
        continue;
      }
      fn(key, it->first, it->second);
    }
  }
  static std::string Join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }

  // --- typed getters (report and return false on a wrong type) ---
  bool GetString(const YAML::Node& n, const std::string& path, const std::string& what,
                 std::string* out) {
    if (!n.IsScalar()) {
      Add(IssueCode::kWrongType, n, path,
          absl::StrCat(what, ": expected a string, got ", KindOf(n)));
      return false;
    }
    *out = n.Scalar();
    return true;
  }
  bool GetBool(const YAML::Node& n, const std::string& path, const std::string& what,
               bool* out) {
    Json v = n.IsScalar() ? ScalarToJson(n) : Json();
    if (!v.is_boolean()) {
      Add(IssueCode::kWrongType, n, path,
          absl::StrCat(what, ": expected true or false, got ",
                       n.IsScalar() ? absl::StrCat(TypeOf(v), " ", Describe(v)) : KindOf(n)));
      return false;
    }
    *out = v.get<bool>();
    return true;
  }
  bool GetNumber(const YAML::Node& n, const std::string& path, const std::string& what,
                 bool integer, double* out) {
    Json v = n.IsScalar() ? ScalarToJson(n) : Json();
    if (!(integer ? Conforms(v, ValueType::kInt) : v.is_number())) {
      Add(IssueCode::kWrongType, n, path,
          absl::StrCat(what, ": expected ", integer ? "an integer" : "a number", ", got ",
                       n.IsScalar() ? absl::StrCat(TypeOf(v), " ", Describe(v)) : KindOf(n)));
      return false;
    }
    *out = v.get<double>();
    return true;
  }
  bool GetDuration(const YAML::Node& n, const std::string& path, const std::string& what,
                   absl::Duration* out) {
    Json v = n.IsScalar() ? ScalarToJson(n) : Json();
    absl::Duration d;
    if (!v.is_string() || !absl::ParseDuration(v.get<std::string>(), &d) ||
        d == absl::InfiniteDuration()) {
      Add(IssueCode::kWrongType, n, path,
          absl::StrCat(what, ": expected a duration such as \"500ms\", \"10s\" or \"2m\", got ",
                       n.IsScalar() ? absl::StrCat(TypeOf(v), " ", Describe(v)) : KindOf(n)));
      return false;
    }
    if (d <= absl::ZeroDuration()) {
      Add(IssueCode::kSchema, n, path, absl::StrCat(what, ": must be positive, got ",
                                                    Quoted(v.get<std::string>())));
      return false;
    }
    *out = d;
    return true;
  }
  bool GetStringList(const YAML::Node& n, const std::string& path, const std::string& what,
                     std::vector<std::string>* out) {
    if (!n.IsSequence()) {
      Add(IssueCode::kWrongType, n, path,
          absl::StrCat(what, ": expected a list of strings, got ", KindOf(n)));
      return false;
    }
    bool ok = true;
    for (size_t i = 0; i < n.size(); ++i) {
      std::string s;
      if (GetString(n[i], absl::StrCat(path, "[", i, "]"), absl::StrCat(what, "[", i, "]"),
                    &s)) {
        out->push_back(s);
      } else {
        ok = false;
      }
    }
    return ok;
  }

  // YAML -> JSON, for values (defaults, arguments). Strings with `{{` are
  // checked as templates and recorded as sites when `step_path` is given.
  bool ToJson(const YAML::Node& n, const std::string& path, Json* out,
              const std::string* step_path, const ActionSpec* output_spec = nullptr) {
    switch (n.Type()) {
      case YAML::NodeType::Null:
      case YAML::NodeType::Undefined: *out = nullptr; return true;
      case YAML::NodeType::Scalar: {
        *out = ScalarToJson(n);
        if (out->is_string() && step_path != nullptr &&
            out->get_ref<const std::string&>().find("{{") != std::string::npos) {
          return CheckTemplate(n, path, *step_path, output_spec);
        }
        return true;
      }
      case YAML::NodeType::Sequence: {
        *out = Json::array();
        bool ok = true;
        for (size_t i = 0; i < n.size(); ++i) {
          Json v;
          ok = ToJson(n[i], absl::StrCat(path, "[", i, "]"), &v, step_path, output_spec) && ok;
          out->push_back(std::move(v));
        }
        return ok;
      }
      case YAML::NodeType::Map: {
        *out = Json::object();
        bool ok = true;
        ForEachKey(n, path, [&](const std::string& key, const YAML::Node&, const YAML::Node& v) {
          Json j;
          ok = ToJson(v, Join(path, key), &j, step_path, output_spec) && ok;
          (*out)[key] = std::move(j);
        });
        return ok;
      }
    }
    return true;
  }

  bool CheckTemplate(const YAML::Node& n, const std::string& path, const std::string& step_path,
                     const ActionSpec* output_spec) {
    Template t;
    SyntaxError err;
    if (!Template::Parse(n.Scalar(), &t, &err)) {
      AddAt(IssueCode::kExpressionSyntax, PosIn(n, err.offset), path, err.message);
      return false;
    }
    Site site;
    site.node = n;
    site.doc_path = path;
    site.step_path = step_path;
    site.refs = t.references();
    site.output_spec = output_spec;
    sites_.push_back(std::move(site));
    return true;
  }

  void ParseTop(const YAML::Node& root);
  void ParseInputs(const YAML::Node& n);
  void ParseOutputs(const YAML::Node& n);
  void ParseSteps(const YAML::Node& n, const std::string& path, int depth,
                  std::vector<Step>* out);
  bool ParseStep(const YAML::Node& n, const std::string& path, int depth, Step* step);
  // `args_path` is where the arguments are in the document; `step_path`
  // the step that owns them (for reference checks).
  void ParseActionArgs(const YAML::Node& args, const std::string& args_path,
                       const std::string& step_path, Step* step, const ActionSpec* spec);
  void ParseWaitFor(const YAML::Node& args, const std::string& path, Step* step);
  void ParseRetry(const YAML::Node& n, const std::string& path, RetryPolicy* retry);

  void CheckIds();
  void CheckReferences();
  void CheckReference(const Site& site, const Reference& ref,
                      const std::set<std::string>& visible);
  void CheckUnusedInputs();

  ParsedFile* out_;
  const ActionCatalog& actions_;
  std::vector<Site> sites_;
  int step_count_ = 0;
  bool too_many_steps_reported_ = false;
  std::map<std::string, const Step*> steps_by_id_;
  std::map<std::string, const Step*> steps_by_path_;
  std::map<std::string, std::set<std::string>> visible_at_;  // step path -> visible ids
  std::set<std::string> used_inputs_;
};

void FileParser::Run() {
  if (out_->source.size() > kMaxDocumentBytes) {
    AddAt(IssueCode::kLimitExceeded, {1, 1}, "",
          absl::StrCat("document is ", out_->source.size(), " bytes; the limit is ",
                       kMaxDocumentBytes, " (1 MiB)"));
    return;
  }
  YAML::Node root;
  yaml::LoadError error;
  if (!yaml::LoadSingleDocument(out_->source, &root, &error)) {
    if (error.several_documents) {
      AddAt(IssueCode::kSchema, {error.mark.line + 1, error.mark.column + 1}, "",
            "one skill per file: a second YAML document starts here");
    } else {
      std::string message = error.message;
      constexpr std::string_view kPrefix = "invalid YAML: ";
      if (message.rfind(std::string(kPrefix), 0) == 0) message = message.substr(kPrefix.size());
      AddAt(IssueCode::kYamlSyntax, {error.mark.line + 1, error.mark.column + 1}, "",
            absl::StrCat("YAML syntax: ", message));
    }
    return;
  }
  if (root.IsNull()) {
    AddAt(IssueCode::kSchema, {1, 1}, "", "empty document: a skill needs name, version, "
                                          "description and steps");
    return;
  }
  if (!root.IsMap()) {
    Add(IssueCode::kWrongType, root, "",
        absl::StrCat("a skill is a map of fields (name, version, steps, ...), got ",
                     KindOf(root)));
    return;
  }
  try {
    ParseTop(root);
  } catch (const YAML::Exception& e) {
    AddAt(IssueCode::kYamlSyntax, {e.mark.line + 1, e.mark.column + 1}, "",
          absl::StrCat("YAML: ", e.msg));
  }
}

void FileParser::ParseTop(const YAML::Node& root) {
  static const std::vector<std::string> kKeys = {"name",         "version", "description",
                                                 "category",     "tags",    "capabilities",
                                                 "inputs",       "outputs", "steps"};
  SkillDef& def = out_->def;
  def.category = out_->category;
  YAML::Node steps_node, inputs_node, outputs_node;
  bool has_steps = false;
  bool has_name = false, has_version = false, has_description = false;
  ForEachKey(root, "", [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
    if (key == "name") {
      if (GetString(v, key, "name", &def.name)) {
        def.name_pos = Pos(v);
        has_name = true;
        if (!IsIdent(def.name)) {
          Add(IssueCode::kSchema, v, key,
              absl::StrCat("name ", Quoted(def.name), " must match [a-z][a-z0-9_]{0,63}"));
        }
      }
    } else if (key == "version") {
      if (GetString(v, key, "version", &def.version_text)) {
        def.version_pos = Pos(v);
        if (Semver::Parse(def.version_text, &def.version)) {
          has_version = true;
        } else {
          Add(IssueCode::kVersionConflict, v, key,
              absl::StrCat("version ", Quoted(def.version_text),
                           " is not a semantic version MAJOR.MINOR.PATCH (e.g. 1.0.0)"));
        }
      }
    } else if (key == "description") {
      has_description = GetString(v, key, "description", &def.description);
    } else if (key == "category") {
      std::string category;
      if (GetString(v, key, "category", &category) && !out_->category.empty() &&
          category != out_->category) {
        Add(IssueCode::kSchema, v, key,
            absl::StrCat("category ", Quoted(category), " differs from the file's directory ",
                         Quoted(out_->category), "; the directory wins"),
            Severity::kWarning);
      } else if (out_->category.empty()) {
        def.category = category;
      }
    } else if (key == "tags") {
      GetStringList(v, key, "tags", &def.tags);
    } else if (key == "capabilities") {
      if (GetStringList(v, key, "capabilities", &def.capabilities)) {
        for (size_t i = 0; i < def.capabilities.size(); ++i) {
          if (!IsCapability(def.capabilities[i])) {
            Add(IssueCode::kSchema, v[i], absl::StrCat(key, "[", i, "]"),
                absl::StrCat("capability ", Quoted(def.capabilities[i]),
                             " must match [a-z0-9._-]{1,64}"));
          }
        }
      }
    } else if (key == "inputs") {
      inputs_node = v;
    } else if (key == "outputs") {
      outputs_node = v;
    } else if (key == "steps") {
      steps_node = v;
      has_steps = true;
    } else {
      Add(IssueCode::kSchema, k, key,
          absl::StrCat("unknown key ", Quoted(key), DidYouMean(key, kKeys),
                       "; a skill has: ", absl::StrJoin(kKeys, ", ")));
    }
  });
  SourcePos top{1, 1};
  if (root.begin() != root.end()) top = Pos(root.begin()->first);
  if (!has_name && def.name.empty()) {
    AddAt(IssueCode::kSchema, top, "name", "missing required key \"name\"");
  }
  if (!root["version"].IsDefined()) {
    AddAt(IssueCode::kSchema, top, "version", "missing required key \"version\"");
  }
  if (!has_description && !root["description"].IsDefined()) {
    AddAt(IssueCode::kSchema, top, "description", "missing required key \"description\"");
  }
  out_->has_definition = has_name && has_version;

  if (!inputs_node.IsNull()) ParseInputs(inputs_node);
  if (has_steps) {
    ParseSteps(steps_node, "steps", 0, &def.steps);
  } else {
    AddAt(IssueCode::kSchema, top, "steps", "missing required key \"steps\"");
  }
  if (!outputs_node.IsNull()) ParseOutputs(outputs_node);
  CheckIds();
  CheckReferences();
  CheckUnusedInputs();
}

void FileParser::ParseInputs(const YAML::Node& n) {
  if (!n.IsMap()) {
    if (n.IsNull()) return;
    Add(IssueCode::kWrongType, n, "inputs",
        absl::StrCat("inputs: expected a map of input names to definitions, got ", KindOf(n)));
    return;
  }
  static const std::vector<std::string> kKeys = {"type", "required", "default", "description",
                                                 "allowed"};
  static const std::vector<std::string> kTypes = {"string", "int",  "float",
                                                  "bool",   "list", "map"};
  ForEachKey(n, "inputs", [&](const std::string& name, const YAML::Node& k, const YAML::Node& v) {
    std::string path = "inputs." + name;
    InputDef in;
    in.name = name;
    in.pos = Pos(k);
    if (!IsIdent(name)) {
      Add(IssueCode::kSchema, k, path,
          absl::StrCat("input name ", Quoted(name), " must match [a-z][a-z0-9_]{0,63}"));
      return;
    }
    YAML::Node type_node;
    if (v.IsScalar()) {
      type_node = v;  // shorthand `to: string` = a required input of that type
      in.required = true;
    } else if (v.IsMap()) {
      bool required_given = false;
      ForEachKey(v, path, [&](const std::string& key, const YAML::Node& kk, const YAML::Node& vv) {
        if (key == "type") {
          type_node = vv;
        } else if (key == "required") {
          required_given = GetBool(vv, path + ".required", "required", &in.required);
        } else if (key == "description") {
          GetString(vv, path + ".description", "description", &in.description);
        } else if (key != "default" && key != "allowed") {
          Add(IssueCode::kSchema, kk, Join(path, key),
              absl::StrCat("unknown key ", Quoted(key), " in input ", Quoted(name),
                           DidYouMean(key, kKeys), "; an input has: ",
                           absl::StrJoin(kKeys, ", ")));
        }
      });
      (void)required_given;
    } else {
      Add(IssueCode::kWrongType, v, path,
          absl::StrCat("input ", Quoted(name), ": expected a type name or a map with type, "
                       "required, default, description, got ", KindOf(v)));
      return;
    }
    if (!type_node.IsDefined()) {
      Add(IssueCode::kSchema, k, path, absl::StrCat("input ", Quoted(name),
                                                    ": missing required key \"type\""));
      return;
    }
    std::string type_name;
    if (!GetString(type_node, path + ".type", "type", &type_name)) return;
    if (!ParseTypeName(type_name, &in.type)) {
      Add(IssueCode::kSchema, type_node, path + ".type",
          absl::StrCat("unknown type ", Quoted(type_name), DidYouMean(type_name, kTypes),
                       "; types: ", absl::StrJoin(kTypes, ", ")));
      return;
    }
    if (v.IsMap()) {
      YAML::Node def_node = v["default"];
      if (def_node.IsDefined()) {
        Json value;
        ToJson(def_node, path + ".default", &value, nullptr);
        if (in.required) {
          Add(IssueCode::kSchema, def_node, path + ".default",
              absl::StrCat("input ", Quoted(name),
                           " is required and has a default; drop one of them"));
        } else if (!Conforms(value, in.type)) {
          Add(IssueCode::kWrongType, def_node, path + ".default",
              absl::StrCat("default of input ", Quoted(name), ": expected ",
                           TypeName(in.type), ", got ", TypeOf(value), " ", Describe(value)));
        } else {
          in.has_default = true;
          in.default_value = CoerceTo(value, in.type);
        }
      }
      YAML::Node allowed = v["allowed"];
      if (allowed.IsDefined()) {
        if (!allowed.IsSequence()) {
          Add(IssueCode::kWrongType, allowed, path + ".allowed",
              absl::StrCat("allowed: expected a list of ", TypeName(in.type), " values, got ",
                           KindOf(allowed)));
        } else {
          for (size_t i = 0; i < allowed.size(); ++i) {
            Json a;
            ToJson(allowed[i], absl::StrCat(path, ".allowed[", i, "]"), &a, nullptr);
            if (!Conforms(a, in.type)) {
              Add(IssueCode::kWrongType, allowed[i], absl::StrCat(path, ".allowed[", i, "]"),
                  absl::StrCat("allowed value ", Describe(a), " is not of type ",
                               TypeName(in.type)));
            } else {
              in.allowed.push_back(CoerceTo(a, in.type));
            }
          }
          if (in.has_default && !in.allowed.empty() &&
              std::find(in.allowed.begin(), in.allowed.end(), in.default_value) ==
                  in.allowed.end()) {
            Add(IssueCode::kSchema, v["default"], path + ".default",
                absl::StrCat("default ", Describe(in.default_value), " of input ", Quoted(name),
                             " is not among its allowed values"));
          }
        }
      }
    }
    out_->def.inputs.push_back(std::move(in));
  });
  if (out_->def.inputs.size() > 64) {
    Add(IssueCode::kLimitExceeded, n, "inputs", "more than 64 inputs");
  }
}

void FileParser::ParseOutputs(const YAML::Node& n) {
  if (!n.IsMap()) {
    if (n.IsNull()) return;
    Add(IssueCode::kWrongType, n, "outputs",
        absl::StrCat("outputs: expected a map of output names to templates, got ", KindOf(n)));
    return;
  }
  static const std::vector<std::string> kKeys = {"value", "type", "description"};
  ForEachKey(n, "outputs", [&](const std::string& name, const YAML::Node& k, const YAML::Node& v) {
    std::string path = "outputs." + name;
    OutputDef o;
    o.name = name;
    o.pos = Pos(k);
    if (!IsIdent(name)) {
      Add(IssueCode::kSchema, k, path,
          absl::StrCat("output name ", Quoted(name), " must match [a-z][a-z0-9_]{0,63}"));
      return;
    }
    YAML::Node value_node;
    if (v.IsScalar()) {
      value_node = v;
    } else if (v.IsMap()) {
      ForEachKey(v, path, [&](const std::string& key, const YAML::Node& kk, const YAML::Node& vv) {
        if (key == "value") {
          value_node = vv;
        } else if (key == "type") {
          std::string t;
          if (GetString(vv, path + ".type", "type", &t) && !ParseTypeName(t, &o.type)) {
            Add(IssueCode::kSchema, vv, path + ".type",
                absl::StrCat("unknown type ", Quoted(t),
                             "; types: string, int, float, bool, list, map"));
          }
        } else if (key == "description") {
          GetString(vv, path + ".description", "description", &o.description);
        } else {
          Add(IssueCode::kSchema, kk, Join(path, key),
              absl::StrCat("unknown key ", Quoted(key), " in output ", Quoted(name),
                           DidYouMean(key, kKeys), "; an output has: value, type, description"));
        }
      });
    } else {
      Add(IssueCode::kWrongType, v, path,
          absl::StrCat("output ", Quoted(name),
                       ": expected a template string or a map with value, got ", KindOf(v)));
      return;
    }
    if (!value_node.IsDefined()) {
      Add(IssueCode::kSchema, k, path,
          absl::StrCat("output ", Quoted(name), ": missing required key \"value\""));
      return;
    }
    if (!GetString(value_node, path + ".value", "value", &o.value_text)) return;
    SyntaxError err;
    if (!Template::Parse(o.value_text, &o.value, &err)) {
      AddAt(IssueCode::kExpressionSyntax, PosIn(value_node, err.offset), path, err.message);
      return;
    }
    Site site;
    site.node = value_node;
    site.doc_path = path;
    site.refs = o.value.references();
    sites_.push_back(std::move(site));
    out_->def.outputs.push_back(std::move(o));
  });
}

void FileParser::ParseSteps(const YAML::Node& n, const std::string& path, int depth,
                            std::vector<Step>* out) {
  if (!n.IsSequence()) {
    Add(IssueCode::kWrongType, n, path,
        absl::StrCat(path, ": expected a list of steps, got ", KindOf(n)));
    return;
  }
  if (n.size() == 0) {
    Add(IssueCode::kSchema, n, path, absl::StrCat(path, ": at least one step is needed"));
    return;
  }
  for (size_t i = 0; i < n.size(); ++i) {
    Step step;
    if (ParseStep(n[i], absl::StrCat(path, "[", i, "]"), depth, &step)) {
      out->push_back(std::move(step));
    }
  }
}

bool FileParser::ParseStep(const YAML::Node& n, const std::string& path, int depth,
                           Step* step) {
  static const std::vector<std::string> kKeys = {
      "id",       "description", "action",  "args",    "skill",    "version", "inputs",
      "parallel", "sequence",    "when",    "timeout", "retry",    "on_error"};
  step->yaml_path = path;
  step->pos = Pos(n);
  if (!n.IsMap()) {
    Add(IssueCode::kWrongType, n, path,
        absl::StrCat(path, ": expected a step (a map with id and one of action, skill, "
                           "parallel, sequence), got ",
                     KindOf(n)));
    return false;
  }
  if (++step_count_ > kMaxStepsPerSkill && !too_many_steps_reported_) {
    too_many_steps_reported_ = true;
    Add(IssueCode::kLimitExceeded, n, path,
        absl::StrCat("more than ", kMaxStepsPerSkill, " steps in one skill"));
  }
  std::map<std::string, YAML::Node> fields;
  ForEachKey(n, path, [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
    if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end()) {
      Add(IssueCode::kSchema, k, Join(path, key),
          absl::StrCat("unknown key ", Quoted(key), " in step", DidYouMean(key, kKeys)));
      return;
    }
    fields[key] = v;
    fields["@" + key] = k;
  });
  auto has = [&](const std::string& key) { return fields.count(key) > 0; };

  bool ok = true;
  if (!has("id")) {
    Add(IssueCode::kSchema, n, path, "step: missing required key \"id\"");
    ok = false;
  } else if (GetString(fields["id"], path + ".id", "id", &step->id)) {
    if (!IsIdent(step->id)) {
      Add(IssueCode::kSchema, fields["id"], path + ".id",
          absl::StrCat("step id ", Quoted(step->id), " must match [a-z][a-z0-9_]{0,63}"));
      ok = false;
    }
  } else {
    ok = false;
  }
  std::string label = step->id.empty() ? path : absl::StrCat("step ", Quoted(step->id));

  std::vector<std::string> bodies;
  for (const char* b : {"action", "skill", "parallel", "sequence"}) {
    if (has(b)) bodies.push_back(b);
  }
  if (bodies.empty()) {
    Add(IssueCode::kSchema, n, path,
        absl::StrCat(label, ": needs one of action, skill, parallel, sequence"));
    return false;
  }
  if (bodies.size() > 1) {
    Add(IssueCode::kSchema, fields[bodies[1]], Join(path, bodies[1]),
        absl::StrCat(label, ": has both ", Quoted(bodies[0]), " and ", Quoted(bodies[1]),
                     "; a step does exactly one thing"));
    return false;
  }
  const std::string body = bodies[0];
  if (has("args") && body != "action") {
    Add(IssueCode::kSchema, fields["@args"], path + ".args",
        absl::StrCat(label, ": \"args\" belongs to an action step (use \"inputs\" for a skill)"));
    ok = false;
  }
  for (const char* k : {"inputs", "version"}) {
    if (has(k) && body != "skill") {
      Add(IssueCode::kSchema, fields[std::string("@") + k], Join(path, k),
          absl::StrCat(label, ": ", Quoted(k), " belongs to a skill step"));
      ok = false;
    }
  }

  if (has("description")) {
    GetString(fields["description"], path + ".description", "description",
              &step->description);
  }
  if (has("when")) {
    const YAML::Node& w = fields["when"];
    if (GetString(w, path + ".when", "when", &step->when_text)) {
      SyntaxError err;
      if (!ParseCondition(step->when_text, &step->when, &err)) {
        AddAt(IssueCode::kExpressionSyntax, PosIn(w, err.offset), path + ".when", err.message);
        ok = false;
      } else {
        Site site;
        site.node = w;
        site.doc_path = path + ".when";
        site.step_path = path;
        site.refs = step->when.references();
        sites_.push_back(std::move(site));
      }
    } else {
      ok = false;
    }
  }
  if (has("timeout")) {
    absl::Duration d;
    if (GetDuration(fields["timeout"], path + ".timeout", "timeout", &d)) {
      step->timeout = d;
    } else {
      ok = false;
    }
  }
  if (has("retry")) ParseRetry(fields["retry"], path + ".retry", &step->retry);
  if (has("on_error")) {
    std::string v;
    if (GetString(fields["on_error"], path + ".on_error", "on_error", &v)) {
      if (v == "fail") {
        step->on_error = OnError::kFail;
      } else if (v == "continue") {
        step->on_error = OnError::kContinue;
      } else {
        Add(IssueCode::kSchema, fields["on_error"], path + ".on_error",
            absl::StrCat("on_error must be \"fail\" or \"continue\", got ", Quoted(v)));
        ok = false;
      }
    }
  }

  if (body == "action") {
    step->kind = StepKind::kAction;
    const YAML::Node& a = fields["action"];
    if (!GetString(a, path + ".action", "action", &step->action)) return false;
    const ActionSpec* spec = actions_.Find(step->action);
    if (spec == nullptr) {
      // Kept in the tree so that references to it do not cascade.
      Add(IssueCode::kUnknownAction, a, path + ".action",
          absl::StrCat("unknown action ", Quoted(step->action),
                       DidYouMean(step->action, actions_.Names())));
      return true;
    }
    // An absent `args:` is an empty map (Null node).
    YAML::Node args = has("args") ? fields["args"] : YAML::Node();
    if (step->action == "wait_for") {
      ParseWaitFor(args, path, step);
    } else {
      ParseActionArgs(args, path + ".args", path, step, spec);
    }
  } else if (body == "skill") {
    step->kind = StepKind::kSkill;
    const YAML::Node& s = fields["skill"];
    if (!GetString(s, path + ".skill", "skill", &step->skill)) return false;
    step->skill_pos = Pos(s);
    if (!IsIdent(step->skill)) {
      Add(IssueCode::kSchema, s, path + ".skill",
          absl::StrCat("skill name ", Quoted(step->skill), " must match [a-z][a-z0-9_]{0,63}"));
      return false;
    }
    if (has("version")) {
      const YAML::Node& v = fields["version"];
      if (GetString(v, path + ".version", "version", &step->version_text)) {
        step->version_pos = Pos(v);
        auto range = VersionRange::Parse(step->version_text);
        if (!range.ok()) {
          Add(IssueCode::kVersionConflict, v, path + ".version", std::string(range.status().message()));
          ok = false;
        } else if (range->Unsatisfiable()) {
          Add(IssueCode::kVersionConflict, v, path + ".version",
              absl::StrCat("version range ", Quoted(step->version_text),
                           " cannot be satisfied by any version"));
          ok = false;
        } else {
          step->version_range = *range;
        }
      }
    }
    Json inputs = Json::object();
    if (has("inputs")) {
      const YAML::Node& in = fields["inputs"];
      if (!in.IsMap()) {
        Add(IssueCode::kWrongType, in, path + ".inputs",
            absl::StrCat(label, ": inputs: expected a map of input names to values, got ",
                         KindOf(in)));
        ok = false;
      } else {
        for (auto it = in.begin(); it != in.end(); ++it) {
          if (it->first.IsScalar()) step->input_pos[it->first.Scalar()] = Pos(it->first);
        }
        ok = ToJson(in, path + ".inputs", &inputs, &path) && ok;
      }
    }
    SyntaxError err;
    std::string err_path;
    CompiledValue::Compile(inputs, &step->skill_inputs, &err, &err_path);
  } else {
    step->kind = body == "parallel" ? StepKind::kParallel : StepKind::kSequence;
    if (depth + 1 > kMaxGroupDepth) {
      Add(IssueCode::kLimitExceeded, fields["@" + body], Join(path, body),
          absl::StrCat(label, ": groups nest deeper than ", kMaxGroupDepth, " levels"));
      return false;
    }
    ParseSteps(fields[body], Join(path, body), depth + 1, &step->children);
  }
  (void)ok;
  return true;
}

void FileParser::ParseRetry(const YAML::Node& n, const std::string& path, RetryPolicy* retry) {
  static const std::vector<std::string> kKeys = {"attempts", "backoff", "multiplier",
                                                 "max_backoff"};
  if (!n.IsMap()) {
    Add(IssueCode::kWrongType, n, path,
        absl::StrCat("retry: expected a map with attempts, backoff, multiplier, max_backoff, "
                     "got ",
                     KindOf(n)));
    return;
  }
  ForEachKey(n, path, [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
    std::string p = Join(path, key);
    double d = 0;
    if (key == "attempts") {
      if (GetNumber(v, p, "retry.attempts", true, &d)) {
        if (d < 1 || d > 10) {
          Add(IssueCode::kSchema, v, p,
              absl::StrCat("retry.attempts must be 1..10, got ", static_cast<int64_t>(d)));
        } else {
          retry->max_attempts = static_cast<int>(d);
        }
      }
    } else if (key == "backoff") {
      GetDuration(v, p, "retry.backoff", &retry->initial_backoff);
    } else if (key == "max_backoff") {
      GetDuration(v, p, "retry.max_backoff", &retry->max_backoff);
    } else if (key == "multiplier") {
      if (GetNumber(v, p, "retry.multiplier", false, &d)) {
        if (d < 1 || d > 10) {
          Add(IssueCode::kSchema, v, p, absl::StrCat("retry.multiplier must be 1..10, got ", d));
        } else {
          retry->multiplier = d;
        }
      }
    } else {
      Add(IssueCode::kSchema, k, p,
          absl::StrCat("unknown key ", Quoted(key), " in retry", DidYouMean(key, kKeys),
                       "; retry has: attempts, backoff, multiplier, max_backoff"));
    }
  });
}

void FileParser::ParseActionArgs(const YAML::Node& args, const std::string& args_path,
                                 const std::string& step_path, Step* step,
                                 const ActionSpec* spec) {
  Json json = Json::object();
  std::set<std::string> given;
  if (!args.IsNull()) {
    if (!args.IsMap()) {
      Add(IssueCode::kWrongType, args, args_path,
          absl::StrCat("args: expected a map of argument names to values, got ", KindOf(args)));
      return;
    }
    std::vector<std::string> names;
    for (const ArgSpec& a : spec->args) names.push_back(a.name);
    ForEachKey(args, args_path,
               [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
                 std::string p = Join(args_path, key);
                 const ArgSpec* arg = spec->FindArg(key);
                 if (arg == nullptr) {
                   Add(IssueCode::kSchema, k, p,
                       absl::StrCat("action ", Quoted(spec->name), " has no argument ",
                                    Quoted(key), DidYouMean(key, names),
                                    names.empty() ? "; it takes none"
                                                  : "; arguments: " + absl::StrJoin(names, ", ")));
                   return;
                 }
                 given.insert(key);
                 Json value;
                 if (!ToJson(v, p, &value, &step_path)) return;
                 json[key] = value;
                 bool templated = value.is_string() &&
                                  value.get_ref<const std::string&>().find("{{") !=
                                      std::string::npos;
                 if (templated || value.is_null()) return;
                 if (arg->duration) {
                   absl::Duration d;
                   if (!value.is_string() || !absl::ParseDuration(value.get<std::string>(), &d)) {
                     Add(IssueCode::kWrongType, v, p,
                         absl::StrCat("argument ", Quoted(key), " of ", spec->name,
                                      ": expected a duration such as \"10s\", got ",
                                      TypeOf(value), " ", Describe(value)));
                   }
                 } else if (!Conforms(value, arg->type)) {
                   Add(IssueCode::kWrongType, v, p,
                       absl::StrCat("argument ", Quoted(key), " of ", spec->name, ": expected ",
                                    TypeName(arg->type), ", got ", TypeOf(value), " ",
                                    Describe(value)));
                 }
               });
  }
  for (const ArgSpec& a : spec->args) {
    if (a.required && given.count(a.name) == 0) {
      SourcePos at = args.IsNull() ? step->pos : Pos(args);
      AddAt(IssueCode::kSchema, at, args_path,
            absl::StrCat("action ", Quoted(spec->name), " needs argument ", Quoted(a.name)));
    }
  }
  SyntaxError err;
  std::string err_path;
  CompiledValue::Compile(json, &step->args, &err, &err_path);
}

void FileParser::ParseWaitFor(const YAML::Node& args, const std::string& path, Step* step) {
  std::string args_path = path + ".args";
  if (!args.IsMap()) {
    if (!args.IsNull()) {
      Add(IssueCode::kWrongType, args, args_path,
          absl::StrCat("args: expected a map with action, args, until, interval, got ",
                       KindOf(args)));
    } else {
      AddAt(IssueCode::kSchema, step->pos, args_path,
            "action \"wait_for\" needs argument \"action\"");
    }
    return;
  }
  static const std::vector<std::string> kKeys = {"action", "args", "until", "interval"};
  Json json = Json::object();
  const ActionSpec* inner = nullptr;
  YAML::Node inner_args, until;
  ForEachKey(args, args_path, [&](const std::string& key, const YAML::Node& k, const YAML::Node& v) {
    std::string p = Join(args_path, key);
    if (key == "action") {
      std::string name;
      if (!GetString(v, p, "wait_for action", &name)) return;
      inner = actions_.Find(name);
      if (inner == nullptr || name == "wait_for") {
        Add(IssueCode::kUnknownAction, v, p,
            name == "wait_for" ? std::string("wait_for cannot poll wait_for")
                               : absl::StrCat("unknown action ", Quoted(name),
                                              DidYouMean(name, actions_.Names())));
        inner = nullptr;
        return;
      }
      json["action"] = name;
    } else if (key == "args") {
      inner_args = v;
    } else if (key == "until") {
      until = v;
    } else if (key == "interval") {
      absl::Duration d;
      if (v.IsScalar() && v.Scalar().find("{{") != std::string::npos) {
        if (CheckTemplate(v, p, path, nullptr)) json["interval"] = v.Scalar();
      } else if (GetDuration(v, p, "interval", &d)) {
        json["interval"] = v.Scalar();
      }
    } else {
      Add(IssueCode::kSchema, k, p,
          absl::StrCat("action \"wait_for\" has no argument ", Quoted(key),
                       DidYouMean(key, kKeys), "; arguments: action, args, until, interval"));
    }
  });
  if (!args["action"].IsDefined()) {
    Add(IssueCode::kSchema, args, args_path, "action \"wait_for\" needs argument \"action\"");
  }
  if (!until.IsDefined()) {
    Add(IssueCode::kSchema, args, args_path, "action \"wait_for\" needs argument \"until\"");
  }
  if (inner == nullptr) return;
  // The polled action's arguments are checked like a step's.
  Step probe;
  probe.pos = step->pos;
  ParseActionArgs(inner_args, args_path + ".args", path, &probe, inner);
  json["args"] = probe.args.source();
  if (until.IsDefined()) {
    std::string text;
    if (GetString(until, args_path + ".until", "until", &text)) {
      Expression e;
      SyntaxError err;
      if (!ParseCondition(text, &e, &err)) {
        AddAt(IssueCode::kExpressionSyntax, PosIn(until, err.offset), args_path + ".until",
              err.message);
      } else {
        Site site;
        site.node = until;
        site.doc_path = args_path + ".until";
        site.step_path = path;
        site.refs = e.references();
        site.output_spec = inner;
        sites_.push_back(std::move(site));
        json["until"] = text;
      }
    }
  }
  // Keep the polled arguments' templates compiled with the rest; `until` is
  // parsed again by the action.
  Json compiled_src = json;
  SyntaxError err;
  std::string err_path;
  CompiledValue::Compile(compiled_src, &step->args, &err, &err_path);
}

void FileParser::CheckIds() {
  std::map<std::string, SourcePos> first;
  std::function<void(const std::vector<Step>&)> walk = [&](const std::vector<Step>& steps) {
    for (const Step& s : steps) {
      steps_by_path_[s.yaml_path] = &s;
      if (!s.id.empty()) {
        auto [it, inserted] = first.emplace(s.id, s.pos);
        if (!inserted) {
          AddAt(IssueCode::kDuplicateName, s.pos, s.yaml_path + ".id",
                absl::StrCat("duplicate step id ", Quoted(s.id), " (first at line ",
                             it->second.line, ")"));
        } else {
          steps_by_id_[s.id] = &s;
        }
      }
      walk(s.children);
    }
  };
  walk(out_->def.steps);
}

void FileParser::CheckReferences() {
  // What each step may reference: steps finished before it starts.
  std::function<void(const std::vector<Step>&, bool, std::set<std::string>)> walk =
      [&](const std::vector<Step>& steps, bool parallel, std::set<std::string> visible) {
        for (const Step& s : steps) {
          visible_at_[s.yaml_path] = visible;
          walk(s.children, s.kind == StepKind::kParallel, visible);
          if (!parallel) {
            std::function<void(const Step&)> add = [&](const Step& t) {
              if (!t.id.empty()) visible.insert(t.id);
              for (const Step& c : t.children) add(c);
            };
            add(s);
          }
        }
      };
  walk(out_->def.steps, false, {});
  std::set<std::string> all;
  for (const auto& [id, s] : steps_by_id_) all.insert(id);
  for (const Site& site : sites_) {
    const std::set<std::string>& visible =
        site.step_path.empty() ? all : visible_at_[site.step_path];
    for (const Reference& ref : site.refs) CheckReference(site, ref, visible);
  }
}

void FileParser::CheckReference(const Site& site, const Reference& ref,
                                const std::set<std::string>& visible) {
  SourcePos pos = PosIn(site.node, ref.offset);
  auto fail = [&](const std::string& reason) {
    AddAt(IssueCode::kUnknownReference, pos, site.doc_path, reason);
  };
  const std::string shown = Quoted(ref.text);
  if (ref.root == "inputs") {
    if (ref.path.empty()) return;
    if (ref.path[0].is_index) return fail(absl::StrCat(shown, ": inputs are read by name"));
    const std::string& name = ref.path[0].key;
    if (out_->def.FindInput(name) == nullptr) {
      std::vector<std::string> names;
      for (const InputDef& i : out_->def.inputs) names.push_back(i.name);
      return fail(absl::StrCat("unknown input ", Quoted(name), " in ", shown,
                               DidYouMean(name, names)));
    }
    used_inputs_.insert(name);
    return;
  }
  if (ref.root == "steps") {
    if (ref.path.empty() || ref.path[0].is_index) {
      return fail(absl::StrCat(shown, ": expected steps.<id>.output or steps.<id>.state"));
    }
    const std::string& id = ref.path[0].key;
    auto it = steps_by_id_.find(id);
    if (it == steps_by_id_.end()) {
      std::vector<std::string> ids;
      for (const auto& [i, s] : steps_by_id_) ids.push_back(i);
      return fail(absl::StrCat("unknown step ", Quoted(id), " in ", shown, DidYouMean(id, ids)));
    }
    if (visible.count(id) == 0) {
      return fail(absl::StrCat("step ", Quoted(id), " has not finished when ", shown,
                               " is read (it runs later, in the same parallel group, or is "
                               "this step)"));
    }
    if (ref.path.size() < 2 || ref.path[1].is_index ||
        (ref.path[1].key != "output" && ref.path[1].key != "state")) {
      return fail(absl::StrCat(shown, ": a step has \"output\" and \"state\" (write steps.", id,
                               ".output...)"));
    }
    if (ref.path[1].key == "state") {
      if (ref.path.size() > 2) return fail(absl::StrCat(shown, ": state is a string"));
      return;
    }
    const Step* target = it->second;
    if (target->kind == StepKind::kParallel || target->kind == StepKind::kSequence) {
      return fail(absl::StrCat("step ", Quoted(id),
                               " is a group and has no output; reference its steps by id"));
    }
    if (ref.path.size() < 3 || ref.path[2].is_index) return;
    const std::string& field = ref.path[2].key;
    if (target->kind == StepKind::kAction) {
      const ActionSpec* spec = actions_.Find(target->action);
      if (target->action == "wait_for") {
        const Json& src = target->args.source();
        spec = src.contains("action") ? actions_.Find(src["action"].get<std::string>()) : nullptr;
      }
      if (spec != nullptr && !spec->HasOutput(field)) {
        return fail(absl::StrCat("action ", Quoted(spec->name), " (step ", Quoted(id),
                                 ") has no output ", Quoted(field), DidYouMean(field, spec->outputs),
                                 "; outputs: ", absl::StrJoin(spec->outputs, ", ")));
      }
      return;
    }
    ParsedFile::OutputRef deferred;
    deferred.target = target;
    deferred.field = field;
    deferred.pos = pos;
    deferred.path = site.doc_path;
    deferred.text = ref.text;
    out_->skill_output_refs.push_back(std::move(deferred));
    return;
  }
  if (ref.root == "run") {
    static const std::vector<std::string> kFields = {"id", "agent", "skill", "version"};
    if (ref.path.size() != 1 || ref.path[0].is_index ||
        std::find(kFields.begin(), kFields.end(), ref.path[0].key) == kFields.end()) {
      std::string field = ref.path.empty() ? "" : ref.path[0].key;
      return fail(absl::StrCat(shown, ": run has id, agent, skill, version",
                               DidYouMean(field, kFields)));
    }
    return;
  }
  if (ref.root == "output") {
    if (site.output_spec == nullptr) {
      return fail(absl::StrCat(shown, ": \"output\" is only defined in wait_for's until "
                                      "(use steps.<id>.output)"));
    }
    if (!ref.path.empty() && !ref.path[0].is_index &&
        !site.output_spec->HasOutput(ref.path[0].key)) {
      return fail(absl::StrCat("action ", Quoted(site.output_spec->name), " has no output ",
                               Quoted(ref.path[0].key),
                               DidYouMean(ref.path[0].key, site.output_spec->outputs),
                               "; outputs: ", absl::StrJoin(site.output_spec->outputs, ", ")));
    }
    return;
  }
  std::vector<std::string> roots = {"inputs", "steps", "run"};
  if (site.output_spec != nullptr) roots.push_back("output");
  fail(absl::StrCat("unknown name ", Quoted(ref.root), " in ", shown, DidYouMean(ref.root, roots),
                    "; expressions read ", absl::StrJoin(roots, ", ")));
}

void FileParser::CheckUnusedInputs() {
  for (const InputDef& in : out_->def.inputs) {
    if (used_inputs_.count(in.name) == 0) {
      AddAt(IssueCode::kSchema, in.pos, "inputs." + in.name,
            absl::StrCat("input ", Quoted(in.name), " is never used"), Severity::kWarning);
    }
  }
}

void SortIssues(std::vector<Issue>* issues) {
  std::stable_sort(issues->begin(), issues->end(), [](const Issue& a, const Issue& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
}

// Walks every skill step of a definition (groups included).
void ForEachSkillStep(const std::vector<Step>& steps, const std::function<void(const Step&)>& fn) {
  for (const Step& s : steps) {
    if (s.kind == StepKind::kSkill) fn(s);
    ForEachSkillStep(s.children, fn);
  }
}

absl::Time FileModTime(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return absl::UnixEpoch();
  return absl::TimeFromTimespec(st.st_mtim);
}

}  // namespace

bool ParsedFile::HasErrors() const {
  for (const Issue& i : issues) {
    if (i.severity == Severity::kError) return true;
  }
  return false;
}

int LoadedSkill::error_count() const {
  int n = 0;
  for (const Issue& i : issues) n += i.severity == Severity::kError ? 1 : 0;
  return n;
}

std::shared_ptr<const ParsedFile> ParseSkillFile(const std::string& source,
                                                 const std::string& file,
                                                 const std::string& category,
                                                 const ActionCatalog& actions) {
  auto out = std::make_shared<ParsedFile>();
  out->file = file;
  out->category = category;
  out->source = source;
  out->sha256 = crypto::Sha256Hex(source);
  FileParser(out.get(), actions).Run();
  SortIssues(&out->issues);
  return out;
}

int EditDistance(const std::string& a, const std::string& b) {
  std::vector<int> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = static_cast<int>(j);
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = static_cast<int>(i);
    for (size_t j = 1; j <= b.size(); ++j) {
      int sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string Closest(const std::string& word, const std::vector<std::string>& candidates) {
  if (word.empty()) return "";
  int limit = std::max<int>(2, static_cast<int>(word.size()) / 3);
  std::string best;
  int best_d = limit + 1;
  for (const std::string& c : candidates) {
    int d = EditDistance(word, c);
    if (d < best_d && c != word) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

// --- Library ---------------------------------------------------------------

std::shared_ptr<const LoadedSkill> Library::Find(const std::string& name,
                                                 const VersionRange* range) const {
  auto it = valid_.find(name);
  if (it == valid_.end()) return nullptr;
  for (auto v = it->second.rbegin(); v != it->second.rend(); ++v) {
    if (range == nullptr || range->Matches(v->first)) return v->second;
  }
  return nullptr;
}

std::shared_ptr<const LoadedSkill> Library::FindExact(const std::string& name,
                                                      const Semver& version) const {
  auto it = valid_.find(name);
  if (it == valid_.end()) return nullptr;
  auto v = it->second.find(version);
  return v == it->second.end() ? nullptr : v->second;
}

std::shared_ptr<const LoadedSkill> Library::FindFile(const std::string& file) const {
  for (const auto& f : files_) {
    if (f->file() == file) return f;
  }
  return nullptr;
}

bool Library::Declares(const std::string& name) const { return by_name_.count(name) > 0; }

std::vector<std::shared_ptr<const LoadedSkill>> Library::AllVersions(
    const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? std::vector<std::shared_ptr<const LoadedSkill>>{} : it->second;
}

std::shared_ptr<const LoadedSkill> Library::ResolveStep(const LoadedSkill& owner,
                                                        const Step& step) const {
  auto it = owner.resolved.find(&step);
  if (it == owner.resolved.end()) return nullptr;
  Semver v;
  if (!Semver::Parse(it->second, &v)) return nullptr;
  return FindExact(step.skill, v);
}

int64_t Library::valid_count() const {
  int64_t n = 0;
  for (const auto& f : files_) n += f->valid ? 1 : 0;
  return n;
}

std::shared_ptr<const Library> BuildLibrary(std::string root,
                                            std::vector<std::shared_ptr<const ParsedFile>> files,
                                            absl::Time now) {
  std::sort(files.begin(), files.end(),
            [](const auto& a, const auto& b) { return a->file < b->file; });
  std::vector<std::shared_ptr<LoadedSkill>> skills;
  for (const auto& f : files) {
    auto s = std::make_shared<LoadedSkill>();
    s->parsed = f;
    s->issues = f->issues;
    s->valid = !f->HasErrors() && f->has_definition;
    s->loaded_at = now;
    skills.push_back(s);
  }
  auto error = [](LoadedSkill* s, IssueCode code, SourcePos pos, const std::string& path,
                  std::string reason) {
    Issue issue;
    issue.file = s->file();
    issue.line = pos.line;
    issue.column = pos.column;
    issue.code = code;
    issue.reason = OneLine(std::move(reason));
    issue.path = path;
    s->issues.push_back(std::move(issue));
    s->valid = false;
  };

  // Duplicate name@version: the first file by path keeps it.
  std::map<std::string, LoadedSkill*> first;
  for (auto& s : skills) {
    if (!s->parsed->has_definition) continue;
    std::string key = s->def().Key();
    auto [it, inserted] = first.emplace(key, s.get());
    if (!inserted) {
      const SkillDef& other = it->second->def();
      error(s.get(), IssueCode::kDuplicateName, s->def().name_pos, "name",
            absl::StrCat("duplicate skill \"", key, "\": already defined in ",
                         it->second->file(), ":", other.name_pos.line, ":",
                         other.name_pos.column));
    }
  }

  std::map<std::string, std::vector<LoadedSkill*>> declared;
  for (auto& s : skills) {
    if (s->parsed->has_definition) declared[s->def().name].push_back(s.get());
  }

  // Resolve composition until nothing changes: a skill composing an invalid
  // skill becomes invalid too.
  auto resolve_all = [&]() {
    bool changed = true;
    while (changed) {
      changed = false;
      std::map<std::string, std::map<Semver, LoadedSkill*>> valid;
      for (auto& s : skills) {
        if (s->valid) valid[s->def().name][s->def().version] = s.get();
      }
      for (auto& s : skills) {
        if (!s->valid) continue;
        s->resolved.clear();
        bool ok = true;
        // One version per composed skill: the highest valid one matching
        // every range this skill asks for it.
        std::map<std::string, std::vector<const Step*>> calls;
        ForEachSkillStep(s->def().steps, [&](const Step& st) { calls[st.skill].push_back(&st); });
        for (const auto& [name, steps] : calls) {
          auto vit = valid.find(name);
          // Each call on its own first, to name the precise problem.
          bool each_ok = true;
          for (const Step* st : steps) {
            bool any = false;
            if (vit != valid.end()) {
              for (const auto& [ver, sk] : vit->second) any = any || st->version_range.Matches(ver);
            }
            if (any) continue;
            each_ok = false;
            std::string range = st->version_text.empty() ? "" : " " + Quoted(st->version_text);
            auto d = declared.find(name);
            if (d == declared.end()) {
              error(s.get(), IssueCode::kMissingSkill, st->skill_pos, st->yaml_path + ".skill",
                    absl::StrCat("composed skill ", Quoted(name), " does not exist"));
            } else {
              std::vector<std::string> matching_invalid, available;
              for (LoadedSkill* other : d->second) {
                if (st->version_range.Matches(other->def().version)) {
                  matching_invalid.push_back(absl::StrCat(other->def().Key(), " in ",
                                                          other->file()));
                } else if (other->valid) {
                  available.push_back(other->def().version.ToString());
                }
              }
              if (!matching_invalid.empty()) {
                error(s.get(), IssueCode::kMissingSkill, st->skill_pos, st->yaml_path + ".skill",
                      absl::StrCat("composed skill ", Quoted(name), range, " is invalid (",
                                   absl::StrJoin(matching_invalid, ", "), ")"));
              } else {
                error(s.get(), IssueCode::kMissingSkill, st->skill_pos, st->yaml_path + ".skill",
                      absl::StrCat("no version of ", Quoted(name), " matches", range,
                                   available.empty()
                                       ? ""
                                       : " (available: " + absl::StrJoin(available, ", ") + ")"));
              }
            }
          }
          if (!each_ok) {
            ok = false;
            continue;
          }
          VersionRange all;
          for (const Step* st : steps) all = all.Intersect(st->version_range);
          LoadedSkill* chosen = nullptr;
          for (auto v = vit->second.rbegin(); v != vit->second.rend(); ++v) {
            if (all.Matches(v->first)) {
              chosen = v->second;
              break;
            }
          }
          if (chosen == nullptr) {
            const Step* a = steps[0];
            const Step* b = steps[1];
            for (const Step* st : steps) {
              if (st->version_text != a->version_text) {
                b = st;
                break;
              }
            }
            error(s.get(), IssueCode::kVersionConflict,
                  b->version_pos.line > 0 ? b->version_pos : b->skill_pos,
                  b->yaml_path + ".version",
                  absl::StrCat("steps ", Quoted(a->id), " and ", Quoted(b->id),
                               " need incompatible versions of ", Quoted(name), ": ",
                               Quoted(a->version_text.empty() ? "*" : a->version_text), " and ",
                               Quoted(b->version_text.empty() ? "*" : b->version_text),
                               " (a skill uses one version of each skill it composes)"));
            ok = false;
            continue;
          }
          for (const Step* st : steps) {
            s->resolved[st] = chosen->def().version.ToString();
            // Inputs passed to the composed skill.
            const SkillDef& target = chosen->def();
            const Json& given = st->skill_inputs.source();
            for (auto it = given.begin(); it != given.end(); ++it) {
              const InputDef* in = target.FindInput(it.key());
              auto pos_it = st->input_pos.find(it.key());
              SourcePos pos = pos_it == st->input_pos.end() ? st->skill_pos : pos_it->second;
              if (in == nullptr) {
                std::vector<std::string> names;
                for (const InputDef& i : target.inputs) names.push_back(i.name);
                error(s.get(), IssueCode::kSchema, pos, st->yaml_path + ".inputs." + it.key(),
                      absl::StrCat("skill ", Quoted(target.Key()), " has no input ",
                                   Quoted(it.key()), DidYouMean(it.key(), names)));
                ok = false;
              } else {
                bool templated = it->is_string() && it->get_ref<const std::string&>().find("{{") !=
                                                        std::string::npos;
                if (!templated && !it->is_null() && !Conforms(*it, in->type)) {
                  error(s.get(), IssueCode::kWrongType, pos, st->yaml_path + ".inputs." + it.key(),
                        absl::StrCat("input ", Quoted(it.key()), " of skill ",
                                     Quoted(target.Key()), ": expected ", TypeName(in->type),
                                     ", got ", TypeOf(*it), " ", Describe(*it)));
                  ok = false;
                }
              }
            }
            for (const InputDef& in : target.inputs) {
              if (in.required && !given.contains(in.name)) {
                error(s.get(), IssueCode::kSchema, st->skill_pos, st->yaml_path + ".inputs",
                      absl::StrCat("skill ", Quoted(target.Key()), " needs input ",
                                   Quoted(in.name)));
                ok = false;
              }
            }
          }
        }
        if (ok) {
          for (const auto& ref : s->parsed->skill_output_refs) {
            auto r = s->resolved.find(ref.target);
            if (r == s->resolved.end()) continue;
            Semver v;
            Semver::Parse(r->second, &v);
            LoadedSkill* target = valid[ref.target->skill][v];
            if (target->def().FindOutput(ref.field) == nullptr) {
              std::vector<std::string> names;
              for (const OutputDef& o : target->def().outputs) names.push_back(o.name);
              error(s.get(), IssueCode::kUnknownReference, ref.pos, ref.path,
                    absl::StrCat("skill ", Quoted(target->def().Key()), " (step ",
                                 Quoted(ref.target->id), ") has no output ", Quoted(ref.field),
                                 DidYouMean(ref.field, names),
                                 names.empty() ? "; it declares none"
                                               : "; outputs: " + absl::StrJoin(names, ", ")));
              ok = false;
            }
          }
        }
        if (!ok) {
          s->valid = false;
          changed = true;
        }
      }
    }
  };

  // Cycles among the valid skills (by resolved edges), then resolve again
  // so that skills composing a cycle become invalid too.
  for (;;) {
    resolve_all();
    std::map<std::string, LoadedSkill*> by_key;
    for (auto& s : skills) {
      if (s->valid) by_key[s->def().Key()] = s.get();
    }
    std::map<LoadedSkill*, int> color;  // 0 new, 1 on stack, 2 done
    std::vector<std::pair<LoadedSkill*, const Step*>> stack;
    bool found = false;
    std::function<void(LoadedSkill*)> dfs = [&](LoadedSkill* s) {
      color[s] = 1;
      for (const auto& [step, version] : s->resolved) {
        if (found) return;
        auto it = by_key.find(step->skill + "@" + version);
        if (it == by_key.end()) continue;
        LoadedSkill* t = it->second;
        stack.emplace_back(s, step);
        if (color[t] == 1) {
          // The cycle: from t's entry on the stack to here.
          size_t start = 0;
          while (stack[start].first != t) ++start;
          std::vector<std::string> names;
          for (size_t i = start; i < stack.size(); ++i) names.push_back(stack[i].first->def().Key());
          names.push_back(t->def().Key());
          std::string cycle = absl::StrJoin(names, " -> ");
          for (size_t i = start; i < stack.size(); ++i) {
            error(stack[i].first, IssueCode::kCompositionCycle, stack[i].second->skill_pos,
                  stack[i].second->yaml_path + ".skill",
                  absl::StrCat("composition cycle: ", cycle));
          }
          found = true;
          return;
        }
        if (color[t] == 0) dfs(t);
        if (found) return;
        stack.pop_back();
      }
      color[s] = 2;
    };
    for (auto& s : skills) {
      if (s->valid && color[s.get()] == 0) dfs(s.get());
      if (found) break;
    }
    if (!found) break;
  }

  // Composition depth.
  std::map<std::string, LoadedSkill*> by_key;
  for (auto& s : skills) {
    if (s->valid) by_key[s->def().Key()] = s.get();
  }
  std::map<LoadedSkill*, int> depth;
  std::function<int(LoadedSkill*)> depth_of = [&](LoadedSkill* s) -> int {
    auto it = depth.find(s);
    if (it != depth.end()) return it->second;
    depth[s] = 1;
    int d = 1;
    for (const auto& [step, version] : s->resolved) {
      auto t = by_key.find(step->skill + "@" + version);
      if (t != by_key.end()) d = std::max(d, 1 + depth_of(t->second));
    }
    depth[s] = d;
    return d;
  };
  bool deep = false;
  for (auto& s : skills) {
    if (s->valid && depth_of(s.get()) > kMaxCompositionDepth) {
      error(s.get(), IssueCode::kLimitExceeded, s->def().name_pos, "steps",
            absl::StrCat("skills compose each other ", depth_of(s.get()),
                         " levels deep; the limit is ", kMaxCompositionDepth));
      deep = true;
    }
  }
  if (deep) resolve_all();

  auto lib = std::make_shared<Library>();
  lib->root_ = std::move(root);
  for (auto& s : skills) {
    std::set<std::string> composes;
    for (const auto& [step, version] : s->resolved) composes.insert(step->skill + "@" + version);
    s->composes.assign(composes.begin(), composes.end());
    SortIssues(&s->issues);
    if (!s->valid) s->resolved.clear();
    std::shared_ptr<const LoadedSkill> frozen = s;
    lib->files_.push_back(frozen);
    if (s->parsed->has_definition) lib->by_name_[s->def().name].push_back(frozen);
    if (s->valid) lib->valid_[s->def().name][s->def().version] = frozen;
  }
  return lib;
}

// --- LibraryManager ----------------------------------------------------------

LibraryManager::LibraryManager(std::string root, const ActionCatalog* actions, Clock* clock)
    : root_(std::move(root)), actions_(actions), clock_(clock) {
  current_ = BuildLibrary(root_, {}, clock_->Now());
}

LibraryManager::~LibraryManager() {
  {
    absl::MutexLock lock(&flag_mu_);
    stopping_ = true;
  }
  if (watch_thread_.joinable()) watch_thread_.join();
  watcher_.reset();
}

std::shared_ptr<const Library> LibraryManager::Current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

absl::StatusOr<std::vector<std::shared_ptr<const ParsedFile>>> LibraryManager::ReadTree(
    std::vector<std::string>* dirs) const {
  std::error_code ec;
  if (!fs::is_directory(root_, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("skill library root \"", root_, "\" is not a readable directory"));
  }
  std::vector<std::shared_ptr<const ParsedFile>> files;
  dirs->push_back(root_);
  fs::recursive_directory_iterator it(root_, fs::directory_options::skip_permission_denied, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("skill library root \"", root_, "\": ", ec.message()));
  }
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const fs::path& p = it->path();
    std::string name = p.filename().string();
    if (!name.empty() && name[0] == '.') {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_directory(ec)) {
      dirs->push_back(p.string());
      continue;
    }
    if (!it->is_regular_file(ec)) continue;
    std::string ext = p.extension().string();
    if (ext != ".yaml" && ext != ".yml") continue;
    std::ifstream in(p, std::ios::binary);
    std::stringstream buf;
    buf << in.rdbuf();
    // Lexically: the tree may be made of symlinks (Bazel runfiles).
    std::string rel = p.lexically_relative(root_).string();
    std::string category = fs::path(rel).parent_path().string();
    auto parsed = ParseSkillFile(buf.str(), rel, category, *actions_);
    std::const_pointer_cast<ParsedFile>(parsed)->modified_at = FileModTime(p.string());
    files.push_back(std::move(parsed));
  }
  return files;
}

absl::StatusOr<ReloadReport> LibraryManager::Reload() {
  absl::MutexLock reload(&reload_mu_);
  absl::Time started = clock_->Now();
  std::vector<std::string> dirs;
  auto files = ReadTree(&dirs);
  if (!files.ok()) return files.status();
  auto next = BuildLibrary(root_, std::move(*files), clock_->Now());
  std::shared_ptr<const Library> prev;
  {
    absl::MutexLock lock(&mu_);
    prev = current_;
    current_ = next;
    dirs_ = dirs;
  }
  ReloadReport report;
  std::map<std::string, std::string> before, after;
  for (const auto& f : prev->files()) {
    if (f->valid) before[f->def().Key()] = f->parsed->sha256;
  }
  for (const auto& f : next->files()) {
    if (f->valid) {
      after[f->def().Key()] = f->parsed->sha256;
    } else {
      report.issues.insert(report.issues.end(), f->issues.begin(), f->issues.end());
    }
  }
  for (const auto& [k, sha] : after) {
    auto it = before.find(k);
    if (it == before.end()) {
      report.added.push_back(k);
    } else if (it->second != sha) {
      report.changed.push_back(k);
    }
  }
  for (const auto& [k, sha] : before) {
    if (after.count(k) == 0) report.removed.push_back(k);
  }
  report.loaded = next->valid_count();
  report.invalid = next->invalid_count();
  report.duration = clock_->Now() - started;
  return report;
}

ValidationResult LibraryManager::Validate(const std::string& yaml, const std::string& file_name,
                                          bool check_library) const {
  ValidationResult result;
  std::string category;
  auto parsed = ParseSkillFile(yaml, file_name, category, *actions_);
  result.parsed = parsed;
  if (!check_library) {
    result.issues = parsed->issues;
    // Composition cannot be checked without the library; every other rule is.
    result.valid = !parsed->HasErrors();
    return result;
  }
  auto lib = Current();
  std::vector<std::shared_ptr<const ParsedFile>> files;
  for (const auto& f : lib->files()) {
    if (f->file() != file_name) files.push_back(f->parsed);
  }
  files.push_back(parsed);
  auto trial = BuildLibrary(lib->root(), std::move(files), clock_->Now());
  auto mine = trial->FindFile(file_name);
  result.issues = mine->issues;
  result.valid = mine->valid;
  return result;
}

absl::Status LibraryManager::StartWatching(
    std::function<void(const absl::StatusOr<ReloadReport>&)> on_reload) {
  std::vector<std::string> dirs;
  {
    absl::MutexLock lock(&mu_);
    dirs = dirs_;
  }
  if (dirs.empty()) dirs.push_back(root_);
  on_reload_ = std::move(on_reload);
  absl::Status s = Rewatch(dirs);
  if (!s.ok()) return s;
  watch_thread_ = std::thread([this] { WatchLoop(); });
  return absl::OkStatus();
}

absl::Status LibraryManager::Rewatch(const std::vector<std::string>& dirs) {
  std::vector<std::string> paths;
  for (const std::string& d : dirs) paths.push_back(d + "/");
  watcher_.reset();
  auto w = FileWatcher::Start(paths, [this](const std::string&) {
    absl::MutexLock lock(&flag_mu_);
    dirty_ = true;
  });
  if (!w.ok()) return w.status();
  watcher_ = std::move(*w);
  watched_dirs_ = dirs;
  return absl::OkStatus();
}

void LibraryManager::WatchLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&flag_mu_);
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(flag_mu_) {
        return dirty_ || stopping_;
      };
      flag_mu_.Await(absl::Condition(&wake));
      if (stopping_) return;
      dirty_ = false;
    }
    absl::StatusOr<ReloadReport> report = Reload();
    std::vector<std::string> dirs;
    {
      absl::MutexLock lock(&mu_);
      dirs = dirs_;
    }
    if (report.ok() && dirs != watched_dirs_) {
      // New or removed directories: watch the new set. Changes between the
      // two watchers are covered by reloading once more.
      if (Rewatch(dirs).ok()) {
        absl::MutexLock lock(&flag_mu_);
        dirty_ = true;
      }
    }
    if (on_reload_) on_reload_(report);
  }
}

}  // namespace cnet::skills
