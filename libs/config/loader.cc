#include "libs/config/loader.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "libs/yaml/single_document.h"
#include "yaml-cpp/yaml.h"

extern char** environ;

namespace cnet::config {
namespace {

// Debian's Abseil has its own string_view type (not std::string_view).
absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

constexpr std::string_view kDefaultOrigin = "built-in default";
constexpr std::string_view kDataDirKey = "services.data_dir";
// Config files are small; anything larger is a mistake or an attack.
constexpr size_t kMaxFileBytes = 1 << 20;

[[noreturn]] void Die(std::string_view message) {
  std::fprintf(stderr, "cnet::config: %.*s\n",
               static_cast<int>(message.size()), message.data());
  std::abort();
}

std::string JoinPath(std::string_view dir, std::string_view name) {
  if (dir.empty()) return std::string(name);
  return absl::StrCat(absl::StripSuffix(Sv(dir), "/"), "/", Sv(name));
}

const char* NodeKind(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Scalar:
      return "a single value";
    default:
      return "nothing";
  }
}

const char* TypeWithArticle(ValueType type) {
  switch (type) {
    case ValueType::kString:
      return "a string";
    case ValueType::kInt:
      return "an integer";
    case ValueType::kDouble:
      return "a number";
    case ValueType::kBool:
      return "a bool";
    case ValueType::kDuration:
      return "a duration";
    case ValueType::kStringList:
      return "a list";
  }
  return "a value";
}

bool IsEmptyValue(const Value& value) {
  if (const auto* s = std::get_if<std::string>(&value)) return s->empty();
  if (const auto* list = std::get_if<std::vector<std::string>>(&value)) {
    return list->empty();
  }
  return false;
}

}  // namespace

namespace internal {

// Accumulates the winning value and source of every key while layers are
// applied from lowest to highest precedence, then checks the cross-key rules
// and freezes the result into a Config.
class ConfigBuilder {
 public:
  explicit ConfigBuilder(std::string_view home_dir) {
    const std::vector<KeySpec>& schema = Schema();
    values_.reserve(schema.size());
    sources_.assign(schema.size(),
                    Source{Layer::kDefault, std::string(kDefaultOrigin), 0, 0});
    for (const KeySpec& spec : schema) {
      absl::StatusOr<ParsedValue> parsed =
          ParseText(spec, spec.default_value, home_dir);
      if (!parsed.ok()) {
        Die(absl::StrCat("bad default of ", Sv(spec.key), ": ",
                         parsed.status().message()));
      }
      values_.push_back(*std::move(parsed));
    }
  }

  void Set(const KeySpec& spec, ParsedValue parsed, Source source) {
    size_t index = &spec - Schema().data();
    values_[index] = std::move(parsed);
    sources_[index] = std::move(source);
  }

  const ParsedValue& value(std::string_view key) const {
    return values_[KeyIndex(key)];
  }
  const Source& source(std::string_view key) const {
    return sources_[KeyIndex(key)];
  }

  void CheckRules(std::vector<Issue>* issues) const {
    for (const KeySpec& spec : Schema()) {
      if (spec.required_when.empty()) continue;
      const ParsedValue& condition = value(spec.required_when);
      if (!std::get<bool>(condition.value) ||
          !IsEmptyValue(value(spec.key).value)) {
        continue;
      }
      // Blame the place that turned the feature on: that is what to fix
      // (or where to add the missing value).
      const Source& where = source(spec.required_when);
      issues->push_back(Issue{where.layer, where.origin, where.line,
                              where.column, std::string(spec.key),
                              absl::StrCat("required when ", Sv(spec.required_when),
                                           " is true")});
    }
    for (const Ordering& rule : Orderings()) {
      const ParsedValue& lower = value(rule.lower);
      const ParsedValue& upper = value(rule.upper);
      double low = NumericValue(lower.value);
      double high = NumericValue(upper.value);
      if (rule.strict ? low < high : low <= high) continue;
      // Blame the key given by the higher layer: the more recent decision.
      const Source& lower_source = source(rule.lower);
      const Source& upper_source = source(rule.upper);
      bool blame_lower = lower_source.layer > upper_source.layer;
      const Source& where = blame_lower ? lower_source : upper_source;
      std::string reason =
          blame_lower
              ? absl::StrCat("must be ", rule.strict ? "less than " : "at most ",
                             Sv(rule.upper), " (", upper.canonical, "), got ",
                             lower.canonical)
              : absl::StrCat("must be ",
                             rule.strict ? "greater than " : "at least ",
                             Sv(rule.lower), " (", lower.canonical, "), got ",
                             upper.canonical);
      issues->push_back(Issue{where.layer, where.origin, where.line,
                              where.column,
                              std::string(blame_lower ? rule.lower : rule.upper),
                              std::move(reason)});
    }
  }

  Config Build() const {
    Config config{Config::Raw{}};
    const std::vector<KeySpec>& schema = Schema();
    for (size_t i = 0; i < schema.size(); ++i) {
      const KeySpec& spec = schema[i];
      const ParsedValue& parsed = values_[i];
      std::string rendered = parsed.canonical;
      if (spec.secret) rendered = rendered.empty() ? "" : "***";
      config.entries_.push_back(Config::Entry{
          &spec, std::move(rendered), sources_[i],
          sources_[i].layer != Layer::kDefault});
      config.values_.push_back(parsed.value);
      config.canonical_.push_back(parsed.canonical);
    }
    return config;
  }

 private:
  std::vector<ParsedValue> values_;
  std::vector<Source> sources_;
};

}  // namespace internal

namespace {

using Sink = std::function<void(const KeySpec&, ParsedValue, Source)>;

// One layer being read: where its values go and where its issues go.
struct LayerReader {
  Layer layer;
  std::string origin;
  std::string_view home_dir;
  const Sink& sink;
  std::vector<Issue>* issues;

  void Report(const YAML::Mark& mark, std::string_view key,
              std::string reason) const {
    // Keep every issue one short line, whatever the input: hostile keys or
    // values are cut (the position still locates them).
    constexpr size_t kMaxKey = 200, kMaxReason = 500;
    if (key.size() > kMaxKey) key = key.substr(0, kMaxKey);
    if (reason.size() > kMaxReason) reason = reason.substr(0, kMaxReason) + "...";
    bool has_mark = !mark.is_null() && mark.line >= 0;
    issues->push_back(Issue{layer, origin, has_mark ? mark.line + 1 : 0,
                            has_mark ? mark.column + 1 : 0, std::string(key),
                            std::move(reason)});
  }

  Source SourceAt(const YAML::Mark& mark) const {
    bool has_mark = !mark.is_null() && mark.line >= 0;
    return Source{layer, origin, has_mark ? mark.line + 1 : 0,
                  has_mark ? mark.column + 1 : 0};
  }

  // Rejects the keys a runtime override may not set. Returns the reason, or
  // "" when allowed.
  std::string RuntimeOverrideProblem(const KeySpec& spec) const {
    if (layer == Layer::kRuntimeOverride && spec.key == kDataDirKey) {
      return "cannot be a runtime override: the overrides file lives in it";
    }
    return "";
  }

  void ReadText(std::string_view text) const {
    YAML::Node root;
    yaml::LoadError error;
    if (!yaml::LoadSingleDocument(std::string(text), &root, &error)) {
      Report(error.mark, "", error.message);
      return;
    }
    if (root.IsNull()) return;
    if (!root.IsMap()) {
      Report(root.Mark(), "",
             absl::StrCat("the top level must be a map of sections, got ",
                          NodeKind(root)));
      return;
    }
    std::map<std::string, int> seen;
    ReadMap(root, "", &seen);
  }

  void ReadMap(const YAML::Node& map, const std::string& prefix,
               std::map<std::string, int>* seen) const {
    for (const auto& pair : map) {
      const YAML::Node& key_node = pair.first;
      const YAML::Node& value_node = pair.second;
      if (!key_node.IsScalar()) {
        Report(key_node.Mark(), prefix, "keys must be plain names");
        continue;
      }
      std::string key = prefix.empty()
                            ? key_node.Scalar()
                            : absl::StrCat(prefix, ".", key_node.Scalar());
      int line = key_node.Mark().line + 1;
      auto [first, inserted] = seen->emplace(key, line);
      if (!inserted) {
        Report(key_node.Mark(), key,
               absl::StrCat("duplicate key (first given on line ",
                            first->second, ")"));
        continue;
      }
      if (const KeySpec* spec = FindKey(key)) {
        ReadLeaf(*spec, key_node.Mark(), value_node);
      } else if (IsSection(key)) {
        if (value_node.IsMap()) {
          ReadMap(value_node, key, seen);
        } else if (!value_node.IsNull()) {
          Report(value_node.Mark(), key,
                 absl::StrCat("expected a section (a map of keys), got ",
                              NodeKind(value_node)));
        }
      } else {
        std::string reason = "unknown key";
        std::string suggestion = SuggestKey(key);
        if (!suggestion.empty()) {
          absl::StrAppend(&reason, " (did you mean ", suggestion, "?)");
        }
        Report(key_node.Mark(), key, std::move(reason));
      }
    }
  }

  void ReadLeaf(const KeySpec& spec, const YAML::Mark& key_mark,
                const YAML::Node& node) const {
    if (node.IsNull()) return;  // Left to the lower layers.
    if (std::string problem = RuntimeOverrideProblem(spec); !problem.empty()) {
      Report(key_mark, spec.key, std::move(problem));
      return;
    }
    absl::StatusOr<ParsedValue> parsed;
    if (spec.type == ValueType::kStringList) {
      if (!node.IsSequence()) {
        Report(node.Mark(), spec.key,
               absl::StrCat("expected a list (a YAML sequence such as "
                            "[a, b]), got ",
                            NodeKind(node)));
        return;
      }
      std::vector<std::string> items;
      bool items_ok = true;
      for (const YAML::Node& item : node) {
        if (!item.IsScalar()) {
          Report(item.Mark(), spec.key,
                 absl::StrCat("list items must be single values, got ",
                              NodeKind(item)));
          items_ok = false;
          continue;
        }
        absl::StatusOr<ParsedValue> one =
            ParseItems(spec, {item.Scalar()}, home_dir);
        if (!one.ok()) {
          Report(item.Mark(), spec.key, std::string(one.status().message()));
          items_ok = false;
          continue;
        }
        items.push_back(item.Scalar());
      }
      if (!items_ok) return;
      parsed = ParseItems(spec, items, home_dir);
    } else {
      if (!node.IsScalar()) {
        Report(node.Mark(), spec.key,
               absl::StrCat("expected ", TypeWithArticle(spec.type), ", got ",
                            NodeKind(node)));
        return;
      }
      parsed = ParseText(spec, node.Scalar(), home_dir);
    }
    if (!parsed.ok()) {
      Report(node.Mark(), spec.key, std::string(parsed.status().message()));
      return;
    }
    sink(spec, *std::move(parsed), SourceAt(key_mark));
  }

  // Reads the layer's file. A missing file is an absent layer.
  void ReadFile(const std::string& path) const {
    struct stat info;
    if (stat(path.c_str(), &info) != 0) {
      if (errno != ENOENT && errno != ENOTDIR) {
        Report(YAML::Mark::null_mark(), "",
               absl::StrCat("cannot read: ", std::strerror(errno)));
      }
      return;
    }
    if (!S_ISREG(info.st_mode)) {
      Report(YAML::Mark::null_mark(), "", "not a regular file");
      return;
    }
    if (static_cast<size_t>(info.st_size) > kMaxFileBytes) {
      Report(YAML::Mark::null_mark(), "",
             absl::StrCat("file is larger than ", kMaxFileBytes, " bytes"));
      return;
    }
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in) {
      Report(YAML::Mark::null_mark(), "",
             absl::StrCat("cannot read: ", std::strerror(errno)));
      return;
    }
    ReadText(text.str());
  }
};

// Applies the environment layer: for each key the generic name, then its
// aliases; the first non-empty variable wins (even when invalid, so a bad
// generic value is reported rather than silently replaced by an alias).
void ReadEnvironment(const std::map<std::string, std::string>& env,
                     std::string_view home_dir, const Sink& sink,
                     std::vector<Issue>* issues) {
  for (const KeySpec& spec : Schema()) {
    std::vector<std::string> names = {GenericEnvName(spec.key)};
    for (std::string_view alias : spec.env_aliases) names.emplace_back(alias);
    for (const std::string& name : names) {
      auto it = env.find(name);
      if (it == env.end() || it->second.empty()) continue;
      absl::StatusOr<ParsedValue> parsed =
          ParseText(spec, it->second, home_dir);
      if (parsed.ok()) {
        sink(spec, *std::move(parsed), Source{Layer::kEnvironment, name, 0, 0});
      } else {
        issues->push_back(Issue{Layer::kEnvironment, name, 0, 0,
                                std::string(spec.key),
                                std::string(parsed.status().message())});
      }
      break;
    }
  }
  for (const auto& [name, value] : env) {
    if (!absl::StartsWith(name, "CNET_") || !absl::StrContains(name, "__")) {
      continue;
    }
    std::string key = absl::AsciiStrToLower(
        absl::StrReplaceAll(name.substr(5), {{"__", "."}}));
    if (FindKey(key) != nullptr) continue;
    std::string reason = "unknown configuration variable";
    std::string suggestion = SuggestKey(key);
    if (FindKey(suggestion) != nullptr) {
      absl::StrAppend(&reason, " (did you mean ", GenericEnvName(suggestion),
                      "?)");
    }
    issues->push_back(
        Issue{Layer::kEnvironment, name, 0, 0, "", std::move(reason)});
  }
}

// Applies override values given in memory (LoadOptions::override_values).
void ReadOverrideValues(const std::map<std::string, std::string>& values,
                        const std::string& origin, std::string_view home_dir,
                        const Sink& sink, std::vector<Issue>* issues) {
  for (const auto& [key, text] : values) {
    absl::Status valid = ValidateValue(key, text);
    if (!valid.ok()) {
      issues->push_back(Issue{Layer::kRuntimeOverride, origin, 0, 0, key,
                              std::string(valid.message())});
      continue;
    }
    const KeySpec& spec = *FindKey(key);
    sink(spec, *ParseText(spec, text, home_dir),
         Source{Layer::kRuntimeOverride, origin, 0, 0});
  }
}

std::string JoinIssues(const std::vector<Issue>& issues) {
  std::string message = issues.front().ToString();
  if (issues.size() > 1) {
    absl::StrAppend(&message, " (and ", issues.size() - 1, " more)");
  }
  return message;
}

absl::Status MakeDirs(const std::string& dir) {
  if (dir.empty()) return absl::OkStatus();
  struct stat info;
  if (stat(dir.c_str(), &info) == 0) {
    if (S_ISDIR(info.st_mode)) return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat(dir, ": exists and is not a directory"));
  }
  size_t slash = dir.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    absl::Status parent = MakeDirs(dir.substr(0, slash));
    if (!parent.ok()) return parent;
  }
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot create ", dir));
  }
  return absl::OkStatus();
}

// Writes `content` to `path` atomically with mode 0600.
absl::Status WriteFileAtomically(const std::string& path,
                                 const std::string& content) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  if (dir.empty()) dir = "/";
  absl::Status made = MakeDirs(dir);
  if (!made.ok()) return made;

  std::string temp = absl::StrCat(path, ".tmp-XXXXXX");
  int fd = mkstemp(temp.data());
  if (fd < 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("cannot create ", temp));
  }
  auto fail = [&](std::string_view what) {
    absl::Status status = absl::ErrnoToStatus(errno, absl::StrCat(Sv(what), " ", temp));
    if (fd >= 0) close(fd);
    unlink(temp.c_str());
    return status;
  };
  if (fchmod(fd, 0600) != 0) return fail("cannot chmod");
  size_t written = 0;
  while (written < content.size()) {
    ssize_t n = write(fd, content.data() + written, content.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("cannot write");
    }
    written += static_cast<size_t>(n);
  }
  if (fsync(fd) != 0) return fail("cannot fsync");
  if (close(fd) != 0) {
    fd = -1;
    return fail("cannot close");
  }
  fd = -1;
  if (rename(temp.c_str(), path.c_str()) != 0) return fail("cannot rename");
  int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dir_fd >= 0) {
    fsync(dir_fd);
    close(dir_fd);
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view LayerName(Layer layer) {
  switch (layer) {
    case Layer::kDefault:
      return "default";
    case Layer::kExampleFile:
      return "example file";
    case Layer::kProjectFile:
      return "project file";
    case Layer::kUserFile:
      return "user file";
    case Layer::kEnvironment:
      return "environment";
    case Layer::kRuntimeOverride:
      return "runtime override";
  }
  return "unknown";
}

namespace {
// Keys and reasons may quote the document (an unknown key is whatever the
// user wrote): shown as one printable line of bounded size, control bytes
// escaped (fuzz finding F4, tests/fuzz).
std::string Printable(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (out.size() >= 512) return out + "...";
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      absl::StrAppend(&out, "\\x", absl::Hex(u, absl::kZeroPad2));
    } else {
      out += c;
    }
  }
  return out;
}
}  // namespace

std::string Issue::ToString() const {
  std::string text = origin;
  if (line > 0) absl::StrAppend(&text, ":", line, ":", column);
  if (!key.empty()) absl::StrAppend(&text, ": ", Printable(key));
  absl::StrAppend(&text, ": ", Printable(reason));
  return text;
}

Config::Config() : Config(internal::ConfigBuilder("").Build()) {}

const Value& Config::Get(std::string_view key, ValueType type) const {
  int index = KeyIndex(key);
  if (index < 0) Die(absl::StrCat("unknown key \"", Sv(key), "\""));
  const KeySpec& spec = Schema()[index];
  if (spec.type != type) {
    Die(absl::StrCat("key \"", Sv(key), "\" has type ",
                     Sv(ValueTypeName(spec.type)), ", not ",
                     Sv(ValueTypeName(type))));
  }
  return values_[index];
}

std::string Config::GetString(std::string_view key) const {
  return std::get<std::string>(Get(key, ValueType::kString));
}

int64_t Config::GetInt(std::string_view key) const {
  return std::get<int64_t>(Get(key, ValueType::kInt));
}

double Config::GetDouble(std::string_view key) const {
  return std::get<double>(Get(key, ValueType::kDouble));
}

bool Config::GetBool(std::string_view key) const {
  return std::get<bool>(Get(key, ValueType::kBool));
}

absl::Duration Config::GetDuration(std::string_view key) const {
  return std::get<absl::Duration>(Get(key, ValueType::kDuration));
}

std::vector<std::string> Config::GetStringList(std::string_view key) const {
  return std::get<std::vector<std::string>>(Get(key, ValueType::kStringList));
}

const Config::Entry& Config::entry(std::string_view key) const {
  int index = KeyIndex(key);
  if (index < 0) Die(absl::StrCat("unknown key \"", Sv(key), "\""));
  return entries_[index];
}

std::string Config::Display(std::string_view key) const {
  return entry(key).rendered;
}

std::vector<std::string> Config::ChangedKeys(const Config& other) const {
  std::vector<std::string> changed;
  for (size_t i = 0; i < canonical_.size(); ++i) {
    if (canonical_[i] != other.canonical_[i]) {
      changed.emplace_back(Schema()[i].key);
    }
  }
  return changed;
}

LoadOptions LoadOptions::FromProcess() {
  LoadOptions options;
  if (char* cwd = getcwd(nullptr, 0)) {
    options.project_dir = cwd;
    std::free(cwd);
  }
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    size_t equals = text.find('=');
    if (equals == std::string_view::npos) continue;
    options.env.emplace(std::string(text.substr(0, equals)),
                        std::string(text.substr(equals + 1)));
  }
  auto home = options.env.find("HOME");
  if (home != options.env.end() && !home->second.empty()) {
    options.home_dir = home->second;
  } else if (const passwd* user = getpwuid(getuid())) {
    options.home_dir = user->pw_dir;
  }
  return options;
}

LoadResult LoadLayers(const LoadOptions& options) {
  LoadResult result;
  internal::ConfigBuilder builder(options.home_dir);
  Sink sink = [&builder](const KeySpec& spec, ParsedValue value, Source source) {
    builder.Set(spec, std::move(value), std::move(source));
  };
  auto read_file = [&](Layer layer, const std::string& path) {
    LayerReader{layer, path, options.home_dir, sink, &result.issues}.ReadFile(
        path);
  };
  if (!options.project_dir.empty()) {
    read_file(Layer::kExampleFile,
              JoinPath(options.project_dir, "config.example.yaml"));
    read_file(Layer::kProjectFile, JoinPath(options.project_dir, "config.yaml"));
  }
  if (!options.home_dir.empty()) {
    read_file(Layer::kUserFile,
              JoinPath(options.home_dir, ".claude-network/config.yaml"));
  }
  ReadEnvironment(options.env, options.home_dir, sink, &result.issues);

  const std::string& data_dir = builder.value(kDataDirKey).canonical;
  std::string overrides_path =
      options.overrides_file.value_or(JoinPath(data_dir, kOverridesFileName));
  if (options.override_values.has_value()) {
    ReadOverrideValues(*options.override_values, overrides_path,
                       options.home_dir, sink, &result.issues);
  } else if (options.overrides_file.has_value() ||
             !absl::StartsWith(data_dir, "~")) {
    // Without a home directory "~/..." cannot be resolved: no overrides.
    read_file(Layer::kRuntimeOverride, overrides_path);
  }

  builder.CheckRules(&result.issues);
  result.config = builder.Build();
  return result;
}

absl::StatusOr<Config> Load(const LoadOptions& options) {
  LoadResult result = LoadLayers(options);
  if (!result.ok()) return absl::InvalidArgumentError(JoinIssues(result.issues));
  return std::move(result.config);
}

std::vector<Issue> ValidateDocument(std::string_view yaml_text,
                                    std::string_view origin) {
  std::vector<Issue> issues;
  internal::ConfigBuilder builder("");
  Sink sink = [&builder](const KeySpec& spec, ParsedValue value, Source source) {
    builder.Set(spec, std::move(value), std::move(source));
  };
  LayerReader{Layer::kProjectFile, std::string(origin), "", sink, &issues}
      .ReadText(yaml_text);
  builder.CheckRules(&issues);
  return issues;
}

absl::Status ValidateValue(std::string_view key, std::string_view value) {
  const KeySpec* spec = FindKey(key);
  if (spec == nullptr) {
    std::string message = absl::StrCat("unknown key \"", Sv(key), "\"");
    std::string suggestion = SuggestKey(key);
    if (FindKey(suggestion) != nullptr) {
      absl::StrAppend(&message, " (did you mean ", suggestion, "?)");
    }
    return absl::InvalidArgumentError(message);
  }
  if (spec->key == kDataDirKey) {
    return absl::InvalidArgumentError(absl::StrCat(
        Sv(key), ": cannot be a runtime override: the overrides file lives in it"));
  }
  absl::StatusOr<ParsedValue> parsed = ParseText(*spec, value, "");
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(Sv(key), ": ", parsed.status().message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, std::string>> ReadOverrides(
    const std::string& path) {
  std::map<std::string, std::string> values;
  std::vector<Issue> issues;
  Sink sink = [&values](const KeySpec& spec, ParsedValue value, Source) {
    values[std::string(spec.key)] = std::move(value.canonical);
  };
  LayerReader{Layer::kRuntimeOverride, path, "", sink, &issues}.ReadFile(path);
  if (!issues.empty()) return absl::InvalidArgumentError(JoinIssues(issues));
  return values;
}

absl::Status WriteOverrides(const std::string& path,
                            const std::map<std::string, std::string>& values) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  for (const auto& [key, text] : values) {
    absl::Status valid = ValidateValue(key, text);
    if (!valid.ok()) return valid;
    const KeySpec& spec = *FindKey(key);
    ParsedValue parsed = *ParseText(spec, text, "");
    out << YAML::Key << key << YAML::Value;
    if (spec.type == ValueType::kStringList) {
      out << YAML::Flow << YAML::BeginSeq;
      for (const std::string& item :
           std::get<std::vector<std::string>>(parsed.value)) {
        out << YAML::DoubleQuoted << item;
      }
      out << YAML::EndSeq;
    } else {
      out << YAML::DoubleQuoted << parsed.canonical;
    }
  }
  out << YAML::EndMap;
  if (!out.good()) {
    return absl::InternalError(
        absl::StrCat("cannot encode overrides: ", out.GetLastError()));
  }
  std::string content = absl::StrCat(
      "# Runtime overrides of Claude Network's configuration, written by the\n"
      "# config service (SetOverride). Highest precedence of all layers.\n",
      out.c_str(), "\n");
  return WriteFileAtomically(path, content);
}

}  // namespace cnet::config
