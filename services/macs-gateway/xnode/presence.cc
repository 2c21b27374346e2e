#include "services/macs-gateway/xnode/presence.h"

#include <glog/logging.h>

#include <algorithm>

#include "absl/synchronization/notification.h"
#include "libs/status/grpc_status.h"
#include "services/macs-gateway/xnode/documents.h"

namespace cnet::federation {
namespace pb = ::claudenet::v1;

PresenceMirror::PresenceMirror(PresenceOptions options, KvStore* kv,
                               std::shared_ptr<registry_client::RegistryClient> registry)
    : options_(std::move(options)), kv_(kv), registry_(std::move(registry)) {}

PresenceMirror::~PresenceMirror() { Stop(); }

void PresenceMirror::Start() {
  worker_ = std::make_unique<Worker>();
  writer_ = std::make_unique<CoalescingWriter>(
      kv_, worker_.get(), 500, [this](const absl::Status& s, size_t paths) {
        absl::MutexLock lock(&mu_);
        if (!s.ok()) {
          ++stats_.write_errors;
          LOG(WARNING) << "presence: writing " << paths << " agents: " << s.message();
        } else {
          stats_.published += static_cast<int64_t>(paths);
        }
      });
  pb::WatchAgentsRequest req;
  req.set_send_snapshot(true);
  req.add_nodes(options_.node);
  watch_ = registry_->Watch(req, [this](const pb::AgentEvent& ev) { OnRegistryEvent(ev); });
  stream_ = kv_->Listen("agents", [this](const KvEvent& ev) { OnKvEvent(ev); });
  ScheduleTick();
}

void PresenceMirror::Stop() {
  {
    absl::MutexLock lock(&mu_);
    if (stopped_) return;
    stopped_ = true;
    if (timer_ != 0) options_.clock->Cancel(timer_);
    if (retry_timer_ != 0) options_.clock->Cancel(retry_timer_);
  }
  if (watch_) watch_->Stop();
  stream_.reset();
  if (worker_) worker_->Stop();
}

PresenceMirror::Stats PresenceMirror::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void PresenceMirror::ScheduleTick() {
  absl::MutexLock lock(&mu_);
  if (stopped_) return;
  timer_ = options_.clock->RunAfter(options_.update_interval, [this] {
    worker_->Post([this] {
      absl::Status s = PublishAllNow();
      if (!s.ok()) LOG(WARNING) << "presence: periodic publish: " << s.message();
      ScheduleTick();
    });
  });
}

absl::Status PresenceMirror::PublishAll() {
  absl::Notification done;
  absl::Status result;
  worker_->Post([&] {
    result = PublishAllNow();
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

absl::Status PresenceMirror::PublishAllNow() {
  pb::ListAgentsRequest req;
  req.set_locality(pb::LOCALITY_LOCAL);
  req.set_page_size(1000);
  absl::StatusOr<std::vector<pb::Agent>> agents = registry_->ListAllAgents(req);
  if (!agents.ok()) return agents.status();
  absl::Time now = options_.clock->Now();
  std::map<std::string, std::string> writes;
  std::set<std::string> ours;
  for (const pb::Agent& a : *agents) {
    if (a.remote() || a.node() != options_.node || !ValidKey(a.id())) continue;
    ours.insert(a.id());
    writes["agents/" + a.id()] = ToJson(AgentDocument(a, now, options_.secret));
  }
  int64_t deletes = 0;
  {
    absl::MutexLock lock(&mu_);
    const JsonValue& root = cache_.root();
    if (root.kind_case() == JsonValue::kStructValue) {
      for (const auto& [id, doc] : root.struct_value().fields()) {
        if (StringField(doc, "node") == options_.node && ours.count(id) == 0) {
          writes["agents/" + id] = "null";
          ++deletes;
        }
      }
    }
  }
  if (writes.empty()) return absl::OkStatus();
  absl::Status s = kv_->Update(writes);
  absl::MutexLock lock(&mu_);
  if (!s.ok()) {
    ++stats_.write_errors;
    return s;
  }
  stats_.published += static_cast<int64_t>(ours.size());
  stats_.deleted += deletes;
  return absl::OkStatus();
}

void PresenceMirror::OnRegistryEvent(const pb::AgentEvent& ev) {
  const pb::Agent& a = ev.agent();
  if (a.id().empty() || a.remote() || a.node() != options_.node) return;
  if (!ValidKey(a.id())) {
    LOG(WARNING) << "presence: agent id \"" << a.id() << "\" is not a valid database key";
    return;
  }
  std::string json;
  switch (ev.type()) {
    case pb::AGENT_EVENT_TYPE_SNAPSHOT:
    case pb::AGENT_EVENT_TYPE_REGISTERED:
    case pb::AGENT_EVENT_TYPE_UPDATED:
    case pb::AGENT_EVENT_TYPE_STATUS_CHANGED:
    case pb::AGENT_EVENT_TYPE_HEALTH_CHANGED:
      json = ToJson(AgentDocument(a, options_.clock->Now(), options_.secret));
      break;
    case pb::AGENT_EVENT_TYPE_DEREGISTERED:
    case pb::AGENT_EVENT_TYPE_PRUNED:
      json = "null";
      break;
    default:
      return;
  }
  writer_->Write(a.id(), {{"agents/" + a.id(), std::move(json)}});
}

void PresenceMirror::OnKvEvent(const KvEvent& ev) {
  absl::StatusOr<std::set<std::string>> touched;
  {
    absl::MutexLock lock(&mu_);
    ++stats_.kv_events;
    touched = cache_.Apply(ev);
    if (!touched.ok()) {
      ++stats_.rejected;
      LOG(WARNING) << "presence: stream event at agents" << ev.path << " rejected: "
                   << touched.status().message();
      return;
    }
    if (ev.type == KvEvent::Type::kReset) {
      resyncing_ = true;
      retry_.clear();  // the full pass that follows covers them
    } else if (touched->count("*") > 0) {
      resyncing_ = false;
    }
  }
  if (ev.type == KvEvent::Type::kReset) return;  // the full put follows
  SyncFromCache(*touched);
}

void PresenceMirror::ScheduleRetryLocked() {
  if (stopped_ || retry_timer_ != 0) return;
  if (retry_delay_ <= absl::ZeroDuration()) retry_delay_ = options_.sync_retry_delay;
  const absl::Duration delay = retry_delay_;
  retry_delay_ = std::min(retry_delay_ * 2, options_.update_interval);
  retry_timer_ = options_.clock->RunAfter(delay, [this] {
    absl::MutexLock lock(&mu_);
    retry_timer_ = 0;
    if (stopped_) return;
    worker_->Post([this] { RetrySync(); });
  });
}

void PresenceMirror::RetrySync() {
  std::set<std::string> ids;
  {
    absl::MutexLock lock(&mu_);
    if (stopped_ || retry_.empty()) return;
    ids.swap(retry_);
    ++stats_.sync_retries;
  }
  if (ids.count("*") > 0) ids = {"*"};
  SyncFromCache(ids);
  absl::MutexLock lock(&mu_);
  if (retry_.empty()) retry_delay_ = absl::ZeroDuration();  // all through: reset the backoff
}

void PresenceMirror::SyncFromCache(const std::set<std::string>& touched) {
  absl::MutexLock sync_lock(&sync_mu_);
  const bool full = touched.count("*") > 0;
  // Per origin node: agents to upsert, ids removed.
  struct Batch {
    std::vector<pb::Agent> agents;
    std::vector<std::string> removed;
  };
  std::map<std::string, Batch> batches;
  {
    absl::MutexLock lock(&mu_);
    if (resyncing_ && !full) return;
    const JsonValue& root = cache_.root();
    auto consider = [&](const std::string& id, const JsonValue* doc) {
      if (doc == nullptr || IsNull(*doc)) {
        auto it = remote_.find(id);
        if (it != remote_.end()) {
          batches[it->second].removed.push_back(id);
          remote_.erase(it);
        }
        return;
      }
      if (doc->ByteSizeLong() > kMaxDocumentBytes) {
        ++stats_.rejected;
        LOG(WARNING) << "presence: agents/" << id << " rejected: oversize document";
        return;
      }
      absl::StatusOr<pb::Agent> a = AgentFromDocument(*doc, id, options_.secret);
      if (!a.ok()) {
        ++stats_.rejected;
        LOG(WARNING) << "presence: " << a.status().message();
        return;
      }
      if (a->node() == options_.node) return;  // ours (published by us)
      auto it = remote_.find(id);
      if (it != remote_.end() && it->second != a->node()) {
        batches[it->second].removed.push_back(id);  // moved to another node
      }
      remote_[id] = a->node();
      batches[a->node()].agents.push_back(std::move(*a));
    };
    if (full) {
      std::set<std::string> seen;
      if (root.kind_case() == JsonValue::kStructValue) {
        for (const auto& [id, doc] : root.struct_value().fields()) {
          seen.insert(id);
          consider(id, &doc);
        }
      }
      for (auto it = remote_.begin(); it != remote_.end();) {
        if (seen.count(it->first) == 0) {
          batches[it->second].removed.push_back(it->first);
          it = remote_.erase(it);
        } else {
          ++it;
        }
      }
    } else {
      for (const std::string& id : touched) consider(id, cache_.Get({id}));
    }
  }
  for (auto& [node, batch] : batches) {
    if (node.empty() || node == options_.node) continue;
    size_t ai = 0, ri = 0;
    do {
      pb::SyncRemoteAgentsRequest req;
      req.set_origin_node(node);
      // A full pass that fits one call replaces the node's list at once.
      req.set_full_snapshot(full && batch.agents.size() <= 1000 && ai == 0);
      for (; ai < batch.agents.size() && req.agents_size() < 1000; ++ai) {
        *req.add_agents() = batch.agents[ai];
      }
      for (; ri < batch.removed.size() && req.removed_agent_ids_size() < 1000; ++ri) {
        req.add_removed_agent_ids(batch.removed[ri]);
      }
      pb::SyncRemoteAgentsResponse resp;
      auto ctx = registry_->NewContext();
      // A channel still in its connect backoff (registry started after the
      // gateway) waits, within the deadline, instead of failing at once.
      ctx->set_wait_for_ready(true);
      grpc::Status st = registry_->stub()->SyncRemoteAgents(ctx.get(), req, &resp);
      absl::MutexLock lock(&mu_);
      if (!st.ok()) {
        ++stats_.sync_errors;
        LOG(WARNING) << "presence: SyncRemoteAgents(" << node << "): " << st.error_message()
                     << " (retried)";
        // The stream will not deliver these changes again: retry them (the
        // whole batch; its removals are restored in remote_ so the retry
        // removes them again unless their documents came back).
        if (full) {
          retry_.insert("*");
        }
        for (const pb::Agent& a : batch.agents) retry_.insert(a.id());
        for (const std::string& id : batch.removed) {
          retry_.insert(id);
          remote_.emplace(id, node);
        }
        ScheduleRetryLocked();
        break;
      }
      stats_.synced += resp.upserted();
      stats_.removed += resp.removed();
      stats_.rejected += resp.rejected_size();
      for (const auto& r : resp.rejected()) {
        LOG(WARNING) << "presence: registry refused remote agent " << r.agent_id() << " of "
                     << node << ": " << r.reason();
      }
    } while (ai < batch.agents.size() || ri < batch.removed.size());
  }
}

}  // namespace cnet::federation
