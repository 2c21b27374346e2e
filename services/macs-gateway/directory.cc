#include "services/macs-gateway/directory.h"

#include <algorithm>

#include "absl/strings/ascii.h"

namespace cnet::macs {

namespace {

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

std::vector<std::string> ClosestIds(const std::string& id,
                                    const std::vector<std::string>& candidates, int max) {
  std::string lower = absl::AsciiStrToLower(id);
  std::vector<std::pair<size_t, std::string>> scored;
  const size_t limit = std::max<size_t>(2, lower.size() / 3);
  for (const std::string& c : candidates) {
    std::string lc = absl::AsciiStrToLower(c);
    size_t d = EditDistance(lower, lc);
    size_t common = 0;
    while (common < lower.size() && common < lc.size() && lower[common] == lc[common]) ++common;
    if (d <= limit || common >= 3) scored.emplace_back(d, c);
  }
  std::sort(scored.begin(), scored.end());
  std::vector<std::string> out;
  for (const auto& [d, c] : scored) {
    if (static_cast<int>(out.size()) >= max) break;
    out.push_back(c);
  }
  return out;
}

void InMemoryAgentDirectory::Put(AgentInfo agent) {
  absl::MutexLock lock(&mu_);
  std::string id = agent.id;
  agents_[id] = std::move(agent);
}

void InMemoryAgentDirectory::Remove(const std::string& id) {
  absl::MutexLock lock(&mu_);
  agents_.erase(id);
}

void InMemoryAgentDirectory::SetUnavailable(bool unavailable) {
  absl::MutexLock lock(&mu_);
  unavailable_ = unavailable;
}

absl::StatusOr<std::optional<AgentInfo>> InMemoryAgentDirectory::Get(const std::string& id) {
  absl::MutexLock lock(&mu_);
  if (unavailable_) return absl::UnavailableError("registry: not reachable");
  auto it = agents_.find(id);
  if (it == agents_.end()) return std::optional<AgentInfo>();
  return std::optional<AgentInfo>(it->second);
}

absl::StatusOr<std::vector<AgentInfo>> InMemoryAgentDirectory::ListLive(
    const std::string& capability) {
  absl::MutexLock lock(&mu_);
  if (unavailable_) return absl::UnavailableError("registry: not reachable");
  std::vector<AgentInfo> out;
  for (const auto& [id, a] : agents_) {
    if (a.health == claudenet::v1::HEALTH_DEAD) continue;
    if (!capability.empty() &&
        std::find(a.capabilities.begin(), a.capabilities.end(), capability) ==
            a.capabilities.end()) {
      continue;
    }
    out.push_back(a);
  }
  return out;
}

std::vector<std::string> InMemoryAgentDirectory::Suggest(const std::string& id, int max) {
  std::vector<std::string> ids;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [k, unused] : agents_) ids.push_back(k);
  }
  return ClosestIds(id, ids, max);
}

}  // namespace cnet::macs
