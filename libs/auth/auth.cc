#include "libs/auth/auth.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "libs/crypto/crypto.h"

namespace cnet::auth {

absl::StatusOr<Principal> StaticAuthenticator::Authenticate(std::string_view credential) {
  if (!admin_.empty() && crypto::ConstantTimeEquals(credential, admin_)) {
    return Principal{Kind::kAdmin, "admin", ""};
  }
  if (!service_.empty() && crypto::ConstantTimeEquals(credential, service_)) {
    return Principal{Kind::kService, "svc", ""};
  }
  if (next_) return next_->Authenticate(credential);
  return absl::UnauthenticatedError("authorization: unknown credential");
}

namespace {

// Results recorded by the interceptor, keyed by the call's context. An
// entry lives exactly as long as its call's interceptor.
class CallTable {
 public:
  void Put(const grpc::ServerContextBase* ctx, absl::StatusOr<Principal> p) {
    absl::MutexLock lock(&mu_);
    table_.insert_or_assign(ctx, std::move(p));
  }
  void Erase(const grpc::ServerContextBase* ctx) {
    absl::MutexLock lock(&mu_);
    table_.erase(ctx);
  }
  absl::StatusOr<Principal> Get(const grpc::ServerContextBase* ctx) {
    absl::MutexLock lock(&mu_);
    auto it = table_.find(ctx);
    if (it == table_.end()) {
      return absl::InternalError("authentication interceptor is not installed");
    }
    return it->second;
  }

 private:
  absl::Mutex mu_;
  std::unordered_map<const grpc::ServerContextBase*, absl::StatusOr<Principal>> table_
      ABSL_GUARDED_BY(mu_);
};

CallTable& Calls() {
  static CallTable* table = new CallTable();
  return *table;
}

absl::StatusOr<Principal> AuthenticateMetadata(
    Authenticator* authenticator,
    const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) {
  auto it = metadata.find("authorization");
  if (it == metadata.end()) return Principal{};
  std::string value(it->second.data(), it->second.size());
  const std::string kBearer = "Bearer ";
  if (value.size() <= kBearer.size() ||
      !absl::EqualsIgnoreCase(value.substr(0, kBearer.size()), kBearer)) {
    return absl::UnauthenticatedError(
        "authorization: expected \"Bearer <credential>\"");
  }
  std::string credential(absl::StripAsciiWhitespace(value.substr(kBearer.size())));
  absl::StatusOr<Principal> p = authenticator->Authenticate(credential);
  if (!p.ok()) return p;
  auto behalf = metadata.find("claudenet-on-behalf-of");
  if (behalf != metadata.end()) {
    if (p->kind != Kind::kService) {
      return absl::PermissionDeniedError(
          "claudenet-on-behalf-of: only a service credential may act on behalf of an agent");
    }
    p->on_behalf_of = std::string(behalf->second.data(), behalf->second.size());
  }
  return p;
}

// Open streams per caller key, shared by the calls of one server.
class StreamTable {
 public:
  explicit StreamTable(int64_t max) : max_(max) {}
  int64_t max() const { return max_; }
  // True and counted, or false when `key` is at the limit.
  bool Acquire(const std::string& key) {
    absl::MutexLock lock(&mu_);
    int64_t& n = open_[key];
    if (n >= max_) return false;
    ++n;
    return true;
  }
  void Release(const std::string& key) {
    absl::MutexLock lock(&mu_);
    auto it = open_.find(key);
    if (it != open_.end() && --it->second <= 0) open_.erase(it);
  }

 private:
  const int64_t max_;
  absl::Mutex mu_;
  std::unordered_map<std::string, int64_t> open_ ABSL_GUARDED_BY(mu_);
};

constexpr int64_t kStreamRetryMs = 5000;

class AuthInterceptor final : public grpc::experimental::Interceptor {
 public:
  AuthInterceptor(grpc::experimental::ServerRpcInfo* info, Authenticator* authenticator,
                  StreamTable* streams)
      : info_(info), authenticator_(authenticator), streams_(streams) {}
  ~AuthInterceptor() override {
    Calls().Erase(info_->server_context());
    if (!stream_key_.empty()) streams_->Release(stream_key_);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      absl::StatusOr<Principal> p =
          AuthenticateMetadata(authenticator_, *methods->GetRecvInitialMetadata());
      if (p.ok() && streams_ != nullptr &&
          info_->type() != grpc::experimental::ServerRpcInfo::Type::UNARY) {
        std::string key = StreamKey(*p);
        if (streams_->Acquire(key)) {
          stream_key_ = key;
        } else {
          limited_ = true;
          p = absl::ResourceExhaustedError(absl::StrCat(
              "caller \"", key, "\" has ", streams_->max(),
              " streams open on this service (limits.max_streams_per_caller); close one or "
              "retry after ", kStreamRetryMs / 1000, "s"));
        }
      }
      Calls().Put(info_->server_context(), std::move(p));
    }
    if (limited_ && methods->QueryInterceptionHookPoint(
                        grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      std::multimap<std::string, std::string>* trailers = methods->GetSendTrailingMetadata();
      if (trailers != nullptr && trailers->find("claudenet-retry-after-ms") == trailers->end()) {
        trailers->emplace("claudenet-retry-after-ms", std::to_string(kStreamRetryMs));
      }
    }
    methods->Proceed();
  }

 private:
  std::string StreamKey(const Principal& p) const {
    std::string acting = p.acting_agent();
    if (!acting.empty()) return acting;
    if (p.kind != Kind::kAnonymous) return p.id;
    // Anonymous: per peer address ("ipv4:127.0.0.1:5555" -> without port).
    std::string peer = info_->server_context()->peer();
    size_t colon = peer.rfind(':');
    return "anonymous@" + (colon == std::string::npos ? peer : peer.substr(0, colon));
  }

  grpc::experimental::ServerRpcInfo* info_;
  Authenticator* authenticator_;
  StreamTable* streams_;
  std::string stream_key_;  // held stream slot, released at the end of the call
  bool limited_ = false;
};

class AuthInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  AuthInterceptorFactory(std::shared_ptr<Authenticator> a, InterceptorOptions options)
      : a_(std::move(a)),
        streams_(options.max_streams_per_caller > 0
                     ? std::make_unique<StreamTable>(options.max_streams_per_caller)
                     : nullptr) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    return new AuthInterceptor(info, a_.get(), streams_.get());
  }

 private:
  std::shared_ptr<Authenticator> a_;
  std::unique_ptr<StreamTable> streams_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeAuthInterceptorFactory(std::shared_ptr<Authenticator> authenticator) {
  return std::make_unique<AuthInterceptorFactory>(std::move(authenticator),
                                                  InterceptorOptions());
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeAuthInterceptorFactory(InterceptorOptions options,
                           std::shared_ptr<Authenticator> authenticator) {
  return std::make_unique<AuthInterceptorFactory>(std::move(authenticator), options);
}

absl::StatusOr<Principal> Caller(const grpc::ServerContextBase* context) {
  return Calls().Get(context);
}

absl::StatusOr<Principal> RequireAuthenticated(const grpc::ServerContextBase* context) {
  absl::StatusOr<Principal> p = Caller(context);
  if (p.ok() && p->kind == Kind::kAnonymous) {
    return absl::UnauthenticatedError(
        "authorization: this call needs a credential (\"Bearer <token>\")");
  }
  return p;
}

absl::StatusOr<Principal> RequireAdmin(const grpc::ServerContextBase* context) {
  absl::StatusOr<Principal> p = RequireAuthenticated(context);
  if (p.ok() && p->kind != Kind::kAdmin) {
    return absl::PermissionDeniedError("this call needs the admin credential");
  }
  return p;
}

absl::StatusOr<Principal> RequireActingAs(const grpc::ServerContextBase* context,
                                          std::string* agent_id) {
  absl::StatusOr<Principal> p = RequireAuthenticated(context);
  if (!p.ok()) return p;
  if (p->kind == Kind::kAdmin) {
    if (agent_id->empty()) {
      return absl::InvalidArgumentError("agent_id: required when calling as admin");
    }
    return p;
  }
  std::string acting = p->acting_agent();
  if (acting.empty()) {
    return absl::PermissionDeniedError(
        "a service credential must name the agent in claudenet-on-behalf-of");
  }
  if (agent_id->empty()) {
    *agent_id = acting;
  } else if (*agent_id != acting) {
    return absl::PermissionDeniedError(absl::StrCat(
        "agent \"", acting, "\" may not act as agent \"", *agent_id, "\""));
  }
  return p;
}

absl::StatusOr<std::string> LoadOrCreateSecret(const std::string& path) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::ifstream in(path);
    if (in) {
      std::string secret;
      std::getline(in, secret);
      secret = std::string(absl::StripAsciiWhitespace(secret));
      if (!secret.empty()) return secret;
      // Empty: another process is between create and write. Fall through
      // and wait for it by retrying the read once below.
    }
    std::string fresh = crypto::HexEncode(crypto::RandomBytes(32));
    std::string tmp = absl::StrCat(path, ".tmp.", crypto::HexEncode(crypto::RandomBytes(8)));
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot create ", tmp, ": ", std::strerror(errno)));
    }
    std::string line = fresh + "\n";
    bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
              ::fsync(fd) == 0;
    ::close(fd);
    // link() fails if the target exists: the first creator wins and
    // everybody reads its secret.
    int linked = ok ? ::link(tmp.c_str(), path.c_str()) : -1;
    int link_errno = errno;
    ::unlink(tmp.c_str());
    if (linked == 0) return fresh;
    if (!ok || link_errno != EEXIST) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot create ", path, ": ", std::strerror(link_errno)));
    }
  }
  return absl::FailedPreconditionError(absl::StrCat("cannot read secret file ", path));
}

absl::StatusOr<std::string> AdminToken(std::string_view configured,
                                       const std::string& data_dir) {
  if (!configured.empty()) return std::string(configured);
  return LoadOrCreateSecret(data_dir + "/admin.token");
}

absl::StatusOr<std::string> ServiceCredential(std::string_view configured,
                                              const std::string& data_dir) {
  if (!configured.empty()) return std::string(configured);
  return LoadOrCreateSecret(data_dir + "/service.token");
}

void SetBearer(grpc::ClientContext* context, std::string_view credential) {
  context->AddMetadata("authorization", absl::StrCat("Bearer ", std::string(credential)));
}

}  // namespace cnet::auth
