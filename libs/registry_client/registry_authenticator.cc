#include "libs/registry_client/registry_authenticator.h"

#include "absl/strings/str_cat.h"
#include "libs/crypto/crypto.h"

namespace cnet::registry_client {
namespace pb = claudenet::v1;

RegistryAuthenticator::RegistryAuthenticator(std::shared_ptr<RegistryClient> client)
    : RegistryAuthenticator(std::move(client), Options()) {}

RegistryAuthenticator::RegistryAuthenticator(std::shared_ptr<RegistryClient> client,
                                             Options options)
    : client_(std::move(client)), options_(options) {
  if (options_.watch_invalidations) {
    pb::WatchAgentsRequest request;
    request.add_event_types(pb::AGENT_EVENT_TYPE_TOKEN_ROTATED);
    request.add_event_types(pb::AGENT_EVENT_TYPE_DEREGISTERED);
    request.add_event_types(pb::AGENT_EVENT_TYPE_PRUNED);
    watch_ = client_->Watch(
        request, [this](const pb::AgentEvent& event) { OnEvent(event); },
        /*resync_with_snapshot=*/false);
  }
}

RegistryAuthenticator::~RegistryAuthenticator() {
  if (watch_) watch_->Stop();
}

void RegistryAuthenticator::OnEvent(const pb::AgentEvent& event) {
  switch (event.type()) {
    case pb::AGENT_EVENT_TYPE_TOKEN_ROTATED:
    case pb::AGENT_EVENT_TYPE_DEREGISTERED:
    case pb::AGENT_EVENT_TYPE_PRUNED:
      Invalidate(event.agent().id());
      break;
    case pb::AGENT_EVENT_TYPE_RESYNC_REQUIRED:
      // Events were missed: any cached answer may be stale.
      Clear();
      break;
    default:
      break;
  }
}

void RegistryAuthenticator::Invalidate(const std::string& agent_id) {
  absl::MutexLock lock(&mu_);
  ++epoch_;
  auto it = by_agent_.find(agent_id);
  if (it == by_agent_.end()) return;
  for (const std::string& hash : it->second) by_hash_.erase(hash);
  by_agent_.erase(it);
}

void RegistryAuthenticator::Clear() {
  absl::MutexLock lock(&mu_);
  ++epoch_;
  by_hash_.clear();
  by_agent_.clear();
}

size_t RegistryAuthenticator::cached() const {
  absl::MutexLock lock(&mu_);
  return by_hash_.size();
}

int64_t RegistryAuthenticator::validations() const {
  absl::MutexLock lock(&mu_);
  return validations_;
}

absl::StatusOr<auth::Principal> RegistryAuthenticator::Authenticate(
    std::string_view credential) {
  if (credential.empty() || credential.size() > 512) {
    return absl::UnauthenticatedError("authorization: malformed credential");
  }
  const std::string hash = crypto::Sha256(credential);
  uint64_t epoch;
  {
    absl::MutexLock lock(&mu_);
    auto it = by_hash_.find(hash);
    if (it != by_hash_.end()) {
      if (options_.clock->Now() < it->second.expires) return it->second.principal;
      by_agent_[it->second.principal.id].erase(hash);
      by_hash_.erase(it);
    }
    epoch = epoch_;
    ++validations_;
  }
  absl::StatusOr<pb::ValidateTokenResponse> answer =
      client_->ValidateToken(std::string(credential));
  if (!answer.ok()) {
    switch (answer.status().code()) {
      case absl::StatusCode::kInvalidArgument:
        return absl::UnauthenticatedError("authorization: malformed credential");
      case absl::StatusCode::kUnauthenticated:
      case absl::StatusCode::kPermissionDenied:
        return absl::InternalError(absl::StrCat(
            "the registry refused this service's credential when validating a token: ",
            std::string(answer.status().message())));
      default:
        return absl::UnavailableError(absl::StrCat(
            "cannot validate the token: registry unavailable (",
            std::string(answer.status().message()), ")"));
    }
  }
  if (!answer->valid()) {
    switch (answer->invalid_reason()) {
      case pb::TOKEN_INVALID_REASON_ROTATED:
        return absl::UnauthenticatedError("authorization: the token was rotated");
      case pb::TOKEN_INVALID_REASON_AGENT_REMOVED:
        return absl::UnauthenticatedError(
            "authorization: the token's agent was deregistered or pruned");
      default:
        return absl::UnauthenticatedError("authorization: unknown credential");
    }
  }
  auth::Principal principal{auth::Kind::kAgent, answer->principal().id(), ""};
  absl::Duration ttl = std::min(
      absl::Nanoseconds(answer->cache_for().seconds() * 1'000'000'000LL +
                        answer->cache_for().nanos()),
      options_.max_cache_for);
  if (ttl <= absl::ZeroDuration()) return principal;
  absl::MutexLock lock(&mu_);
  if (epoch != epoch_) return principal;  // an invalidation raced this answer
  if (by_hash_.size() >= options_.max_entries) {
    // Full: drop expired entries, then (if still full) everything.
    absl::Time now = options_.clock->Now();
    for (auto it = by_hash_.begin(); it != by_hash_.end();) {
      if (it->second.expires <= now) {
        by_agent_[it->second.principal.id].erase(it->first);
        by_hash_.erase(it++);
      } else {
        ++it;
      }
    }
    if (by_hash_.size() >= options_.max_entries) {
      by_hash_.clear();
      by_agent_.clear();
    }
  }
  by_hash_[hash] = Entry{principal, options_.clock->Now() + ttl};
  by_agent_[principal.id].insert(hash);
  return principal;
}

}  // namespace cnet::registry_client
