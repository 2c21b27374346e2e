// Agent-token authentication for services other than the registry: plugs
// into the shared auth interceptor (libs/auth) as the `next` authenticator
// after the static admin/service credentials.
//
//   auto registry = std::make_shared<registry_client::RegistryClient>(options);
//   auto tokens = std::make_shared<registry_client::RegistryAuthenticator>(registry);
//   server_options.interceptors.push_back(auth::MakeAuthInterceptorFactory(
//       std::make_shared<auth::StaticAuthenticator>(admin, service, tokens)));
//
// Each unknown token is checked once with the registry's ValidateToken
// (with the client's service credential and deadline); valid answers are
// cached for the cache_for the registry grants (capped by max_cache_for).
// A Watch on TOKEN_ROTATED / DEREGISTERED / PRUNED drops the cached
// answers of that agent at once; if the watch had to resynchronize, the
// whole cache is dropped.
//
// Results, so callers can tell the two failures apart:
//   - bad token (unknown, rotated, revoked, malformed): UNAUTHENTICATED;
//   - registry unreachable or too slow: UNAVAILABLE (retry later);
//   - the registry refused this service's own credential: INTERNAL
//     (a configuration error, not the caller's fault).
#ifndef CNET_LIBS_REGISTRY_CLIENT_REGISTRY_AUTHENTICATOR_H_
#define CNET_LIBS_REGISTRY_CLIENT_REGISTRY_AUTHENTICATOR_H_

#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "libs/auth/auth.h"
#include "libs/clock/clock.h"
#include "libs/registry_client/registry_client.h"

namespace cnet::registry_client {

class RegistryAuthenticator final : public auth::Authenticator {
 public:
  struct Options {
    // Upper bound on how long a valid answer is trusted.
    absl::Duration max_cache_for = absl::Seconds(30);
    // Cached tokens; when full, expired entries (then all) are dropped.
    size_t max_entries = 100'000;
    // Watch the registry for rotations and removals (disable only in tests
    // of the cache itself).
    bool watch_invalidations = true;
    // Expiry of cached answers is judged on this clock.
    Clock* clock = RealClock::Default();
  };

  explicit RegistryAuthenticator(std::shared_ptr<RegistryClient> client);
  RegistryAuthenticator(std::shared_ptr<RegistryClient> client, Options options);
  ~RegistryAuthenticator() override;

  absl::StatusOr<auth::Principal> Authenticate(std::string_view credential) override;

  // Drops the cached answers of one agent / of everybody.
  void Invalidate(const std::string& agent_id);
  void Clear();
  size_t cached() const;
  // Tokens checked with the registry so far (cache misses).
  int64_t validations() const;
  // The invalidation watch (null when disabled), e.g. to wait until an
  // event was applied: watch()->WaitForSequence(n, timeout).
  const WatchSubscription* watch() const { return watch_.get(); }

 private:
  struct Entry {
    auth::Principal principal;
    absl::Time expires;
  };
  void OnEvent(const claudenet::v1::AgentEvent& event);

  const std::shared_ptr<RegistryClient> client_;
  const Options options_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> by_hash_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, absl::flat_hash_set<std::string>> by_agent_
      ABSL_GUARDED_BY(mu_);
  // Bumped by every invalidation: an answer obtained across one is not cached.
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t validations_ ABSL_GUARDED_BY(mu_) = 0;
  std::unique_ptr<WatchSubscription> watch_;
};

}  // namespace cnet::registry_client

#endif  // CNET_LIBS_REGISTRY_CLIENT_REGISTRY_AUTHENTICATOR_H_
