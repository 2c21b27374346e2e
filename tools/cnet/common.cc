#include "tools/cnet/common.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "libs/crypto/crypto.h"
#include "tools/cnet/agent_context.h"

namespace cnet::cli {
namespace fs = std::filesystem;

std::string IdentityDir(Globals* g) { return AgentsDir(g->load_options().home_dir); }

std::vector<std::string> SavedIdentityIds(Globals* g) {
  return SavedAgentIds(g->load_options().home_dir);
}

absl::StatusOr<Identity> LoadSavedIdentity(Globals* g, const std::string& id) {
  absl::StatusOr<SavedAgent> saved = LoadSavedAgent(g->load_options().home_dir, id);
  if (!saved.ok()) {
    if (absl::IsNotFound(saved.status())) {
      return absl::UnauthenticatedError(absl::StrCat(
          "no saved identity for agent ", id, " (", IdentityDir(g), "/", id,
          ".json): run `cnet agent join` first, or give --token"));
    }
    return absl::UnauthenticatedError(std::string(saved.status().message()));
  }
  Identity identity;
  identity.id = saved->id;
  identity.token = saved->token;
  identity.path = saved->path;
  identity.ed25519_seed = saved->ed25519_seed;
  identity.key_id = saved->key_id;
  return identity;
}

absl::StatusOr<Identity> ResolveIdentity(Globals* g, const std::string& as) {
  std::string named = !as.empty() ? as : g->agent;
  if (!g->token.empty()) {
    Identity identity;
    identity.token = g->token;
    identity.id = named;
    if (identity.id.empty()) {
      for (const std::string& id : SavedIdentityIds(g)) {
        absl::StatusOr<Identity> saved = LoadSavedIdentity(g, id);
        if (saved.ok() && saved->token == g->token) identity.id = saved->id;
      }
    }
    return identity;
  }
  if (!named.empty()) return LoadSavedIdentity(g, named);
  std::vector<std::string> saved = SavedIdentityIds(g);
  if (saved.size() == 1) return LoadSavedIdentity(g, saved[0]);
  std::string configured = g->config().GetString("agent.id");
  if (!configured.empty()) return LoadSavedIdentity(g, configured);
  if (saved.empty()) {
    return absl::UnauthenticatedError(
        "no agent identity: run `cnet agent join` first, or give --token and --agent");
  }
  return absl::UnauthenticatedError(absl::StrCat(
      saved.size(), " saved identities: choose one with --agent ID (or CNET_AGENT)"));
}

std::string ReaderCredential(Globals* g, const std::string& as) {
  absl::StatusOr<Identity> identity = ResolveIdentity(g, as);
  if (identity.ok()) return identity->token;
  return g->AdminCredential();
}

std::string SigningKey(Globals* g) {
  if (!g->config().GetBool("security.use_message_signing")) return "";
  std::string key = g->config().GetString("security.shared_secret");
  if (!key.empty()) return key;
  std::ifstream in(g->config().GetString("services.data_dir") + "/message.secret");
  std::string line;
  std::getline(in, line);
  return std::string(absl::StripAsciiWhitespace(line));
}

absl::StatusOr<std::string> ReadInput(const std::string& inline_text, const std::string& file,
                                      const std::string& what, const std::string& fallback) {
  if (!inline_text.empty() && !file.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": give the text or a file, not both"));
  }
  if (!inline_text.empty()) return inline_text;
  if (file.empty()) return fallback;
  std::stringstream buf;
  if (file == "-") {
    buf << std::cin.rdbuf();
    return buf.str();
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(what, ": cannot read ", file));
  buf << in.rdbuf();
  return buf.str();
}

absl::Status ParseStruct(const std::string& json_text, const std::string& what,
                         google::protobuf::Struct* out) {
  nlohmann::json j = nlohmann::json::parse(json_text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": expected a JSON object"));
  }
  auto s = google::protobuf::util::JsonStringToMessage(j.dump(), out);
  if (!s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", std::string(s.message())));
  }
  return absl::OkStatus();
}

std::string ProtoJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  return out;
}

nlohmann::json ProtoJsonValue(const google::protobuf::Message& m) {
  return nlohmann::json::parse(ProtoJson(m), nullptr, false);
}

std::string ShortName(int value, const google::protobuf::EnumDescriptor* d) {
  const google::protobuf::EnumValueDescriptor* v = d->FindValueByNumber(value);
  if (v == nullptr) return absl::StrCat(value);
  std::string name = v->name();
  // The prefix is the name of the zero value minus "UNSPECIFIED".
  std::string zero = d->value(0)->name();
  std::string prefix = zero.substr(0, zero.size() - std::string("UNSPECIFIED").size());
  if (name.rfind(prefix, 0) == 0) name = name.substr(prefix.size());
  return name == "UNSPECIFIED" ? "-" : name;
}

bool ParseEnum(const std::string& text, const google::protobuf::EnumDescriptor* d, int* out) {
  std::string upper = absl::AsciiStrToUpper(text);
  std::replace(upper.begin(), upper.end(), '-', '_');
  std::string zero = d->value(0)->name();
  std::string prefix = zero.substr(0, zero.size() - std::string("UNSPECIFIED").size());
  const google::protobuf::EnumValueDescriptor* v = d->FindValueByName(prefix + upper);
  if (v == nullptr) v = d->FindValueByName(upper);
  if (v == nullptr || v->number() == 0) return false;
  *out = v->number();
  return true;
}

double AgeSeconds(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return 0;
  absl::Time at = absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
  return std::max(0.0, absl::ToDoubleSeconds(absl::Now() - at));
}

std::string Ago(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  int64_t secs = static_cast<int64_t>(AgeSeconds(t));
  if (secs < 120) return absl::StrCat(secs, "s ago");
  if (secs < 7200) return absl::StrCat(secs / 60, "m ago");
  if (secs < 172800) return absl::StrCat(secs / 3600, "h ago");
  return absl::StrCat(secs / 86400, "d ago");
}

grpc::Status ToGrpcStatus(const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

int ReportAbsl(const Globals& g, const std::string& what, const absl::Status& s) {
  return ReportError(g, what, ToGrpcStatus(s));
}

int ReportUsage(const Globals& g, const std::string& what, const std::string& message) {
  return ReportError(g, what, grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message));
}

void PrintJson(const nlohmann::json& j) { std::cout << j.dump() << "\n"; }

}  // namespace cnet::cli

// ---------------------------------------------------------------------------
// StopSignal: SIGINT/SIGTERM handlers write the signal number to a pipe
// (async-signal-safe); a thread reads it and runs on_stop. Handlers are
// process-wide, so gRPC's own threads need no signal mask.

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <thread>

namespace cnet::cli {
namespace {
std::atomic<int> g_stop_pipe{-1};

void OnStopSignal(int sig) {
  int fd = g_stop_pipe.load();
  if (fd >= 0) {
    unsigned char b = static_cast<unsigned char>(sig);
    (void)!write(fd, &b, 1);
  }
}
}  // namespace

struct StopSignal::State {
  std::function<void()> on_stop;
  std::atomic<bool> stopped{false};
  std::atomic<int> signal{0};
  int fds[2] = {-1, -1};
  std::thread waiter;
  struct sigaction old_int, old_term;
};

StopSignal::StopSignal(std::function<void()> on_stop) : state_(std::make_shared<State>()) {
  state_->on_stop = std::move(on_stop);
  if (pipe2(state_->fds, O_CLOEXEC) != 0) return;
  g_stop_pipe = state_->fds[1];
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, &state_->old_int);
  sigaction(SIGTERM, &sa, &state_->old_term);
  std::shared_ptr<State> st = state_;
  st->waiter = std::thread([st] {
    unsigned char b = 0;
    ssize_t n;
    do {
      n = read(st->fds[0], &b, 1);
    } while (n < 0 && errno == EINTR);
    if (n == 1 && b != 0) st->signal = b;
    if (!st->stopped.exchange(true) && st->on_stop) st->on_stop();
  });
}

StopSignal::~StopSignal() {
  Stop();
  if (state_->waiter.joinable()) state_->waiter.join();
  if (state_->fds[1] >= 0) {
    sigaction(SIGINT, &state_->old_int, nullptr);
    sigaction(SIGTERM, &state_->old_term, nullptr);
    g_stop_pipe = -1;
    close(state_->fds[0]);
    close(state_->fds[1]);
  }
}

void StopSignal::Stop() {
  if (state_->fds[1] < 0) return;
  unsigned char b = 0;
  (void)!write(state_->fds[1], &b, 1);
}

bool StopSignal::stopped() const { return state_->stopped; }
int StopSignal::signal() const { return state_->signal; }

}  // namespace cnet::cli
