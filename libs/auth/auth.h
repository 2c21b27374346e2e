// Who is calling: the credentials of the suite and the one server
// interceptor that checks them for every rpc of every service.
//
// A call carries at most one credential, `authorization: Bearer <cred>`
// (see proto/claudenet/v1/common.proto). The interceptor authenticates it
// once per call through an Authenticator and records the result; handlers
// then ask Caller(context) and apply their own per-rpc rule (RequireAdmin,
// RequireAgent, ...). Missing or unknown credentials are UNAUTHENTICATED; a
// valid credential that may not do the call is PERMISSION_DENIED.
//
// Local secrets: when security.admin_token / security.service_credential are
// not configured, the first service to need one creates it in
// <data_dir>/admin.token / service.token (mode 0600, 256 random bits), and
// local tools (cnet) read it from there: being able to read the data
// directory is what makes a local user an admin.
#ifndef CNET_LIBS_AUTH_AUTH_H_
#define CNET_LIBS_AUTH_AUTH_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace cnet::auth {

enum class Kind { kAnonymous, kAgent, kService, kAdmin };

struct Principal {
  Kind kind = Kind::kAnonymous;
  std::string id;            // agent id; "admin"; "svc"; empty when anonymous
  std::string on_behalf_of;  // service calls acting for an agent
  // The agent this call acts as: the agent itself, or on_behalf_of for a
  // service call; empty otherwise.
  std::string acting_agent() const {
    return kind == Kind::kAgent ? id : (kind == Kind::kService ? on_behalf_of : "");
  }
};

// Turns a bearer credential into a principal. NOT thread-hostile: called
// concurrently from the interceptor.
class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // UNAUTHENTICATED for an unknown, revoked or malformed credential.
  virtual absl::StatusOr<Principal> Authenticate(std::string_view credential) = 0;
};

// Recognises the admin and service credentials (constant-time compare) and
// hands anything else to `next` (e.g. the registry's agent tokens), or
// rejects it when there is no next.
class StaticAuthenticator final : public Authenticator {
 public:
  StaticAuthenticator(std::string admin_token, std::string service_credential,
                      std::shared_ptr<Authenticator> next = nullptr)
      : admin_(std::move(admin_token)),
        service_(std::move(service_credential)),
        next_(std::move(next)) {}
  absl::StatusOr<Principal> Authenticate(std::string_view credential) override;

 private:
  const std::string admin_;
  const std::string service_;
  const std::shared_ptr<Authenticator> next_;
};

// The interceptor factory to pass in ServerOptions::interceptors.
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeAuthInterceptorFactory(std::shared_ptr<Authenticator> authenticator);

struct InterceptorOptions {
  // Streaming calls (server, client or bidi streams: Subscribe, Watch,
  // WatchRun, WatchStats, WatchConfig, HeartbeatStream) one caller may have
  // open at once on this server, all methods together; config
  // limits.max_streams_per_caller. The caller is the acting agent (or
  // "admin" / "svc"); anonymous callers count per peer address. One more is
  // RESOURCE_EXHAUSTED (Caller() reports it; the interceptor adds
  // `claudenet-retry-after-ms`). 0 = no limit.
  int64_t max_streams_per_caller = 0;
};
std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>
MakeAuthInterceptorFactory(InterceptorOptions options,
                           std::shared_ptr<Authenticator> authenticator);

// The authenticated caller of the current rpc (ANONYMOUS when no credential
// was given), or the UNAUTHENTICATED status the interceptor recorded.
absl::StatusOr<Principal> Caller(const grpc::ServerContextBase* context);

// Per-rpc rules; each returns the principal or the status to answer.
absl::StatusOr<Principal> RequireAuthenticated(const grpc::ServerContextBase* context);
absl::StatusOr<Principal> RequireAdmin(const grpc::ServerContextBase* context);
// The caller must be `agent_id` (itself, or a service on its behalf), or an
// admin. Empty agent_id means "the caller": resolved into *agent_id.
absl::StatusOr<Principal> RequireActingAs(const grpc::ServerContextBase* context,
                                          std::string* agent_id);

// Reads the secret at `path`, or creates it (0600, 64 hex chars) if absent.
// Safe when several processes race to create it.
absl::StatusOr<std::string> LoadOrCreateSecret(const std::string& path);

// The admin / service credential: the configured value if non-empty, else
// the local file in data_dir (created if needed).
absl::StatusOr<std::string> AdminToken(std::string_view configured,
                                       const std::string& data_dir);
absl::StatusOr<std::string> ServiceCredential(std::string_view configured,
                                              const std::string& data_dir);

// Adds the bearer credential to an outgoing call.
void SetBearer(grpc::ClientContext* context, std::string_view credential);

}  // namespace cnet::auth

#endif  // CNET_LIBS_AUTH_AUTH_H_
