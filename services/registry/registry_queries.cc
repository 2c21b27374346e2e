// Registry core: discovery and other reads, served from the in-memory
// indexes under the shared lock. Postings (all agents, per capability, per
// node) are ordered by id; scans read the compact per-slot arrays (flags,
// rank, node) and touch an agent's entry only when a filter needs it.
#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/crypto/crypto.h"
#include "libs/status/macros.h"
#include "services/registry/agent_card.h"
#include "services/registry/registry.h"
#include "services/registry/registry_internal.h"
#include "services/registry/validation.h"

namespace cnet::registry {
namespace pb = claudenet::v1;
using internal::AgentNotFound;
using internal::ToProto;

namespace {

// Page tokens: web-safe base64 of "<filter hash>|<order>|<cursor>".
std::string EncodePageToken(const std::string& filter_hash, int order, const std::string& cursor) {
  std::string out;
  absl::WebSafeBase64Escape(absl::StrCat(filter_hash, "|", order, "|", cursor), &out);
  return out;
}

absl::Status BadPageToken(std::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("page_token: ", std::string(why)));
}

absl::StatusOr<std::string> DecodePageToken(const std::string& token,
                                            const std::string& filter_hash, int order) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) return BadPageToken("cannot be decoded");
  std::vector<std::string> parts = absl::StrSplit(raw, absl::MaxSplits('|', 2));
  int token_order = 0;
  if (parts.size() != 3 || !absl::SimpleAtoi(parts[1], &token_order)) {
    return BadPageToken("cannot be decoded");
  }
  if (parts[0] != filter_hash || token_order != order) {
    return BadPageToken("was issued for different filters or ordering");
  }
  return parts[2];
}

std::string FilterHash(const google::protobuf::Message& request) {
  std::string bytes;
  request.SerializeToString(&bytes);
  return crypto::HexEncode(crypto::Sha256(bytes).substr(0, 8));
}

absl::Status CheckListRequest(const pb::ListAgentsRequest& r) {
  if (r.page_size() < 0 || r.page_size() > kMaxPageSize) {
    return Invalid("page_size", absl::StrCat(r.page_size(), " is outside 0..1000"));
  }
  CNET_RETURN_IF_ERROR(
      CheckCapabilities("capabilities_all", r.capabilities_all(), kMaxFilterValues));
  CNET_RETURN_IF_ERROR(
      CheckCapabilities("capabilities_any", r.capabilities_any(), kMaxFilterValues));
  for (int i = 0; i < r.statuses_size(); ++i) {
    CNET_RETURN_IF_ERROR(CheckStatus(absl::StrCat("statuses[", i, "]"), r.statuses(i)));
  }
  for (int i = 0; i < r.healths_size(); ++i) {
    CNET_RETURN_IF_ERROR(CheckHealth(absl::StrCat("healths[", i, "]"), r.healths(i)));
  }
  if (r.nodes_size() > kMaxIdList) {
    return Invalid("nodes", absl::StrCat(r.nodes_size(), " nodes, at most 1000"));
  }
  for (int i = 0; i < r.nodes_size(); ++i) {
    CNET_RETURN_IF_ERROR(CheckNodeName(absl::StrCat("nodes[", i, "]"), r.nodes(i)));
  }
  CNET_RETURN_IF_ERROR(CheckText("name_prefix", r.name_prefix(), kMaxNameBytes));
  CNET_RETURN_IF_ERROR(CheckLocality("locality", r.locality()));
  for (int i = 0; i < r.kinds_size(); ++i) {
    CNET_RETURN_IF_ERROR(CheckKind(absl::StrCat("kinds[", i, "]"), r.kinds(i)));
  }
  if (r.order_by() < 0 || r.order_by() > pb::AgentOrder_MAX) {
    return Invalid("order_by", absl::StrCat("unknown ordering ", r.order_by()));
  }
  return absl::OkStatus();
}

// Sort key of the name and last-heartbeat orderings.
struct SortKey {
  std::string_view text;  // name ordering
  int64_t number = 0;     // last-heartbeat ordering (most recent first)
  std::string_view id;
};

}  // namespace

absl::StatusOr<pb::Agent> Registry::GetAgent(const std::string& agent_id) const {
  CNET_RETURN_IF_ERROR(CheckAgentId("agent_id", agent_id));
  absl::ReaderMutexLock lock(&mu_);
  Entry* e = FindLocked(agent_id);
  if (e == nullptr) return AgentNotFound(agent_id);
  return ViewLocked(*e, clock_->Now());
}

absl::StatusOr<Registry::ListQuery> Registry::ResolveListLocked(
    const pb::ListAgentsRequest& r) const {
  ListQuery q;
  for (const std::string& c : r.capabilities_all()) {
    auto it = cap_ids_.find(c);
    if (it == cap_ids_.end()) {
      q.empty = true;
      return q;
    }
    q.caps_all.push_back(it->second);
  }
  std::sort(q.caps_all.begin(), q.caps_all.end());
  q.caps_all.erase(std::unique(q.caps_all.begin(), q.caps_all.end()), q.caps_all.end());
  for (const std::string& c : r.capabilities_any()) {
    auto it = cap_ids_.find(c);
    if (it != cap_ids_.end()) q.caps_any.push_back(it->second);
  }
  if (!r.capabilities_any().empty() && q.caps_any.empty()) {
    q.empty = true;
    return q;
  }
  for (const std::string& n : r.nodes()) {
    auto it = node_ids_.find(n);
    if (it != node_ids_.end()) q.nodes.insert(it->second);
  }
  if (!r.nodes().empty() && q.nodes.empty()) {
    q.empty = true;
    return q;
  }
  for (int s : r.statuses()) q.status_mask |= 1u << s;
  for (int h : r.healths()) q.health_mask |= 1u << h;
  if (r.kinds_size() > 0) {
    q.want_ai = q.want_human = false;
    for (int k : r.kinds()) {
      if (k == pb::AGENT_KIND_HUMAN) {
        q.want_human = true;
      } else {
        q.want_ai = true;  // UNSPECIFIED means AI
      }
    }
  }
  q.locality = r.locality();
  q.name_prefix = r.name_prefix();
  // The smallest posting list that every match is in.
  const Posting* cap_posting = nullptr;
  for (uint32_t c : q.caps_all) {
    if (cap_posting == nullptr || caps_[c].posting.size() < cap_posting->size()) {
      cap_posting = &caps_[c].posting;
    }
  }
  if (cap_posting == nullptr && q.caps_any.size() == 1) cap_posting = &caps_[q.caps_any[0]].posting;
  q.posting = cap_posting;
  if (q.posting == nullptr && q.nodes.size() == 1) q.posting = &nodes_[*q.nodes.begin()].posting;
  if (q.posting == nullptr) q.posting = all_.get();
  // Capability filters the chosen posting does not already guarantee.
  q.check_caps = q.caps_all.size() > 1 || q.caps_any.size() > 1 ||
                 (!q.caps_all.empty() && !q.caps_any.empty());
  for (uint32_t c : q.caps_all) {
    if (c < 64) {
      q.all_bits |= uint64_t{1} << c;
    } else {
      q.caps_on_entry = true;
    }
  }
  for (uint32_t c : q.caps_any) {
    if (c < 64) {
      q.any_bits |= uint64_t{1} << c;
    } else {
      q.caps_on_entry = true;
    }
  }
  size_t filters = q.caps_all.size() + q.caps_any.size() + q.nodes.size() +
                   (q.status_mask != 0) + (q.health_mask != 0) + (r.kinds_size() > 0) +
                   (q.locality != pb::LOCALITY_UNSPECIFIED) + !q.name_prefix.empty();
  q.posting_is_exact = filters == 0 || (filters == 1 && q.posting != all_.get());
  return q;
}

bool Registry::MatchesLocked(const ListQuery& q, uint32_t slot) const {
  const uint8_t f = flags_[slot];
  if (q.status_mask != 0 && !(q.status_mask & (1u << internal::StatusOf(f)))) return false;
  if (q.health_mask != 0 && !(q.health_mask & (1u << internal::HealthOf(f)))) return false;
  if (!((f & internal::kHumanBit) ? q.want_human : q.want_ai)) return false;
  if (q.locality == pb::LOCALITY_LOCAL && (f & internal::kRemoteBit)) return false;
  if (q.locality == pb::LOCALITY_REMOTE && !(f & internal::kRemoteBit)) return false;
  if (!q.nodes.empty() && !q.nodes.contains(node_of_[slot])) return false;
  if (q.check_caps) {
    const uint64_t bits = cap_bits_[slot];
    if ((bits & q.all_bits) != q.all_bits) return false;
    if (!q.caps_on_entry && !q.caps_any.empty() && (bits & q.any_bits) == 0) return false;
  }
  if ((q.check_caps && q.caps_on_entry) || !q.name_prefix.empty()) {
    const Entry& e = *entries_[slot];
    if (q.check_caps && q.caps_on_entry) {
      for (uint32_t c : q.caps_all) {
        if (!std::binary_search(e.caps.begin(), e.caps.end(), c)) return false;
      }
      if (!q.caps_any.empty()) {
        bool any = false;
        for (uint32_t c : q.caps_any) {
          any = any || std::binary_search(e.caps.begin(), e.caps.end(), c);
        }
        if (!any) return false;
      }
    }
    if (!q.name_prefix.empty() && !absl::StartsWith(e.v.agent.name(), q.name_prefix)) {
      return false;
    }
  }
  return true;
}

absl::StatusOr<pb::ListAgentsResponse> Registry::ListAgents(const pb::ListAgentsRequest& r) const {
  CNET_RETURN_IF_ERROR(CheckListRequest(r));
  absl::ReaderMutexLock lock(&mu_);
  return ListLocked(r, clock_->Now());
}

absl::StatusOr<pb::ListAgentsResponse> Registry::ListLocked(const pb::ListAgentsRequest& r,
                                                            absl::Time now) const {
  pb::ListAgentsRequest canonical = r;
  canonical.clear_page_size();
  canonical.clear_page_token();
  const int order = r.order_by() == pb::AGENT_ORDER_UNSPECIFIED ? pb::AGENT_ORDER_ID
                                                                : r.order_by();
  canonical.set_order_by(static_cast<pb::AgentOrder>(order));
  const std::string filter_hash = FilterHash(canonical);
  std::string cursor;
  const bool has_cursor = !r.page_token().empty();
  if (has_cursor) {
    CNET_ASSIGN_OR_RETURN(cursor, DecodePageToken(r.page_token(), filter_hash, order));
  }
  const size_t page_size = r.page_size() == 0 ? kDefaultPageSize : r.page_size();
  // The cursor's sort key: "<name length>:<name><id>" or "<ns>:<id>".
  SortKey after;
  std::string cursor_text;
  if (has_cursor && order != pb::AGENT_ORDER_ID) {
    size_t colon = cursor.find(':');
    int64_t number = 0;
    if (colon == std::string::npos || !absl::SimpleAtoi(cursor.substr(0, colon), &number)) {
      return BadPageToken("cannot be decoded");
    }
    std::string rest = cursor.substr(colon + 1);
    if (order == pb::AGENT_ORDER_NAME) {
      if (number < 0 || static_cast<size_t>(number) > rest.size()) {
        return BadPageToken("cannot be decoded");
      }
      cursor_text = rest.substr(0, number);
      cursor = rest.substr(number);
    } else {
      after.number = number;
      cursor = rest;
    }
    after.text = cursor_text;
  }
  after.id = cursor;

  pb::ListAgentsResponse response;
  CNET_ASSIGN_OR_RETURN(ListQuery q, ResolveListLocked(r));
  if (q.empty) return response;
  std::vector<uint32_t> page;
  bool more = false;
  int64_t total = 0;
  if (order == pb::AGENT_ORDER_ID) {
    if (q.posting_is_exact) {
      total = static_cast<int64_t>(q.posting->size());
      const auto& ordered = q.posting->ordered();
      auto it = has_cursor ? ordered.upper_bound(IdKey(cursor, UINT32_MAX)) : ordered.begin();
      for (; it != ordered.end(); ++it) {
        if (page.size() == page_size) {
          more = true;
          break;
        }
        page.push_back(it->second);
      }
    } else {
      const std::vector<uint32_t>& slots = q.posting->Scan();
      // Position after the cursor (binary search on ids), then one pass
      // that counts every match and keeps a page of those after it.
      size_t start = 0;
      if (has_cursor) {
        start = std::upper_bound(slots.begin(), slots.end(), std::string_view(cursor),
                                 [this](std::string_view id, uint32_t slot) {
                                   return id < std::string_view(entries_[slot]->id);
                                 }) -
                slots.begin();
      }
      for (size_t i = 0; i < slots.size(); ++i) {
        const uint32_t slot = slots[i];
        if (!MatchesLocked(q, slot)) continue;
        ++total;
        if (i < start) continue;
        if (page.size() == page_size) {
          more = true;
          continue;
        }
        page.push_back(slot);
      }
    }
  } else {
    struct Candidate {
      SortKey key;
      uint32_t slot;
    };
    auto less = [order](const SortKey& a, const SortKey& b) {
      if (order == pb::AGENT_ORDER_NAME) {
        if (a.text != b.text) return a.text < b.text;
      } else if (a.number != b.number) {
        return a.number > b.number;  // most recent first
      }
      return a.id < b.id;
    };
    std::vector<Candidate> candidates;
    for (uint32_t slot : q.posting->Scan()) {
      if (!q.posting_is_exact && !MatchesLocked(q, slot)) continue;
      ++total;
      const Entry& e = *entries_[slot];
      SortKey k;
      k.id = e.id;
      if (order == pb::AGENT_ORDER_NAME) {
        k.text = e.v.agent.name();
      } else {
        k.number = rank_[slot].last_seen_ns;
      }
      if (has_cursor && !less(after, k)) continue;
      candidates.push_back({k, slot});
    }
    size_t take = std::min(candidates.size(), page_size + 1);
    std::partial_sort(
        candidates.begin(), candidates.begin() + take, candidates.end(),
        [&less](const Candidate& a, const Candidate& b) { return less(a.key, b.key); });
    more = candidates.size() > page_size;
    for (size_t i = 0; i < std::min(candidates.size(), page_size); ++i) {
      page.push_back(candidates[i].slot);
    }
  }
  response.set_total_size(total);
  for (uint32_t slot : page) *response.add_agents() = ViewLocked(*entries_[slot], now);
  if (more && !page.empty()) {
    const Entry& last = *entries_[page.back()];
    std::string next;
    if (order == pb::AGENT_ORDER_ID) {
      next = last.id;
    } else if (order == pb::AGENT_ORDER_NAME) {
      next = absl::StrCat(last.v.agent.name().size(), ":", last.v.agent.name(), last.id);
    } else {
      next = absl::StrCat(rank_[last.slot].last_seen_ns, ":", last.id);
    }
    response.set_next_page_token(EncodePageToken(filter_hash, order, next));
  }
  return response;
}

absl::StatusOr<pb::FindAgentsResponse> Registry::FindAgents(const pb::FindAgentsRequest& r) const {
  CNET_RETURN_IF_ERROR(CheckCapabilities("capabilities", r.capabilities(), kMaxFilterValues));
  if (r.limit() < 0 || r.limit() > kMaxPageSize) {
    return Invalid("limit", absl::StrCat(r.limit(), " is outside 0..1000"));
  }
  if (r.exclude_agent_ids_size() > kMaxIdList) {
    return Invalid("exclude_agent_ids",
                   absl::StrCat(r.exclude_agent_ids_size(), " ids, at most 1000"));
  }
  for (int i = 0; i < r.exclude_agent_ids_size(); ++i) {
    CNET_RETURN_IF_ERROR(
        CheckAgentId(absl::StrCat("exclude_agent_ids[", i, "]"), r.exclude_agent_ids(i)));
  }
  CNET_RETURN_IF_ERROR(CheckLocality("locality", r.locality()));
  uint32_t status_mask = 0;
  for (int i = 0; i < r.statuses_size(); ++i) {
    CNET_RETURN_IF_ERROR(CheckStatus(absl::StrCat("statuses[", i, "]"), r.statuses(i)));
    status_mask |= 1u << r.statuses(i);
  }
  if (status_mask == 0) {
    status_mask = (1u << pb::AGENT_STATUS_ONLINE) | (1u << pb::AGENT_STATUS_BUSY);
  }
  // Acceptable flags: HEALTHY, an accepted status, an AI agent, locality.
  bool accept[256];
  for (int f = 0; f < 256; ++f) {
    bool remote = f & internal::kRemoteBit;
    accept[f] = internal::HealthOf(f) == pb::HEALTH_HEALTHY &&
                (status_mask & (1u << internal::StatusOf(f))) && !(f & internal::kHumanBit) &&
                !(r.locality() == pb::LOCALITY_LOCAL && remote) &&
                !(r.locality() == pb::LOCALITY_REMOTE && !remote);
  }
  const size_t limit = r.limit() == 0 ? 10 : r.limit();

  absl::ReaderMutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  pb::FindAgentsResponse response;
  std::vector<uint32_t> caps;
  const Posting* posting = nullptr;
  for (const std::string& c : r.capabilities()) {
    auto it = cap_ids_.find(c);
    if (it == cap_ids_.end()) return response;
    caps.push_back(it->second);
    const Posting* p = &caps_[it->second].posting;
    if (posting == nullptr || p->size() < posting->size()) posting = p;
  }
  if (posting == nullptr) posting = all_.get();
  std::sort(caps.begin(), caps.end());
  caps.erase(std::unique(caps.begin(), caps.end()), caps.end());
  uint64_t required_bits = 0;
  bool caps_on_entry = false;
  for (uint32_t c : caps) {
    if (c < 64) {
      required_bits |= uint64_t{1} << c;
    } else {
      caps_on_entry = true;
    }
  }
  const uint64_t* cap_bits = cap_bits_.data();
  absl::flat_hash_set<uint32_t> excluded;
  for (const std::string& id : r.exclude_agent_ids()) {
    auto it = by_id_.find(id);
    if (it != by_id_.end()) excluded.insert(it->second);
  }
  struct Candidate {
    float utilisation;
    float load;
    int64_t last_seen_ns;
    uint32_t slot;
  };
  // Ties (rare: heartbeat times are in nanoseconds) are broken by id.
  auto better = [this](const Candidate& a, const Candidate& b) {
    if (a.utilisation != b.utilisation) return a.utilisation < b.utilisation;
    if (a.load != b.load) return a.load < b.load;
    if (a.last_seen_ns != b.last_seen_ns) return a.last_seen_ns > b.last_seen_ns;
    return entries_[a.slot]->id < entries_[b.slot]->id;
  };
  // A max-heap of the best `limit` so far: its top is the worst kept.
  std::vector<Candidate> heap;
  heap.reserve(limit + 1);
  int64_t total = 0;
  const uint8_t* flags = flags_.data();
  const internal::Rank* ranks = rank_.data();
  for (const uint32_t slot : posting->Scan()) {
    if (!accept[flags[slot]]) continue;
    const internal::Rank& rank = ranks[slot];
    if (r.only_with_capacity() && rank.active_tasks >= rank.capacity) continue;
    if (!excluded.empty() && excluded.contains(slot)) continue;
    if (caps.size() > 1) {
      if ((cap_bits[slot] & required_bits) != required_bits) continue;
      if (caps_on_entry) {
        const std::vector<uint32_t>& have = entries_[slot]->caps;
        if (!std::includes(have.begin(), have.end(), caps.begin(), caps.end())) continue;
      }
    }
    ++total;
    Candidate c{static_cast<float>(rank.active_tasks) / std::max<float>(rank.capacity, 1),
                rank.load, rank.last_seen_ns, slot};
    if (heap.size() < limit) {
      heap.push_back(c);
      std::push_heap(heap.begin(), heap.end(), better);
    } else if (better(c, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), better);
      heap.back() = c;
      std::push_heap(heap.begin(), heap.end(), better);
    }
  }
  std::sort_heap(heap.begin(), heap.end(), better);
  for (const Candidate& c : heap) *response.add_agents() = ViewLocked(*entries_[c.slot], now);
  response.set_total_matching(total);
  return response;
}

absl::StatusOr<pb::GetNetworkStatusResponse> Registry::GetNetworkStatus(
    const pb::GetNetworkStatusRequest& r) const {
  if (!r.node().empty()) CNET_RETURN_IF_ERROR(CheckNodeName("node", r.node()));
  if (r.capability_limit() < 0 || r.capability_limit() > 1000) {
    return Invalid("capability_limit", absl::StrCat(r.capability_limit(), " is outside 0..1000"));
  }
  const size_t cap_limit = r.capability_limit() == 0 ? 100 : r.capability_limit();
  absl::ReaderMutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  pb::GetNetworkStatusResponse response;
  response.set_local_node(options_.local_node);
  response.set_current_sequence(sequence_);
  *response.mutable_server_time() = ToProto(now);
  if (grace_until_ > now) *response.mutable_grace_until() = ToProto(grace_until_);
  const Posting* posting = all_.get();
  int64_t only_node = -1;
  if (!r.node().empty()) {
    auto it = node_ids_.find(r.node());
    if (it == node_ids_.end()) return response;
    only_node = it->second;
    posting = &nodes_[it->second].posting;
  }
  int64_t by_health[8] = {0};
  int64_t by_status[8] = {0};
  struct NodeCount {
    int64_t total = 0;
    int64_t by_health[8] = {0};
    int64_t last_ns = 0;
  };
  std::vector<NodeCount> node_counts(nodes_.size());
  int64_t oldest_ns = INT64_MAX;
  int64_t oldest_slot = -1;
  int64_t remote = 0;
  for (const uint32_t slot : posting->Scan()) {
    const uint8_t f = flags_[slot];
    const int64_t last = rank_[slot].last_seen_ns;
    const int health = internal::HealthOf(f);
    remote += (f & internal::kRemoteBit) != 0;
    ++by_health[health];
    ++by_status[internal::StatusOf(f)];
    NodeCount& n = node_counts[node_of_[slot]];
    ++n.total;
    ++n.by_health[health];
    n.last_ns = std::max(n.last_ns, last);
    if (!(f & internal::kHumanBit) && health != pb::HEALTH_DEAD &&
        (last < oldest_ns ||
         (last == oldest_ns && entries_[slot]->id < entries_[oldest_slot]->id))) {
      oldest_ns = last;
      oldest_slot = slot;
    }
  }
  response.set_total_agents(static_cast<int64_t>(posting->size()));
  response.set_remote_agents(remote);
  response.set_local_agents(response.total_agents() - remote);
  for (int i = 0; i <= pb::Health_MAX; ++i) {
    if (by_health[i] == 0) continue;
    pb::HealthCount* c = response.add_by_health();
    c->set_health(static_cast<pb::Health>(i));
    c->set_count(by_health[i]);
  }
  for (int i = 0; i <= pb::AgentStatus_MAX; ++i) {
    if (by_status[i] == 0) continue;
    pb::StatusCount* c = response.add_by_status();
    c->set_status(static_cast<pb::AgentStatus>(i));
    c->set_count(by_status[i]);
  }
  std::vector<uint32_t> node_order;
  for (uint32_t i = 0; i < nodes_.size(); ++i) {
    if (node_counts[i].total > 0) node_order.push_back(i);
  }
  std::sort(node_order.begin(), node_order.end(),
            [this](uint32_t a, uint32_t b) { return nodes_[a].name < nodes_[b].name; });
  for (uint32_t i : node_order) {
    pb::NodeSummary* n = response.add_by_node();
    n->set_node(nodes_[i].name);
    n->set_local(nodes_[i].name == options_.local_node);
    n->set_total(node_counts[i].total);
    for (int h = 0; h <= pb::Health_MAX; ++h) {
      if (node_counts[i].by_health[h] == 0) continue;
      pb::HealthCount* c = n->add_by_health();
      c->set_health(static_cast<pb::Health>(h));
      c->set_count(node_counts[i].by_health[h]);
    }
    *n->mutable_last_heartbeat() = ToProto(absl::FromUnixNanos(node_counts[i].last_ns));
  }
  struct CapCount {
    const std::string* name;
    int64_t total;
    int64_t healthy;
  };
  std::vector<CapCount> cap_counts;
  for (const CapIndex& c : caps_) {
    if (c.posting.empty()) continue;
    CapCount count{&c.name, static_cast<int64_t>(c.posting.size()), c.healthy};
    if (only_node >= 0) {  // counted per node on demand; the whole network incrementally
      count.total = count.healthy = 0;
      for (const uint32_t slot : c.posting.Scan()) {
        if (node_of_[slot] != only_node) continue;
        ++count.total;
        count.healthy += internal::HealthOf(flags_[slot]) == pb::HEALTH_HEALTHY;
      }
    }
    if (count.total > 0) cap_counts.push_back(count);
  }
  std::sort(cap_counts.begin(), cap_counts.end(), [](const CapCount& a, const CapCount& b) {
    if (a.total != b.total) return a.total > b.total;
    return *a.name < *b.name;
  });
  for (size_t i = 0; i < std::min(cap_counts.size(), cap_limit); ++i) {
    pb::CapabilityCount* c = response.add_by_capability();
    c->set_capability(*cap_counts[i].name);
    c->set_total(cap_counts[i].total);
    c->set_healthy(cap_counts[i].healthy);
  }
  if (oldest_slot >= 0) {
    response.set_oldest_heartbeat_agent_id(entries_[oldest_slot]->id);
    *response.mutable_oldest_heartbeat() = ToProto(absl::FromUnixNanos(oldest_ns));
  }
  return response;
}

absl::StatusOr<pb::GetAgentCardResponse> Registry::GetAgentCard(
    const std::string& agent_id) const {
  CNET_ASSIGN_OR_RETURN(pb::Agent agent, GetAgent(agent_id));
  return RenderAgentCard(agent, options_.public_base_url);
}

absl::StatusOr<pb::ListAgentCardsResponse> Registry::ListAgentCards(
    const pb::ListAgentCardsRequest& r) const {
  if (r.page_size() < 0 || r.page_size() > kMaxPageSize) {
    return Invalid("page_size", absl::StrCat(r.page_size(), " is outside 0..1000"));
  }
  CNET_RETURN_IF_ERROR(
      CheckCapabilities("capabilities_all", r.capabilities_all(), kMaxFilterValues));
  CNET_RETURN_IF_ERROR(CheckLocality("locality", r.locality()));
  pb::ListAgentsRequest list;
  list.set_page_size(r.page_size());
  list.set_page_token(r.page_token());
  *list.mutable_capabilities_all() = r.capabilities_all();
  list.set_locality(r.locality());
  list.set_order_by(pb::AGENT_ORDER_ID);
  if (!r.include_dead()) {
    for (pb::Health h : {pb::HEALTH_UNSPECIFIED, pb::HEALTH_HEALTHY, pb::HEALTH_WARNING,
                         pb::HEALTH_CRITICAL}) {
      list.add_healths(h);
    }
  }
  pb::ListAgentsResponse agents;
  {
    absl::ReaderMutexLock lock(&mu_);
    CNET_ASSIGN_OR_RETURN(agents, ListLocked(list, clock_->Now()));
  }
  pb::ListAgentCardsResponse response;
  for (const pb::Agent& a : agents.agents()) {
    *response.add_cards() = RenderAgentCard(a, options_.public_base_url);
  }
  response.set_next_page_token(agents.next_page_token());
  return response;
}

absl::StatusOr<pb::ValidateTokenResponse> Registry::ValidateToken(std::string_view token) const {
  if (token.empty()) return Invalid("token", "empty");
  if (token.size() > kMaxTokenBytes) {
    return Invalid("token", absl::StrCat("longer than 512 bytes (", token.size(), ")"));
  }
  std::string digest = crypto::Sha256(token);
  TokenHash hash;
  std::copy(digest.begin(), digest.end(), hash.begin());
  pb::ValidateTokenResponse response;
  absl::ReaderMutexLock lock(&mu_);
  auto it = by_token_.find(hash);
  if (it != by_token_.end()) {
    const Entry& e = *entries_[it->second];
    response.set_valid(true);
    pb::Principal* p = response.mutable_principal();
    p->set_kind(e.v.agent.kind() == pb::AGENT_KIND_HUMAN ? pb::PRINCIPAL_KIND_HUMAN
                                                         : pb::PRINCIPAL_KIND_AGENT);
    p->set_id(e.id);
    p->set_node(e.v.agent.node());
    *response.mutable_cache_for() = ToProto(options_.token_cache_ttl);
    response.set_agent_revision(e.v.agent.revision());
    return response;
  }
  auto revoked = revoked_.find(digest);
  response.set_invalid_reason(revoked == revoked_.end() ? pb::TOKEN_INVALID_REASON_UNKNOWN
                                                        : revoked->second.reason);
  return response;
}

absl::StatusOr<std::string> Registry::AuthenticateToken(std::string_view token) const {
  if (token.empty() || token.size() > kMaxTokenBytes) {
    return absl::UnauthenticatedError("authorization: malformed credential");
  }
  std::string digest = crypto::Sha256(token);
  TokenHash hash;
  std::copy(digest.begin(), digest.end(), hash.begin());
  absl::ReaderMutexLock lock(&mu_);
  auto it = by_token_.find(hash);
  if (it != by_token_.end()) return entries_[it->second]->id;
  auto revoked = revoked_.find(digest);
  if (revoked != revoked_.end()) {
    return absl::UnauthenticatedError(absl::StrCat(
        "authorization: the token of agent ", Quote(revoked->second.agent_id), " was ",
        revoked->second.reason == pb::TOKEN_INVALID_REASON_ROTATED ? "rotated"
                                                                   : "revoked (agent removed)"));
  }
  return absl::UnauthenticatedError("authorization: unknown credential");
}

absl::StatusOr<Registry::WatchStart> Registry::StartWatch(const pb::WatchAgentsRequest& r,
                                                          const WatchFilter& filter) const {
  absl::ReaderMutexLock lock(&mu_);
  WatchStart start;
  start.covered_sequence = sequence_;
  const absl::Time now = clock_->Now();
  if (r.send_snapshot()) {
    auto add = [&](const Entry& e) {
      if (!filter.MatchesAgent(e.v.agent)) return;
      auto ev = std::make_shared<pb::AgentEvent>();
      ev->set_sequence(sequence_);
      ev->set_type(pb::AGENT_EVENT_TYPE_SNAPSHOT);
      *ev->mutable_time() = ToProto(now);
      *ev->mutable_agent() = ViewLocked(e, now);
      start.initial.push_back(std::move(ev));
    };
    if (r.agent_ids_size() > 0) {
      std::vector<std::string> ids(r.agent_ids().begin(), r.agent_ids().end());
      std::sort(ids.begin(), ids.end());
      ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
      for (const std::string& id : ids) {
        if (Entry* e = FindLocked(id)) add(*e);
      }
    } else {
      for (const uint32_t slot : all_->Scan()) add(*entries_[slot]);
    }
    auto end = std::make_shared<pb::AgentEvent>();
    end->set_sequence(sequence_);
    end->set_type(pb::AGENT_EVENT_TYPE_SNAPSHOT_END);
    *end->mutable_time() = ToProto(now);
    start.initial.push_back(std::move(end));
    return start;
  }
  const int64_t from = r.from_sequence();
  if (from < 0) return Invalid("from_sequence", absl::StrCat("negative (", from, ")"));
  if (from > sequence_) {
    return Invalid("from_sequence",
                   absl::StrCat(from, " is beyond the current sequence ", sequence_));
  }
  if (from == 0 || from == sequence_) return start;
  if (tail_.empty() || tail_.front()->sequence() > from + 1) {
    start.resync_required = true;
    return start;
  }
  for (const EventPtr& ev : tail_) {
    if (ev->sequence() > from && filter.Matches(*ev)) start.initial.push_back(ev);
  }
  return start;
}

}  // namespace cnet::registry
