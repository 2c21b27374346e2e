#include "libs/config/loader.h"

#include <dirent.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "libs/config/schema.h"

namespace cnet::config {
namespace {

using ::testing::TestWithParam;
using ::testing::ValuesIn;

// A directory under /tmp removed with everything in it at the end.
class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/cnet_config_test.XXXXXX";
    const char* made = mkdtemp(pattern);
    EXPECT_NE(made, nullptr);
    path_ = made == nullptr ? "" : made;
  }
  ~TempDir() {
    if (path_.empty()) return;
    nftw(
        path_.c_str(),
        [](const char* p, const struct stat*, int, struct FTW*) {
          return std::remove(p);
        },
        16, FTW_DEPTH | FTW_PHYS);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void MakeDirs(const std::string& dir) {
  std::string partial;
  std::stringstream parts(dir);
  std::string part;
  while (std::getline(parts, part, '/')) {
    partial += part + "/";
    mkdir(partial.c_str(), 0700);
  }
}

void WriteFile(const std::string& path, const std::string& content) {
  MakeDirs(path.substr(0, path.rfind('/')));
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  ASSERT_TRUE(out.good()) << path;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  if (DIR* handle = opendir(dir.c_str())) {
    while (const dirent* entry = readdir(handle)) {
      std::string name = entry->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    closedir(handle);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> IssueStrings(const std::vector<Issue>& issues) {
  std::vector<std::string> lines;
  for (const Issue& issue : issues) lines.push_back(issue.ToString());
  return lines;
}

// One fresh project dir, home dir and environment per test.
class LoaderTest : public ::testing::Test {
 protected:
  LoaderTest()
      : project_(root_.path() + "/project"), home_(root_.path() + "/home") {
    MakeDirs(project_);
    MakeDirs(home_);
  }

  std::string ExamplePath() const { return project_ + "/config.example.yaml"; }
  std::string ProjectPath() const { return project_ + "/config.yaml"; }
  std::string UserPath() const { return home_ + "/.claude-network/config.yaml"; }
  std::string DataDir() const { return home_ + "/.claude-network/data"; }
  std::string OverridesPath() const {
    return DataDir() + "/config-overrides.yaml";
  }

  LoadOptions Options() const {
    LoadOptions options;
    options.project_dir = project_;
    options.home_dir = home_;
    options.env = env_;
    return options;
  }

  LoadResult LoadWith(const std::string& user_yaml) {
    WriteFile(UserPath(), user_yaml);
    return LoadLayers(Options());
  }

  TempDir root_;
  std::string project_;
  std::string home_;
  std::map<std::string, std::string> env_;
};

TEST_F(LoaderTest, NoLayersGivesBuiltInDefaults) {
  LoadResult result = LoadLayers(Options());
  ASSERT_TRUE(result.ok()) << IssueStrings(result.issues)[0];
  const Config& config = result.config;
  EXPECT_EQ(config.GetDuration("network.heartbeat_interval"), absl::Seconds(15));
  EXPECT_EQ(config.GetDuration("network.health.critical_max"), absl::Seconds(90));
  EXPECT_EQ(config.GetInt("limits.max_message_bytes"), 262144);
  EXPECT_DOUBLE_EQ(config.GetDouble("limits.rate_limit_per_sec"), 100.0);
  EXPECT_TRUE(config.GetBool("security.use_message_signing"));
  EXPECT_FALSE(config.GetBool("firebase.enabled"));
  EXPECT_EQ(config.GetString("github.api_url"), "https://api.github.com");
  EXPECT_EQ(config.GetStringList("github.labels"),
            std::vector<std::string>{"claude-network"});
  EXPECT_TRUE(config.GetStringList("skills.shell_allowlist").empty());
  EXPECT_EQ(config.GetString("services.data_dir"), DataDir());
  EXPECT_EQ(config.GetString("services.config_addr"), "127.0.0.1:7105");
  EXPECT_EQ(config.GetInt("services.skills_metrics_port"), 9104);
  EXPECT_EQ(config.GetString("log.level"), "INFO");

  const Config::Entry& entry = config.entry("network.health.critical_max");
  EXPECT_EQ(entry.rendered, "1m30s");
  EXPECT_EQ(entry.source.layer, Layer::kDefault);
  EXPECT_EQ(entry.source.origin, "built-in default");
  EXPECT_EQ(entry.source.line, 0);
  EXPECT_FALSE(entry.is_set);
  ASSERT_EQ(config.entries().size(), Schema().size());
  EXPECT_EQ(config.entries().front().spec->key, "firebase.enabled");
}

TEST_F(LoaderTest, DefaultConfigKeepsTildeUnexpanded) {
  Config config;
  EXPECT_EQ(config.GetString("services.data_dir"), "~/.claude-network/data");
  EXPECT_EQ(config.GetString("log.level"), "INFO");
}

// Each layer against the one just below it: the higher one wins and the
// source names it.
struct PrecedenceCase {
  const char* name;
  Layer lower;
  Layer higher;
};

class PrecedenceTest : public LoaderTest,
                       public ::testing::WithParamInterface<PrecedenceCase> {
 protected:
  // Sets network.heartbeat_interval in `layer`, written on line 3.
  void SetHeartbeat(Layer layer, const std::string& value) {
    std::string nested = "# set by the test\nnetwork:\n  heartbeat_interval: " +
                         value + "\n";
    switch (layer) {
      case Layer::kDefault:
        break;
      case Layer::kExampleFile:
        WriteFile(ExamplePath(), nested);
        break;
      case Layer::kProjectFile:
        WriteFile(ProjectPath(), nested);
        break;
      case Layer::kUserFile:
        WriteFile(UserPath(), nested);
        break;
      case Layer::kEnvironment:
        env_["CNET_NETWORK__HEARTBEAT_INTERVAL"] = value;
        break;
      case Layer::kRuntimeOverride:
        WriteFile(OverridesPath(),
                  "# set by the test\n\nnetwork.heartbeat_interval: " + value +
                      "\n");
        break;
    }
  }

  std::string OriginOf(Layer layer) const {
    switch (layer) {
      case Layer::kDefault:
        return "built-in default";
      case Layer::kExampleFile:
        return ExamplePath();
      case Layer::kProjectFile:
        return ProjectPath();
      case Layer::kUserFile:
        return UserPath();
      case Layer::kEnvironment:
        return "CNET_NETWORK__HEARTBEAT_INTERVAL";
      case Layer::kRuntimeOverride:
        return OverridesPath();
    }
    return "";
  }
};

TEST_P(PrecedenceTest, HigherLayerWins) {
  const PrecedenceCase& c = GetParam();
  SetHeartbeat(c.lower, "11s");
  SetHeartbeat(c.higher, "12s");
  LoadResult result = LoadLayers(Options());
  ASSERT_TRUE(result.ok()) << IssueStrings(result.issues)[0];

  const Config::Entry& entry = result.config.entry("network.heartbeat_interval");
  EXPECT_EQ(result.config.GetDuration("network.heartbeat_interval"),
            absl::Seconds(12));
  EXPECT_EQ(entry.rendered, "12s");
  EXPECT_TRUE(entry.is_set);
  EXPECT_EQ(entry.source.layer, c.higher);
  EXPECT_EQ(entry.source.origin, OriginOf(c.higher));
  bool is_file = c.higher != Layer::kEnvironment;
  EXPECT_EQ(entry.source.line, is_file ? 3 : 0);
  EXPECT_EQ(entry.source.column,
            !is_file ? 0 : c.higher == Layer::kRuntimeOverride ? 1 : 3);
}

TEST_P(PrecedenceTest, LowerLayerAloneIsUsed) {
  const PrecedenceCase& c = GetParam();
  SetHeartbeat(c.lower, "11s");
  LoadResult result = LoadLayers(Options());
  ASSERT_TRUE(result.ok()) << IssueStrings(result.issues)[0];
  const Config::Entry& entry = result.config.entry("network.heartbeat_interval");
  EXPECT_EQ(entry.rendered, c.lower == Layer::kDefault ? "15s" : "11s");
  EXPECT_EQ(entry.source.layer, c.lower);
  EXPECT_EQ(entry.source.origin, OriginOf(c.lower));
}

const PrecedenceCase kPrecedenceCases[] = {
    {"ExampleOverDefault", Layer::kDefault, Layer::kExampleFile},
    {"ProjectOverExample", Layer::kExampleFile, Layer::kProjectFile},
    {"UserOverProject", Layer::kProjectFile, Layer::kUserFile},
    {"EnvironmentOverUser", Layer::kUserFile, Layer::kEnvironment},
    {"OverrideOverEnvironment", Layer::kEnvironment, Layer::kRuntimeOverride},
};

INSTANTIATE_TEST_SUITE_P(
    EachPair, PrecedenceTest, ValuesIn(kPrecedenceCases),
    [](const ::testing::TestParamInfo<PrecedenceCase>& info) {
      return std::string(info.param.name);
    });

TEST_F(LoaderTest, AllLayersTogetherEachKeyFromItsHighestLayer) {
  WriteFile(ExamplePath(),
            "log:\n  level: DEBUG\nlimits:\n  inbox_cap: 1\n"
            "tasks:\n  steal_threshold: 9\n");
  WriteFile(ProjectPath(), "limits:\n  inbox_cap: 2\n  max_deliveries: 7\n");
  WriteFile(UserPath(), "limits:\n  max_deliveries: 8\n  max_page_size: 10\n");
  env_["CNET_LIMITS__MAX_PAGE_SIZE"] = "20";
  env_["CNET_LIMITS__MAX_SKILL_RUNS"] = "30";
  WriteFile(OverridesPath(), "limits.max_skill_runs: 40\n");
  LoadResult result = LoadLayers(Options());
  ASSERT_TRUE(result.ok()) << IssueStrings(result.issues)[0];
  const Config& config = result.config;
  EXPECT_EQ(config.GetString("log.level"), "DEBUG");
  EXPECT_EQ(config.GetInt("tasks.steal_threshold"), 9);
  EXPECT_EQ(config.GetInt("limits.inbox_cap"), 2);
  EXPECT_EQ(config.GetInt("limits.max_deliveries"), 8);
  EXPECT_EQ(config.GetInt("limits.max_page_size"), 20);
  EXPECT_EQ(config.GetInt("limits.max_skill_runs"), 40);
  EXPECT_EQ(config.GetInt("limits.rate_limit_burst"), 200);
  EXPECT_EQ(config.entry("log.level").source.layer, Layer::kExampleFile);
  EXPECT_EQ(config.entry("limits.inbox_cap").source.layer, Layer::kProjectFile);
  EXPECT_EQ(config.entry("limits.inbox_cap").source.line, 2);
  EXPECT_EQ(config.entry("limits.max_deliveries").source.layer,
            Layer::kUserFile);
  EXPECT_EQ(config.entry("limits.max_page_size").source.origin,
            "CNET_LIMITS__MAX_PAGE_SIZE");
  EXPECT_EQ(config.entry("limits.max_skill_runs").source.layer,
            Layer::kRuntimeOverride);
  EXPECT_EQ(config.entry("limits.rate_limit_burst").source.layer,
            Layer::kDefault);
}

TEST_F(LoaderTest, OverridesFileIsFoundInDataDirFromLowerLayers) {
  std::string data_dir = root_.path() + "/elsewhere";
  WriteFile(UserPath(), "services:\n  data_dir: " + data_dir + "\n");
  WriteFile(data_dir + "/config-overrides.yaml", "log.level: ERROR\n");
  WriteFile(OverridesPath(), "log.level: WARNING\n");  // Not the data dir.
  LoadResult result = LoadLayers(Options());
  ASSERT_TRUE(result.ok()) << IssueStrings(result.issues)[0];
  EXPECT_EQ(result.config.GetString("log.level"), "ERROR");
  EXPECT_EQ(result.config.entry("log.level").source.origin,
            data_dir + "/config-overrides.yaml");

  env_["CLAUDE_DATA_DIR"] = DataDir();
  result = LoadLayers(Options());
  ASSERT_TRUE(result.ok()) << IssueStrings(result.issues)[0];
  EXPECT_EQ(result.config.GetString("log.level"), "WARNING");
}

TEST_F(LoaderTest, ExplicitOverridesFileIsUsed) {
  std::string path = root_.path() + "/explicit.yaml";
  WriteFile(path, "tasks.steal_threshold: 6\n");
  LoadOptions options = Options();
  options.overrides_file = path;
  LoadResult result = LoadLayers(options);
  ASSERT_TRUE(result.ok()) << IssueStrings(result.issues)[0];
  EXPECT_EQ(result.config.GetInt("tasks.steal_threshold"), 6);
  EXPECT_EQ(result.config.entry("tasks.steal_threshold").source.origin, path);
}

TEST_F(LoaderTest, DataDirCannotBeARuntimeOverride) {
  WriteFile(OverridesPath(), "services.data_dir: /tmp/other\n");
  LoadResult result = LoadLayers(Options());
  EXPECT_EQ(IssueStrings(result.issues),
            std::vector<std::string>{
                OverridesPath() +
                ":1:1: services.data_dir: cannot be a runtime override: the "
                "overrides file lives in it"});
  EXPECT_EQ(result.config.GetString("services.data_dir"), DataDir());
}

// The seed's environment names, each with the key it sets.
struct SeedVariable {
  const char* name;
  const char* value;
  const char* key;
  const char* expected;  // Canonical clear text.
};

const SeedVariable kSeedVariables[] = {
    {"FIREBASE_URL", "https://a.firebaseio.com", "firebase.url",
     "https://a.firebaseio.com"},
    {"FIREBASE_PROJECT_ID", "proj-1", "firebase.project_id", "proj-1"},
    {"FIREBASE_AUTH", "auth-secret", "firebase.auth", "auth-secret"},
    {"FIREBASE_API_KEY", "api-key-1", "firebase.api_key", "api-key-1"},
    {"GITHUB_TOKEN", "ghp_token1", "github.token", "ghp_token1"},
    {"GITHUB_REPO", "octo/net", "github.repo", "octo/net"},
    {"CLAUDE_FIREBASE_URL", "https://b.firebaseio.com", "firebase.url",
     "https://b.firebaseio.com"},
    {"CLAUDE_FIREBASE_API_KEY", "api-key-2", "firebase.api_key", "api-key-2"},
    {"CLAUDE_FIREBASE_PROJECT_ID", "proj-2", "firebase.project_id", "proj-2"},
    {"CLAUDE_AGENT_ID", "agent-7", "agent.id", "agent-7"},
    {"CLAUDE_AGENT_NAME", "Ada", "agent.name", "Ada"},
    {"CLAUDE_AGENT_SURFACE", "Laptop", "agent.surface", "laptop"},
    {"CLAUDE_AGENT_LOCATION", "Paris", "agent.location", "Paris"},
    {"CLAUDE_AGENT_CAPABILITIES", "python, review", "agent.capabilities",
     "python,review"},
    {"CLAUDE_AGENT_HEARTBEAT", "20", "network.heartbeat_interval", "20s"},
    {"CLAUDE_MESSAGE_RETRY", "5", "firebase.max_retries", "5"},
    {"CLAUDE_MESSAGE_TIMEOUT", "30", "firebase.timeout", "30s"},
    {"CLAUDE_ENABLE_SIGNING", "false", "security.use_message_signing", "false"},
    {"CLAUDE_SHARED_SECRET", "hmac-key", "security.shared_secret", "hmac-key"},
    {"CLAUDE_GITHUB_REPO", "me/repo", "github.repo", "me/repo"},
    {"CLAUDE_GITHUB_TOKEN", "ghp_token2", "github.token", "ghp_token2"},
    {"CLAUDE_LOG_LEVEL", "debug", "log.level", "DEBUG"},
    {"CLAUDE_DATA_DIR", "/srv/cnet", "services.data_dir", "/srv/cnet"},
};

// The clear canonical text of any key (secrets included).
std::string ClearText(const Config& config, const std::string& key) {
  const KeySpec* spec = FindKey(key);
  if (spec->type == ValueType::kString) return config.GetString(key);
  return config.entry(key).rendered;
}

class SeedVariableTest : public LoaderTest,
                         public ::testing::WithParamInterface<SeedVariable> {};

TEST_P(SeedVariableTest, SetsItsKey) {
  const SeedVariable& v = GetParam();
  env_[v.name] = v.value;
  LoadResult result = LoadLayers(Options());
  ASSERT_TRUE(result.ok()) << IssueStrings(result.issues)[0];
  EXPECT_EQ(ClearText(result.config, v.key), v.expected);
  const Config::Entry& entry = result.config.entry(v.key);
  EXPECT_EQ(entry.source.layer, Layer::kEnvironment);
  EXPECT_EQ(entry.source.origin, v.name);
  EXPECT_EQ(entry.source.line, 0);
}

INSTANTIATE_TEST_SUITE_P(
    EachName, SeedVariableTest, ValuesIn(kSeedVariables),
    [](const ::testing::TestParamInfo<SeedVariable>& info) {
      return std::string(info.param.name);
    });

TEST(SeedVariables, TableCoversEveryAliasInTheSchema) {
  std::set<std::string> in_schema;
  for (const KeySpec& spec : Schema()) {
    for (std::string_view alias : spec.env_aliases) {
      EXPECT_TRUE(in_schema.emplace(alias).second) << alias << " used twice";
    }
  }
  std::set<std::string> in_table;
  for (const SeedVariable& v : kSeedVariables) in_table.emplace(v.name);
  EXPECT_EQ(in_schema, in_table);
}

TEST_F(LoaderTest, GenericNameWinsOverAliasesAndFirstAliasOverSecond) {
  env_["CNET_FIREBASE__URL"] = "https://generic.firebaseio.com";
  env_["FIREBASE_URL"] = "https://seed.firebaseio.com";
  env_["CLAUDE_FIREBASE_URL"] = "https://claude.firebaseio.com";
  env_["FIREBASE_PROJECT_ID"] = "first";
  env_["CLAUDE_FIREBASE_PROJECT_ID"] = "second";
  LoadResult result = LoadLayers(Options());
  ASSERT_TRUE(result.ok()) << IssueStrings(result.issues)[0];
  EXPECT_EQ(result.config.GetString("firebase.url"),
            "https://generic.firebaseio.com");
  EXPECT_EQ(result.config.entry("firebase.url").source.origin,
            "CNET_FIREBASE__URL");
  EXPECT_EQ(result.config.GetString("firebase.project_id"), "first");
}

TEST_F(LoaderTest, GenericSchemeCoversEveryType) {
  env_["CNET_NETWORK__HEALTH__HEALTHY_MAX"] = "45s";
  env_["CNET_NETWORK__HEALTH__WARNING_MAX"] = "2m";
  env_["CNET_NETWORK__HEALTH__CRITICAL_MAX"] = "3m";
  env_["CNET_LIMITS__RATE_LIMIT_PER_SEC"] = "12.5";
  env_["CNET_GITHUB__LABELS"] = "net-a, net-b,,";
  env_["CNET_LOG__JSON"] = "No";
  env_["CNET_SERVICES__REGISTRY_METRICS_PORT"] = "0";
  env_["CNET_SECURITY__TLS__REQUIRE_CLIENT_CERT"] = "YES";
  env_["CNET_SECURITY__TLS__CA_FILE"] = "/etc/ca.pem";
  env_["CNET_AGENT__NAME"] = "Grace";
  LoadResult result = LoadLayers(Options());
  ASSERT_TRUE(result.ok()) << IssueStrings(result.issues)[0];
  const Config& config = result.config;
  EXPECT_EQ(config.GetDuration("network.health.healthy_max"), absl::Seconds(45));
  EXPECT_EQ(config.GetDuration("network.health.warning_max"), absl::Minutes(2));
  EXPECT_DOUBLE_EQ(config.GetDouble("limits.rate_limit_per_sec"), 12.5);
  EXPECT_EQ(config.GetStringList("github.labels"),
            (std::vector<std::string>{"net-a", "net-b"}));
  EXPECT_EQ(config.entry("github.labels").rendered, "net-a,net-b");
  EXPECT_FALSE(config.GetBool("log.json"));
  EXPECT_EQ(config.GetInt("services.registry_metrics_port"), 0);
  EXPECT_TRUE(config.GetBool("security.tls.require_client_cert"));
  EXPECT_EQ(config.GetString("agent.name"), "Grace");
}

TEST(GenericEnvName, UpperCasesAndDoublesDots) {
  EXPECT_EQ(GenericEnvName("network.health.healthy_max"),
            "CNET_NETWORK__HEALTH__HEALTHY_MAX");
  EXPECT_EQ(GenericEnvName("firebase.url"), "CNET_FIREBASE__URL");
}

TEST_F(LoaderTest, EmptyEnvironmentVariableCountsAsUnset) {
  WriteFile(UserPath(), "firebase:\n  url: https://user.firebaseio.com\n");
  env_["FIREBASE_URL"] = "";
  env_["CNET_FIREBASE__URL"] = "";
  LoadResult result = LoadLayers(Options());
  ASSERT_TRUE(result.ok()) << IssueStrings(result.issues)[0];
  EXPECT_EQ(result.config.GetString("firebase.url"),
            "https://user.firebaseio.com");
}

TEST_F(LoaderTest, UnknownGenericVariableIsReportedWithSuggestion) {
  env_["CNET_NETWORK__HEARTBEAT_INTERVA"] = "5s";
  env_["CNET_COLOUR__SCHEME"] = "dark";
  env_["CNET_TOKEN"] = "not-config";  // The CLI's own variable: ignored.
  env_["PATH"] = "/usr/bin";
  LoadResult result = LoadLayers(Options());
  EXPECT_EQ(IssueStrings(result.issues),
            (std::vector<std::string>{
                "CNET_COLOUR__SCHEME: unknown configuration variable",
                "CNET_NETWORK__HEARTBEAT_INTERVA: unknown configuration "
                "variable (did you mean CNET_NETWORK__HEARTBEAT_INTERVAL?)"}));
  EXPECT_EQ(result.issues[0].layer, Layer::kEnvironment);
}

TEST_F(LoaderTest, BadBoolInEnvironmentNamesTheVariable) {
  env_["CLAUDE_ENABLE_SIGNING"] = "maybe";
  LoadResult result = LoadLayers(Options());
  ASSERT_EQ(result.issues.size(), 1u);
  EXPECT_EQ(result.issues[0].ToString(),
            "CLAUDE_ENABLE_SIGNING: security.use_message_signing: expected "
            "true/false/yes/no/1/0, got \"maybe\"");
  EXPECT_EQ(result.issues[0].layer, Layer::kEnvironment);
  EXPECT_TRUE(result.config.GetBool("security.use_message_signing"));
}

TEST(ParseText, BoolForms) {
  const KeySpec& spec = *FindKey("log.json");
  for (const char* yes : {"true", "TRUE", "yes", "Yes", "1"}) {
    absl::StatusOr<ParsedValue> parsed = ParseText(spec, yes, "");
    ASSERT_TRUE(parsed.ok()) << yes;
    EXPECT_TRUE(std::get<bool>(parsed->value)) << yes;
    EXPECT_EQ(parsed->canonical, "true");
  }
  for (const char* no : {"false", "False", "no", "NO", "0"}) {
    absl::StatusOr<ParsedValue> parsed = ParseText(spec, no, "");
    ASSERT_TRUE(parsed.ok()) << no;
    EXPECT_FALSE(std::get<bool>(parsed->value)) << no;
    EXPECT_EQ(parsed->canonical, "false");
  }
  for (const char* bad : {"on", "off", "2", "", "y"}) {
    EXPECT_EQ(ParseText(spec, bad, "").status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST_F(LoaderTest, InvalidYamlNamesFileAndLine) {
  LoadResult result =
      LoadWith("network:\n  heartbeat_interval: 15s\n  labels: [a, b\n");
  ASSERT_EQ(result.issues.size(), 1u);
  const Issue& issue = result.issues[0];
  EXPECT_EQ(issue.layer, Layer::kUserFile);
  EXPECT_EQ(issue.origin, UserPath());
  EXPECT_EQ(issue.line, 4);
  EXPECT_EQ(issue.ToString(),
            UserPath() + ":4:1: invalid YAML: end of sequence flow not found");
  absl::StatusOr<Config> loaded = Load(Options());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(loaded.status().message(), issue.ToString());
}

TEST_F(LoaderTest, BadIndentationIsInvalidYamlWithItsLine) {
  LoadResult result = LoadWith("log:\n  level: INFO\n json: true\n");
  ASSERT_EQ(result.issues.size(), 1u);
  EXPECT_EQ(result.issues[0].line, 3);
  EXPECT_TRUE(absl::StartsWith(result.issues[0].reason, "invalid YAML: "))
      << result.issues[0].reason;
}

// yaml-cpp 0.7's LoadAll never returns on these (jbeder/yaml-cpp#1040): the
// loader must report them, not hang eating memory.
TEST_F(LoaderTest, StrayCommaAtDocumentStartIsReportedNotLooped) {
  EXPECT_EQ(IssueStrings(ValidateDocument(",", "comma.yaml")),
            std::vector<std::string>{
                "comma.yaml:1:1: invalid YAML: unexpected character ','"});
  EXPECT_EQ(IssueStrings(ValidateDocument(", log: 1", "comma.yaml")),
            std::vector<std::string>{
                "comma.yaml:1:1: invalid YAML: unexpected character ','"});
  EXPECT_EQ(IssueStrings(ValidateDocument("log:\n  json: true\n---\n,\n",
                                          "two.yaml")),
            std::vector<std::string>{
                "two.yaml:3:1: expected one YAML document, found several"});
  std::set<std::string> stuck;
  for (int byte = 1; byte < 256; ++byte) {
    std::vector<Issue> issues =
        ValidateDocument(std::string(1, static_cast<char>(byte)), "one.yaml");
    if (!issues.empty() &&
        absl::StartsWith(issues[0].reason, "invalid YAML: unexpected")) {
      stuck.insert(issues[0].reason);
    }
  }
  EXPECT_EQ(stuck, std::set<std::string>{
                       "invalid YAML: unexpected character ','"});
  LoadResult result = LoadWith(",\n");
  EXPECT_EQ(IssueStrings(result.issues),
            std::vector<std::string>{
                UserPath() + ":1:1: invalid YAML: unexpected character ','"});
}

TEST_F(LoaderTest, TopLevelMustBeAMap) {
  LoadResult result = LoadWith("- network\n- log\n");
  EXPECT_EQ(IssueStrings(result.issues),
            std::vector<std::string>{
                UserPath() +
                ":1:1: the top level must be a map of sections, got a list"});
}

TEST_F(LoaderTest, EmptyAndCommentOnlyFilesAreEmptyLayers) {
  WriteFile(ProjectPath(), "");
  LoadResult result = LoadWith("# nothing set yet\n");
  EXPECT_TRUE(result.ok());
  EXPECT_EQ(result.config.entry("log.level").source.layer, Layer::kDefault);
}

TEST_F(LoaderTest, LayerPathThatIsADirectoryIsReported) {
  MakeDirs(ProjectPath());
  LoadResult result = LoadLayers(Options());
  EXPECT_EQ(IssueStrings(result.issues),
            std::vector<std::string>{ProjectPath() + ": not a regular file"});
}

TEST_F(LoaderTest, UnknownKeysAreReportedWithSuggestions) {
  LoadResult result = LoadWith(
      "network:\n"
      "  heartbeat_intervall: 15s\n"
      "  health:\n"
      "    healty_max: 30s\n"
      "netwrk:\n"
      "  node_id: a\n"
      "colour: blue\n"
      "limits.inbox_capp: 5\n");
  EXPECT_EQ(
      IssueStrings(result.issues),
      (std::vector<std::string>{
          UserPath() + ":2:3: network.heartbeat_intervall: unknown key (did "
                       "you mean network.heartbeat_interval?)",
          UserPath() + ":4:5: network.health.healty_max: unknown key (did you "
                       "mean network.health.healthy_max?)",
          UserPath() + ":5:1: netwrk: unknown key (did you mean network?)",
          UserPath() + ":7:1: colour: unknown key",
          UserPath() + ":8:1: limits.inbox_capp: unknown key (did you mean "
                       "limits.inbox_cap?)",
      }));
}

TEST(SuggestKey, FindsCloseKeysOnly) {
  EXPECT_EQ(SuggestKey("firebase.ulr"), "firebase.url");
  EXPECT_EQ(SuggestKey("Log.Level"), "log.level");
  EXPECT_EQ(SuggestKey("security.tls.cert"), "security.tls.cert_file");
  EXPECT_EQ(SuggestKey("githb"), "github");
  EXPECT_EQ(SuggestKey("weather.forecast"), "");
}

TEST_F(LoaderTest, WrongTypesAreReported) {
  LoadResult result = LoadWith(
      "network:\n"
      "  heartbeat_interval: fast\n"
      "limits:\n"
      "  inbox_cap: lots\n"
      "  rate_limit_per_sec: quick\n"
      "  max_deliveries: 2.5\n"
      "github:\n"
      "  labels: claude-network\n"
      "  repo: {owner: a}\n"
      "log: INFO\n"
      "firebase:\n"
      "  enabled: [true]\n"
      "tasks:\n"
      "  steal_threshold: {a: 1}\n");
  EXPECT_EQ(
      IssueStrings(result.issues),
      (std::vector<std::string>{
          UserPath() + ":2:23: network.heartbeat_interval: expected a duration "
                       "like \"15s\", got \"fast\"",
          UserPath() + ":4:14: limits.inbox_cap: expected an integer, got "
                       "\"lots\"",
          UserPath() + ":5:23: limits.rate_limit_per_sec: expected a number, "
                       "got \"quick\"",
          UserPath() + ":6:19: limits.max_deliveries: expected an integer, got "
                       "\"2.5\"",
          UserPath() + ":8:11: github.labels: expected a list (a YAML sequence "
                       "such as [a, b]), got a single value",
          UserPath() + ":9:9: github.repo: expected a string, got a map",
          UserPath() + ":10:6: log: expected a section (a map of keys), got a "
                       "single value",
          UserPath() + ":12:12: firebase.enabled: expected a bool, got a list",
          UserPath() + ":14:20: tasks.steal_threshold: expected an integer, "
                       "got a map",
      }));
  // Invalid values are skipped: the lower layers' values stay in effect.
  EXPECT_EQ(result.config.GetDuration("network.heartbeat_interval"),
            absl::Seconds(15));
  EXPECT_EQ(result.config.GetInt("limits.inbox_cap"), 10000);
}

TEST_F(LoaderTest, OutOfRangeValuesAreReported) {
  LoadResult result = LoadWith(
      "limits:\n"
      "  max_deliveries: 0\n"
      "network:\n"
      "  heartbeat_interval: 500ms\n"
      "  health:\n"
      "    error_rate_warning: 1.5\n"
      "services:\n"
      "  tasks_metrics_port: 70000\n"
      "firebase:\n"
      "  timeout: -5s\n");
  EXPECT_EQ(
      IssueStrings(result.issues),
      (std::vector<std::string>{
          UserPath() + ":2:19: limits.max_deliveries: must be between 1 and "
                       "1000, got 0",
          UserPath() + ":4:23: network.heartbeat_interval: must be between 1s "
                       "and 1h, got 500ms",
          UserPath() + ":6:25: network.health.error_rate_warning: must be "
                       "between 0 and 1, got 1.5",
          UserPath() + ":8:23: services.tasks_metrics_port: must be between 0 "
                       "and 65535, got 70000",
          UserPath() + ":10:12: firebase.timeout: must not be negative, got "
                       "\"-5s\"",
      }));
}

TEST_F(LoaderTest, ValuesOutsideTheAllowedSetAreReported) {
  LoadResult result = LoadWith(
      "log:\n  level: verbose\nagent:\n  surface: Laptop\n");
  EXPECT_EQ(IssueStrings(result.issues),
            std::vector<std::string>{
                UserPath() + ":2:10: log.level: must be one of DEBUG, INFO, "
                             "WARNING, ERROR; got \"verbose\""});
  EXPECT_EQ(result.config.GetString("agent.surface"), "laptop");
}

TEST_F(LoaderTest, FormatsAreChecked) {
  LoadResult result = LoadWith(
      "firebase:\n"
      "  url: http://example.com\n"
      "github:\n"
      "  repo: not-a-repo\n"
      "services:\n"
      "  macs_addr: localhost\n"
      "agent:\n"
      "  capabilities: [python, Big Data]\n");
  EXPECT_EQ(
      IssueStrings(result.issues),
      (std::vector<std::string>{
          UserPath() + ":2:8: firebase.url: expected an https:// URL (http:// "
                       "only for 127.0.0.1 or localhost), got "
                       "\"http://example.com\"",
          UserPath() + ":4:9: github.repo: expected a repository as "
                       "owner/name, got \"not-a-repo\"",
          UserPath() + ":6:14: services.macs_addr: expected host:port with "
                       "port 0..65535, got \"localhost\"",
          UserPath() + ":8:26: agent.capabilities: expected a name of 1 to 64 "
                       "characters in [a-z0-9._-], got \"Big Data\"",
      }));
}

TEST_F(LoaderTest, LocalHttpUrlsAndPortZeroAreAccepted) {
  LoadResult result = LoadWith(
      "firebase:\n"
      "  enabled: true\n"
      "  url: http://127.0.0.1:9000\n"
      "github:\n"
      "  api_url: http://localhost:8080/api\n"
      "services:\n"
      "  registry_addr: 127.0.0.1:0\n"
      "  tasks_addr: unix:/run/cnet/tasks.sock\n");
  ASSERT_TRUE(result.ok()) << IssueStrings(result.issues)[0];
  EXPECT_EQ(result.config.GetString("firebase.url"), "http://127.0.0.1:9000");
  EXPECT_EQ(result.config.GetString("services.registry_addr"), "127.0.0.1:0");
}

TEST_F(LoaderTest, RequiredWhenEnabledIsReportedWhereItWasEnabled) {
  LoadResult result = LoadWith(
      "firebase:\n"
      "  enabled: true\n"
      "github:\n"
      "  enabled: yes\n"
      "  repo: octo/net\n"
      "security:\n"
      "  tls:\n"
      "    enabled: true\n"
      "    cert_file: /etc/cnet/cert.pem\n");
  EXPECT_EQ(
      IssueStrings(result.issues),
      (std::vector<std::string>{
          UserPath() + ":2:3: firebase.url: required when firebase.enabled is "
                       "true",
          UserPath() + ":4:3: github.token: required when github.enabled is "
                       "true",
          UserPath() + ":8:5: security.tls.key_file: required when "
                       "security.tls.enabled is true",
      }));
  EXPECT_EQ(result.issues[0].key, "firebase.url");
  EXPECT_EQ(result.issues[0].layer, Layer::kUserFile);

  env_["FIREBASE_URL"] = "https://net.firebaseio.com";
  env_["GITHUB_TOKEN"] = "ghp_x";
  env_["CNET_SECURITY__TLS__KEY_FILE"] = "/etc/cnet/key.pem";
  result = LoadLayers(Options());
  EXPECT_TRUE(result.ok()) << IssueStrings(result.issues)[0];
}

TEST_F(LoaderTest, RequiredValueCannotBeEmptied) {
  LoadResult result = LoadWith("services:\n  bind_host: \"\"\n");
  EXPECT_EQ(IssueStrings(result.issues),
            std::vector<std::string>{
                UserPath() + ":2:14: services.bind_host: must not be empty"});
}

TEST_F(LoaderTest, HealthThresholdsMustIncrease) {
  LoadResult result = LoadWith("network:\n  health:\n    warning_max: 20s\n");
  EXPECT_EQ(IssueStrings(result.issues),
            std::vector<std::string>{
                UserPath() + ":3:5: network.health.warning_max: must be "
                             "greater than network.health.healthy_max (30s), "
                             "got 20s"});

  // The key set by the higher layer is the one blamed.
  WriteFile(UserPath(), "network:\n  health:\n    critical_max: 90s\n");
  env_["CNET_NETWORK__HEALTH__HEALTHY_MAX"] = "2m";
  result = LoadLayers(Options());
  EXPECT_EQ(IssueStrings(result.issues),
            std::vector<std::string>{
                "CNET_NETWORK__HEALTH__HEALTHY_MAX: network.health.healthy_max: "
                "must be less than network.health.warning_max (1m), got 2m"});

  env_.clear();
  WriteFile(UserPath(),
            "network:\n  heartbeat_interval: 30s\n  health:\n"
            "    warning_max: 90s\n");
  result = LoadLayers(Options());
  EXPECT_EQ(IssueStrings(result.issues),
            (std::vector<std::string>{
                UserPath() + ":2:3: network.heartbeat_interval: must be less "
                             "than network.health.healthy_max (30s), got 30s",
                UserPath() + ":4:5: network.health.warning_max: must be less "
                             "than network.health.critical_max (1m30s), got "
                             "1m30s"}));
}

TEST_F(LoaderTest, BackoffBaseMayEqualButNotExceedMax) {
  LoadResult result =
      LoadWith("offline:\n  backoff_base: 1m\n  backoff_max: 60s\n");
  EXPECT_TRUE(result.ok()) << IssueStrings(result.issues)[0];
  result = LoadWith("offline:\n  backoff_base: 2m\n");
  EXPECT_EQ(IssueStrings(result.issues),
            std::vector<std::string>{
                UserPath() + ":2:3: offline.backoff_base: must be at most "
                             "offline.backoff_max (1m), got 2m"});
}

TEST_F(LoaderTest, EveryIssueOfEveryLayerIsCollected) {
  WriteFile(ProjectPath(), "log:\n  level: LOUD\n");
  env_["CLAUDE_MESSAGE_RETRY"] = "many";
  LoadResult result = LoadWith(
      "limits:\n  inbox_cap: -1\n  max_pages: 3\nfirebase:\n  enabled: true\n");
  EXPECT_EQ(
      IssueStrings(result.issues),
      (std::vector<std::string>{
          ProjectPath() + ":2:10: log.level: must be one of DEBUG, INFO, "
                          "WARNING, ERROR; got \"LOUD\"",
          UserPath() + ":2:14: limits.inbox_cap: must be between 1 and "
                       "10000000, got -1",
          UserPath() + ":3:3: limits.max_pages: unknown key (did you mean "
                       "limits.max_page_size?)",
          "CLAUDE_MESSAGE_RETRY: firebase.max_retries: expected an integer, "
          "got \"many\"",
          UserPath() + ":5:3: firebase.url: required when firebase.enabled is "
                       "true",
      }));
  EXPECT_EQ(result.issues[0].layer, Layer::kProjectFile);
  EXPECT_EQ(result.issues[3].layer, Layer::kEnvironment);

  absl::StatusOr<Config> loaded = Load(Options());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(loaded.status().message(),
            result.issues[0].ToString() + " (and 4 more)");
}

TEST_F(LoaderTest, DuplicateKeysAreReported) {
  LoadResult result = LoadWith(
      "log:\n  level: INFO\n  level: DEBUG\nlog.json: true\nlog.json: false\n");
  EXPECT_EQ(
      IssueStrings(result.issues),
      (std::vector<std::string>{
          UserPath() + ":3:3: log.level: duplicate key (first given on line 2)",
          UserPath() + ":5:1: log.json: duplicate key (first given on line 4)",
      }));
  EXPECT_EQ(result.config.GetString("log.level"), "INFO");
}

TEST_F(LoaderTest, NullValueLeavesKeyToLowerLayers) {
  WriteFile(ProjectPath(), "firebase:\n  project_id: from-project\n");
  LoadResult result =
      LoadWith("firebase:\n  project_id:\n  url: ~\nagent:\n  name: \"\"\n");
  ASSERT_TRUE(result.ok()) << IssueStrings(result.issues)[0];
  EXPECT_EQ(result.config.GetString("firebase.project_id"), "from-project");
  EXPECT_EQ(result.config.entry("firebase.project_id").source.layer,
            Layer::kProjectFile);
  EXPECT_EQ(result.config.GetString("agent.name"), "");
  EXPECT_EQ(result.config.entry("agent.name").source.layer, Layer::kUserFile);
}

TEST_F(LoaderTest, SecretsAreRedacted) {
  env_["FIREBASE_AUTH"] = "tok-12345";
  LoadResult result = LoadWith("security:\n  shared_secret: hunter2-secret\n");
  ASSERT_TRUE(result.ok()) << IssueStrings(result.issues)[0];
  const Config& config = result.config;
  EXPECT_EQ(config.Display("firebase.auth"), "***");
  EXPECT_EQ(config.Display("security.shared_secret"), "***");
  EXPECT_EQ(config.Display("github.token"), "");
  EXPECT_EQ(config.Display("log.level"), "INFO");
  EXPECT_EQ(config.GetString("firebase.auth"), "tok-12345");
  EXPECT_EQ(config.GetString("security.shared_secret"), "hunter2-secret");
  EXPECT_EQ(config.entry("security.shared_secret").source.line, 2);
  for (const Config::Entry& entry : config.entries()) {
    EXPECT_FALSE(absl::StrContains(entry.rendered, "tok-12345"))
        << entry.spec->key;
    EXPECT_FALSE(absl::StrContains(entry.rendered, "hunter2"))
        << entry.spec->key;
    if (entry.spec->secret) {
      EXPECT_TRUE(entry.rendered == "***" || entry.rendered.empty())
          << entry.spec->key;
    }
  }
}

TEST_F(LoaderTest, IssuesNeverEchoSecrets) {
  LoadResult result = LoadWith(
      "security:\n  shared_secret: [hunter2-secret]\n"
      "  admin_tokn: hunter3-secret\n");
  EXPECT_EQ(
      IssueStrings(result.issues),
      (std::vector<std::string>{
          UserPath() + ":2:18: security.shared_secret: expected a string, got "
                       "a list",
          UserPath() + ":3:3: security.admin_tokn: unknown key (did you mean "
                       "security.admin_token?)",
      }));

  // A secret with a format or range rule is refused without its text.
  KeySpec secret_number;
  secret_number.key = "test.secret_number";
  secret_number.type = ValueType::kInt;
  secret_number.secret = true;
  absl::Status status = ParseText(secret_number, "hunter4-secret", "").status();
  EXPECT_EQ(status.message(), "expected an integer, got an invalid value");
  KeySpec secret_choice = secret_number;
  secret_choice.type = ValueType::kString;
  secret_choice.allowed = {"a", "b"};
  status = ParseText(secret_choice, "hunter5-secret", "").status();
  EXPECT_EQ(status.message(), "must be one of a, b; got an invalid value");
}

TEST_F(LoaderTest, ListsFromYamlAndEnvironment) {
  LoadResult result = LoadWith(
      "agent:\n"
      "  capabilities:\n"
      "    - python\n"
      "    - code.review\n"
      "skills:\n"
      "  shell_allowlist: [git, make]\n"
      "github:\n"
      "  labels: []\n");
  ASSERT_TRUE(result.ok()) << IssueStrings(result.issues)[0];
  EXPECT_EQ(result.config.GetStringList("agent.capabilities"),
            (std::vector<std::string>{"python", "code.review"}));
  EXPECT_EQ(result.config.GetStringList("skills.shell_allowlist"),
            (std::vector<std::string>{"git", "make"}));
  EXPECT_TRUE(result.config.GetStringList("github.labels").empty());
  EXPECT_EQ(result.config.entry("github.labels").rendered, "");
  EXPECT_EQ(result.config.entry("agent.capabilities").rendered,
            "python,code.review");

  env_["CLAUDE_AGENT_CAPABILITIES"] = " rust ,go,";
  result = LoadLayers(Options());
  ASSERT_TRUE(result.ok()) << IssueStrings(result.issues)[0];
  EXPECT_EQ(result.config.GetStringList("agent.capabilities"),
            (std::vector<std::string>{"rust", "go"}));
}

TEST_F(LoaderTest, BadListItemsAreReportedAtTheItem) {
  LoadResult result = LoadWith(
      "skills:\n"
      "  shell_allowlist:\n"
      "    - git\n"
      "    - \"a,b\"\n"
      "    - {cmd: make}\n"
      "    - \"\"\n");
  EXPECT_EQ(
      IssueStrings(result.issues),
      (std::vector<std::string>{
          UserPath() + ":4:7: skills.shell_allowlist: list items must not "
                       "contain ',', got \"a,b\"",
          UserPath() + ":5:7: skills.shell_allowlist: list items must be "
                       "single values, got a map",
          UserPath() + ":6:7: skills.shell_allowlist: list items must not be "
                       "empty",
      }));
  EXPECT_TRUE(result.config.GetStringList("skills.shell_allowlist").empty());
}

struct DurationCase {
  const char* text;
  absl::Duration expected;
  const char* canonical;
};

TEST(ParseText, DurationForms) {
  const KeySpec& spec = *FindKey("network.dead_retention");
  const DurationCase cases[] = {
      {"500ms", absl::Milliseconds(500), "500ms"},
      {"15s", absl::Seconds(15), "15s"},
      {"5m", absl::Minutes(5), "5m"},
      {"2h", absl::Hours(2), "2h"},
      {"1h30m", absl::Minutes(90), "1h30m"},
      {"30", absl::Seconds(30), "30s"},
      {"1.5", absl::Milliseconds(1500), "1.5s"},
      {" 45s ", absl::Seconds(45), "45s"},
  };
  for (const DurationCase& c : cases) {
    absl::StatusOr<ParsedValue> parsed = ParseText(spec, c.text, "");
    ASSERT_TRUE(parsed.ok()) << c.text << ": " << parsed.status();
    EXPECT_EQ(std::get<absl::Duration>(parsed->value), c.expected) << c.text;
    EXPECT_EQ(parsed->canonical, c.canonical) << c.text;
  }
  EXPECT_EQ(ParseText(spec, "5 parsecs", "").status().message(),
            "expected a duration like \"15s\", got \"5 parsecs\"");
  EXPECT_EQ(ParseText(spec, "inf", "").status().message(),
            "expected a duration like \"15s\", got \"inf\"");
  EXPECT_EQ(ParseText(spec, "", "").status().message(),
            "expected a duration like \"15s\", got \"\"");
  EXPECT_EQ(ParseText(*FindKey("firebase.timeout"), "11m", "").status().message(),
            "must be between 100ms and 10m, got 11m");
}

TEST_F(LoaderTest, DurationsFromYamlIncludingBareSeconds) {
  LoadResult result = LoadWith(
      "firebase:\n  timeout: 30\nnetwork:\n  dead_retention: 48h\n"
      "limits:\n  ack_timeout: 1m30s\n");
  ASSERT_TRUE(result.ok()) << IssueStrings(result.issues)[0];
  EXPECT_EQ(result.config.GetDuration("firebase.timeout"), absl::Seconds(30));
  EXPECT_EQ(result.config.GetDuration("network.dead_retention"),
            absl::Hours(48));
  EXPECT_EQ(result.config.GetDuration("limits.ack_timeout"), absl::Seconds(90));
  EXPECT_EQ(result.config.entry("limits.ack_timeout").rendered, "1m30s");
}

TEST_F(LoaderTest, TildeExpandsToHomeInPaths) {
  env_["CLAUDE_DATA_DIR"] = "~/cnet-data";
  LoadResult result = LoadWith(
      "services:\n  log_dir: \"~\"\n"
      "security:\n  tls:\n    ca_file: ~/certs/ca.pem\n"
      "    cert_file: /etc/~/cert.pem\n"
      "agent:\n  location: ~/not-a-path\n");
  ASSERT_TRUE(result.ok()) << IssueStrings(result.issues)[0];
  EXPECT_EQ(result.config.GetString("services.data_dir"), home_ + "/cnet-data");
  EXPECT_EQ(result.config.GetString("services.log_dir"), home_);
  EXPECT_EQ(result.config.GetString("security.tls.ca_file"),
            home_ + "/certs/ca.pem");
  EXPECT_EQ(result.config.GetString("security.tls.cert_file"),
            "/etc/~/cert.pem");
  EXPECT_EQ(result.config.GetString("agent.location"), "~/not-a-path");
}

TEST_F(LoaderTest, OverridesRoundTripWithMode0600) {
  std::string path = OverridesPath();
  std::map<std::string, std::string> values = {
      {"network.heartbeat_interval", "20"},
      {"github.labels", "net-a, net-b"},
      {"security.shared_secret", "s3cret \"quoted\": yes"},
      {"log.level", "warning"},
  };
  ASSERT_TRUE(WriteOverrides(path, values).ok());

  struct stat info;
  ASSERT_EQ(stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600);

  absl::StatusOr<std::map<std::string, std::string>> read = ReadOverrides(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, (std::map<std::string, std::string>{
                       {"github.labels", "net-a,net-b"},
                       {"log.level", "WARNING"},
                       {"network.heartbeat_interval", "20s"},
                       {"security.shared_secret", "s3cret \"quoted\": yes"},
                   }));

  LoadResult result = LoadLayers(Options());
  ASSERT_TRUE(result.ok()) << IssueStrings(result.issues)[0];
  EXPECT_EQ(result.config.GetDuration("network.heartbeat_interval"),
            absl::Seconds(20));
  EXPECT_EQ(result.config.GetStringList("github.labels"),
            (std::vector<std::string>{"net-a", "net-b"}));
  EXPECT_EQ(result.config.GetString("security.shared_secret"),
            "s3cret \"quoted\": yes");
  EXPECT_EQ(result.config.entry("log.level").source.layer,
            Layer::kRuntimeOverride);
  EXPECT_EQ(result.config.entry("log.level").source.origin, path);

  ASSERT_TRUE(WriteOverrides(path, {}).ok());
  read = ReadOverrides(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_TRUE(read->empty());
}

TEST_F(LoaderTest, BadOverridesAreRejectedAndLeaveTheFileUnchanged) {
  std::string path = OverridesPath();
  ASSERT_TRUE(WriteOverrides(path, {{"log.level", "ERROR"}}).ok());
  std::string before = ReadFile(path);

  absl::Status status = WriteOverrides(
      path, {{"log.level", "DEBUG"}, {"network.heartbeat_intervl", "5s"}});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "unknown key \"network.heartbeat_intervl\" (did you mean "
            "network.heartbeat_interval?)");
  EXPECT_EQ(ReadFile(path), before);

  status = WriteOverrides(path, {{"limits.inbox_cap", "0"}});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(status.message(),
            "limits.inbox_cap: must be between 1 and 10000000, got 0");
  EXPECT_EQ(ReadFile(path), before);

  status = WriteOverrides(path, {{"services.data_dir", "/tmp/x"}});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ReadFile(path), before);

  // No temporary file is left behind.
  EXPECT_EQ(ListDir(DataDir()),
            std::vector<std::string>{"config-overrides.yaml"});
  absl::StatusOr<std::map<std::string, std::string>> read = ReadOverrides(path);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, (std::map<std::string, std::string>{{"log.level", "ERROR"}}));
}

TEST_F(LoaderTest, ReadOverridesOfMissingFileIsEmptyAndOfBadFileAnError) {
  absl::StatusOr<std::map<std::string, std::string>> read =
      ReadOverrides(root_.path() + "/absent.yaml");
  ASSERT_TRUE(read.ok());
  EXPECT_TRUE(read->empty());

  std::string path = root_.path() + "/bad.yaml";
  WriteFile(path, "log.level: LOUD\ncolour: red\n");
  read = ReadOverrides(path);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(read.status().message(),
            path + ":1:12: log.level: must be one of DEBUG, INFO, WARNING, "
                   "ERROR; got \"LOUD\" (and 1 more)");
}

TEST(ValidateValue, ChecksKeyAndValue) {
  EXPECT_TRUE(ValidateValue("network.heartbeat_interval", "20s").ok());
  EXPECT_TRUE(ValidateValue("agent.capabilities", "python,go").ok());
  EXPECT_EQ(ValidateValue("network.heartbeat_interval", "soon").message(),
            "network.heartbeat_interval: expected a duration like \"15s\", "
            "got \"soon\"");
  EXPECT_EQ(ValidateValue("log.levle", "INFO").message(),
            "unknown key \"log.levle\" (did you mean log.level?)");
  EXPECT_EQ(ValidateValue("log", "INFO").message(), "unknown key \"log\"");
  EXPECT_EQ(ValidateValue("services.data_dir", "/x").message(),
            "services.data_dir: cannot be a runtime override: the overrides "
            "file lives in it");
}

TEST_F(LoaderTest, CandidateOverridesAreCheckedAgainstEveryRule) {
  WriteFile(OverridesPath(), "log.level: ERROR\n");
  LoadOptions options = Options();
  options.override_values = std::map<std::string, std::string>{
      {"network.health.critical_max", "45s"}};
  LoadResult result = LoadLayers(options);
  EXPECT_EQ(IssueStrings(result.issues),
            std::vector<std::string>{
                OverridesPath() + ": network.health.critical_max: must be "
                                  "greater than network.health.warning_max "
                                  "(1m), got 45s"});
  // The file's content is replaced by the candidate values, not merged.
  EXPECT_EQ(result.config.GetString("log.level"), "INFO");

  options.override_values = std::map<std::string, std::string>{
      {"network.health.critical_max", "2m"}, {"log.level", "ERROR"}};
  result = LoadLayers(options);
  ASSERT_TRUE(result.ok()) << IssueStrings(result.issues)[0];
  EXPECT_EQ(result.config.GetDuration("network.health.critical_max"),
            absl::Minutes(2));
  EXPECT_EQ(result.config.entry("log.level").source.layer,
            Layer::kRuntimeOverride);
}

TEST(ValidateDocument, ReportsLineAndColumn) {
  std::vector<Issue> issues = ValidateDocument(
      "# submitted\n"
      "network:\n"
      "  heartbeat_interval: 10s\n"
      "  health:\n"
      "    healthy_max: 5s\n"
      "limits:\n"
      "  max_page_size: 0\n",
      "submitted.yaml");
  EXPECT_EQ(
      IssueStrings(issues),
      (std::vector<std::string>{
          "submitted.yaml:7:18: limits.max_page_size: must be between 1 and "
          "100000, got 0",
          "submitted.yaml:5:5: network.health.healthy_max: must be greater "
          "than network.heartbeat_interval (10s), got 5s",
      }));
  EXPECT_EQ(issues[0].line, 7);
  EXPECT_EQ(issues[0].column, 18);

  issues = ValidateDocument("log:\n  level: [\n", "bad.yaml");
  ASSERT_EQ(issues.size(), 1u);
  EXPECT_EQ(issues[0].origin, "bad.yaml");
  EXPECT_EQ(issues[0].line, 3);
  EXPECT_TRUE(absl::StartsWith(issues[0].reason, "invalid YAML: "));

  EXPECT_TRUE(ValidateDocument("log:\n  level: DEBUG\n", "ok.yaml").empty());
  EXPECT_TRUE(ValidateDocument("", "empty.yaml").empty());
  EXPECT_EQ(IssueStrings(ValidateDocument("a: 1\n---\nb: 2\n", "two.yaml")),
            std::vector<std::string>{
                "two.yaml:2:1: expected one YAML document, found several"});
}

TEST(Issue, ToStringLeavesOutWhatIsNotApplicable) {
  Issue issue{Layer::kUserFile, "/h/.claude-network/config.yaml", 7, 3,
              "network.heartbeat_interval",
              "expected a duration like \"15s\", got \"fast\""};
  EXPECT_EQ(issue.ToString(),
            "/h/.claude-network/config.yaml:7:3: network.heartbeat_interval: "
            "expected a duration like \"15s\", got \"fast\"");
  issue.line = 0;
  issue.key = "";
  issue.reason = "not a regular file";
  EXPECT_EQ(issue.ToString(), "/h/.claude-network/config.yaml: not a regular file");
}

TEST(LayerName, NamesEveryLayer) {
  EXPECT_EQ(LayerName(Layer::kDefault), "default");
  EXPECT_EQ(LayerName(Layer::kExampleFile), "example file");
  EXPECT_EQ(LayerName(Layer::kProjectFile), "project file");
  EXPECT_EQ(LayerName(Layer::kUserFile), "user file");
  EXPECT_EQ(LayerName(Layer::kEnvironment), "environment");
  EXPECT_EQ(LayerName(Layer::kRuntimeOverride), "runtime override");
}

TEST_F(LoaderTest, ChangedKeysNamesDifferencesIncludingSecrets) {
  Config before = LoadLayers(Options()).config;
  env_["CLAUDE_SHARED_SECRET"] = "new-secret";
  env_["CNET_TASKS__STEAL_THRESHOLD"] = "4";
  Config after = LoadLayers(Options()).config;
  EXPECT_EQ(before.ChangedKeys(after),
            (std::vector<std::string>{"security.shared_secret",
                                      "tasks.steal_threshold"}));
  EXPECT_TRUE(after.ChangedKeys(after).empty());
}

TEST(ConfigDeathTest, GetterOfUnknownKeyOrWrongTypeAborts) {
  Config config;
  EXPECT_DEATH(config.GetInt("limits.no_such_key"),
               "unknown key \"limits.no_such_key\"");
  EXPECT_DEATH(config.GetInt("log.level"),
               "key \"log.level\" has type string, not integer");
}

TEST(LoadOptions, FromProcessReadsTheRealProcess) {
  ASSERT_EQ(setenv("CNET_LOADER_TEST_MARKER", "present", 1), 0);
  LoadOptions options = LoadOptions::FromProcess();
  unsetenv("CNET_LOADER_TEST_MARKER");
  EXPECT_EQ(options.env["CNET_LOADER_TEST_MARKER"], "present");
  char* cwd = getcwd(nullptr, 0);
  ASSERT_NE(cwd, nullptr);
  EXPECT_EQ(options.project_dir, cwd);
  std::free(cwd);
  EXPECT_FALSE(options.home_dir.empty());
}

TEST(Schema, TableIsConsistent) {
  std::set<std::string_view> keys;
  for (const KeySpec& spec : Schema()) {
    EXPECT_TRUE(keys.insert(spec.key).second) << spec.key << " listed twice";
    for (char c : spec.key) {
      EXPECT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.')
          << spec.key << " is not snake_case";
    }
    EXPECT_FALSE(spec.description.empty()) << spec.key;
    EXPECT_TRUE(ParseText(spec, spec.default_value, "/home/u").ok())
        << spec.key << " default";
    if (!spec.required_when.empty()) {
      const KeySpec* condition = FindKey(spec.required_when);
      ASSERT_NE(condition, nullptr) << spec.key;
      EXPECT_EQ(condition->type, ValueType::kBool) << spec.key;
    }
    EXPECT_EQ(FindKey(spec.key), &spec);
  }
  for (const Ordering& rule : Orderings()) {
    const KeySpec* lower = FindKey(rule.lower);
    const KeySpec* upper = FindKey(rule.upper);
    ASSERT_NE(lower, nullptr) << rule.lower;
    ASSERT_NE(upper, nullptr) << rule.upper;
    EXPECT_EQ(lower->type, upper->type) << rule.lower;
  }
  EXPECT_TRUE(IsSection("network.health"));
  EXPECT_FALSE(IsSection("network.heartbeat_interval"));
  EXPECT_EQ(FindKey("network.health"), nullptr);
}

// The repository's config.example.yaml: Bazel runs tests in the runfiles
// tree, where it is ./config.example.yaml; CNET_CONFIG_EXAMPLE may name it.
std::string FindExampleFile() {
  std::vector<std::string> candidates;
  if (const char* path = std::getenv("CNET_CONFIG_EXAMPLE")) {
    candidates.emplace_back(path);
  }
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir != nullptr && workspace != nullptr) {
    candidates.push_back(std::string(srcdir) + "/" + workspace +
                         "/config.example.yaml");
  }
  candidates.emplace_back("config.example.yaml");
  for (const std::string& candidate : candidates) {
    if (access(candidate.c_str(), R_OK) == 0) return candidate;
  }
  return "";
}

TEST_F(LoaderTest, RepositoryExampleFileIsValidAndListsEveryDefault) {
  std::string example = FindExampleFile();
  ASSERT_FALSE(example.empty())
      << "config.example.yaml not found; run from the repository root or set "
         "CNET_CONFIG_EXAMPLE";
  std::string text = ReadFile(example);
  EXPECT_TRUE(ValidateDocument(text, example).empty())
      << IssueStrings(ValidateDocument(text, example))[0];

  Config defaults = LoadLayers(Options()).config;
  WriteFile(ExamplePath(), text);
  LoadResult result = LoadLayers(Options());
  ASSERT_TRUE(result.ok()) << IssueStrings(result.issues)[0];
  for (const Config::Entry& entry : result.config.entries()) {
    std::string key(entry.spec->key);
    EXPECT_EQ(entry.source.layer, Layer::kExampleFile)
        << key << " is missing from config.example.yaml";
    EXPECT_EQ(ClearText(result.config, key), ClearText(defaults, key))
        << key << " differs from its built-in default";
    if (entry.spec->secret) {
      EXPECT_EQ(ClearText(result.config, key), "") << key;
    }
  }
}

}  // namespace
}  // namespace cnet::config
