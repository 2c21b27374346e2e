#include "tools/cnet/agent_context.h"

#include <fcntl.h>
#include <google/protobuf/util/time_util.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "libs/crypto/crypto.h"

namespace cnet::cli {
namespace fs = std::filesystem;
namespace pb = claudenet::v1;

std::string AgentsDir(const std::string& home) { return home + "/.claude-network/agents"; }

absl::StatusOr<SavedAgent> LoadSavedAgent(const std::string& home, const std::string& id) {
  SavedAgent agent;
  agent.path = AgentsDir(home) + "/" + id + ".json";
  std::ifstream in(agent.path);
  if (!in) return absl::NotFoundError(absl::StrCat("no saved identity ", agent.path));
  nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("agent_id") || !j.contains("token") ||
      !j["agent_id"].is_string() || !j["token"].is_string()) {
    return absl::FailedPreconditionError(absl::StrCat(agent.path, ": not an identity file"));
  }
  agent.id = j["agent_id"].get<std::string>();
  agent.token = j["token"].get<std::string>();
  if (j.contains("ed25519_seed") && j["ed25519_seed"].is_string() && j.contains("key_id") &&
      j["key_id"].is_string()) {
    absl::StatusOr<std::string> seed = crypto::HexDecode(j["ed25519_seed"].get<std::string>());
    if (seed.ok() && seed->size() == 32) {
      agent.ed25519_seed = *seed;
      agent.key_id = j["key_id"].get<std::string>();
    }
  }
  return agent;
}

std::vector<std::string> SavedAgentIds(const std::string& home) {
  std::vector<std::string> ids;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(AgentsDir(home), ec)) {
    if (entry.path().extension() == ".json") ids.push_back(entry.path().stem().string());
  }
  std::sort(ids.begin(), ids.end());
  return ids;
}

absl::Status WriteSavedAgent(const std::string& home, const std::string& registry,
                             const pb::Agent& agent, const std::string& token,
                             const std::string& ed25519_seed, std::string* path) {
  std::string dir = AgentsDir(home);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  }
  ::chmod(dir.c_str(), 0700);
  *path = dir + "/" + agent.id() + ".json";
  nlohmann::json j = {
      {"agent_id", agent.id()},
      {"token", token},
      {"name", agent.name()},
      {"node", agent.node()},
      {"registry", registry},
      {"joined_at", google::protobuf::util::TimeUtil::ToString(agent.registered_at())}};
  if (!ed25519_seed.empty() && agent.has_public_key()) {
    j["ed25519_seed"] = crypto::HexEncode(ed25519_seed);
    j["key_id"] = agent.public_key().key_id();
  }
  std::string text = j.dump(2) + "\n";
  std::string tmp = *path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot write ", tmp, ": ", std::strerror(errno)));
  }
  ::fchmod(fd, 0600);
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
            ::fsync(fd) == 0;
  ::close(fd);
  if (!ok || ::rename(tmp.c_str(), path->c_str()) != 0) {
    ::unlink(tmp.c_str());
    return absl::FailedPreconditionError(absl::StrCat("cannot write ", *path));
  }
  return absl::OkStatus();
}

absl::StatusOr<SavedAgent> ResolveAgent(const config::Config& config, const std::string& home,
                                        const std::string& as) {
  std::string id = as;
  for (const char* name : {"CNET_AGENT_ID", "CNET_AGENT"}) {
    const char* env = std::getenv(name);
    if (id.empty() && env != nullptr) id = env;
  }
  if (id.empty()) id = config.GetString("agent.id");
  if (id.empty()) {
    std::vector<std::string> saved = SavedAgentIds(home);
    if (saved.empty()) {
      return absl::NotFoundError("no saved identity: run `cnet agent join` first");
    }
    if (saved.size() > 1) {
      return absl::FailedPreconditionError(
          "several saved identities: choose one with --as ID or CNET_AGENT_ID");
    }
    id = saved[0];
  }
  return LoadSavedAgent(home, id);
}

std::string NodeName(const config::Config& config) {
  std::string node = config.GetString("network.node_id");
  if (!node.empty()) return node;
  char host[256] = {0};
  ::gethostname(host, sizeof(host) - 1);
  return host;
}

std::optional<std::string> RunCapture(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return std::nullopt;
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    return std::nullopt;
  }
  if (pid == 0) {
    ::dup2(pipefd[1], 1);
    int devnull = ::open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      ::dup2(devnull, 0);
      ::dup2(devnull, 2);
    }
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(pipefd[1]);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(pipefd[0], buf, sizeof(buf));
    if (n > 0) {
      out.append(buf, static_cast<size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(pipefd[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
  return out;
}

std::string NormaliseRemote(const std::string& url) {
  std::string s(absl::StripAsciiWhitespace(url));
  size_t scheme = s.find("://");
  if (scheme != std::string::npos) {
    s = s.substr(scheme + 3);
  } else if (size_t colon = s.find(':'); colon != std::string::npos &&
                                         s.find('/') > colon) {
    s[colon] = '/';  // scp-like git@host:org/repo
  }
  size_t at = s.find('@');
  if (at != std::string::npos && at < s.find('/')) s = s.substr(at + 1);
  if (absl::EndsWith(s, "/")) s.pop_back();
  if (absl::EndsWith(s, ".git")) s.resize(s.size() - 4);
  return absl::AsciiStrToLower(s);
}

Workspace DetectWorkspace(const config::Config& config, const std::string& dir,
                          const std::string& override_name) {
  Workspace ws;
  std::optional<std::string> top = RunCapture({"git", "-C", dir, "rev-parse", "--show-toplevel"});
  if (top) {
    ws.root = std::string(absl::StripAsciiWhitespace(*top));
  } else {
    std::error_code ec;
    fs::path p = fs::weakly_canonical(fs::absolute(dir), ec);
    ws.root = ec ? dir : p.string();
  }
  if (!override_name.empty()) {
    ws.name = override_name;
  } else if (const char* env = std::getenv("CNET_WORKSPACE"); env != nullptr && *env != '\0') {
    ws.name = env;
  } else {
    std::optional<std::string> origin;
    if (top) origin = RunCapture({"git", "-C", ws.root, "config", "--get", "remote.origin.url"});
    if (origin && !absl::StripAsciiWhitespace(*origin).empty()) {
      ws.name = NormaliseRemote(*origin);
    } else {
      ws.name = absl::StrCat(NodeName(config), ":", ws.root);
    }
  }
  return ws;
}

std::optional<std::string> RelativeTo(const std::string& root, const std::string& cwd,
                                      const std::string& path) {
  std::error_code ec;
  fs::path p(path);
  if (p.is_relative()) p = fs::path(cwd) / p;
  p = fs::weakly_canonical(p, ec);
  if (ec) p = fs::path(path).lexically_normal();
  fs::path r = fs::weakly_canonical(fs::path(root), ec);
  if (ec) r = fs::path(root).lexically_normal();
  fs::path rel = p.lexically_relative(r);
  std::string s = rel.generic_string();
  if (rel.empty() || s == "." || absl::StartsWith(s, "..")) return std::nullopt;
  return s;
}

std::unique_ptr<grpc::ClientContext> CallContext(absl::Duration deadline,
                                                 const std::string& credential) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(absl::ToInt64Milliseconds(deadline)));
  if (!credential.empty()) ctx->AddMetadata("authorization", "Bearer " + credential);
  return ctx;
}

std::string SigningKey(const config::Config& config) {
  if (!config.GetBool("security.use_message_signing")) return "";
  std::string key = config.GetString("security.shared_secret");
  if (!key.empty()) return key;
  std::ifstream in(config.GetString("services.data_dir") + "/message.secret");
  std::string line;
  std::getline(in, line);
  return std::string(absl::StripAsciiWhitespace(line));
}

std::string TimeText(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(t.seconds()),
                          absl::UTCTimeZone());
}

std::string DescribeReservation(const pb::Reservation& r) {
  std::string out = absl::StrCat(
      r.pattern(), " ",
      r.mode() == pb::RESERVATION_MODE_SHARED ? "SHARED" : "EXCLUSIVE", " by ", r.holder(),
      " until ", TimeText(r.expires_at()));
  if (!r.task_id().empty()) absl::StrAppend(&out, " task ", r.task_id());
  if (!r.reason().empty()) absl::StrAppend(&out, " (", r.reason(), ")");
  absl::StrAppend(&out, " [", r.id(), " in ", r.workspace(), "]");
  return out;
}

std::string DescribePathResult(const pb::PathResult& r) {
  std::string outcome = pb::PathOutcome_Name(r.outcome());
  if (absl::StartsWith(outcome, "PATH_OUTCOME_")) outcome = outcome.substr(13);
  std::string out = absl::StrCat(outcome, " ", r.pattern());
  if (!r.reservation_id().empty()) absl::StrAppend(&out, " ", r.reservation_id());
  if (r.has_expires_at()) absl::StrAppend(&out, " until ", TimeText(r.expires_at()));
  for (const pb::ResourceConflict& c : r.conflicts()) {
    absl::StrAppend(&out, "; held by ", c.holder(), " as ", c.held(), " until ",
                    TimeText(c.expires_at()));
    if (!c.holder_reason().empty()) absl::StrAppend(&out, " (", c.holder_reason(), ")");
  }
  return out;
}

}  // namespace cnet::cli
