#include "services/macs-gateway/federation/runtime.h"

#include <glog/logging.h>

#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "services/macs-gateway/gateway.h"

namespace cnet::macs::federation {

absl::StatusOr<std::unique_ptr<FederationRuntime>> FederationRuntime::Create(
    const config::Config& cfg, const std::string& node, Gateway* gateway, Clock* clock) {
  std::unique_ptr<FederationRuntime> rt(new FederationRuntime());
  rt->gateway_ = gateway;
  const bool fb = cfg.GetBool("firebase.enabled");
  const bool gh = cfg.GetBool("github.enabled");
  if (fb || gh) {
    if (cfg.GetString("security.shared_secret").empty() &&
        cfg.GetBool("security.use_message_signing")) {
      return absl::InvalidArgumentError(
          "security.shared_secret: required when firebase.enabled or github.enabled is true "
          "(every node of the network signs and verifies with the same secret)");
    }
  }
  if (fb) {
    rt->firebase_options_.database_url = cfg.GetString("firebase.url");
    rt->firebase_options_.auth = cfg.GetString("firebase.auth");
    if (rt->firebase_options_.database_url.empty()) {
      return absl::InvalidArgumentError(
          "firebase.url: required when firebase.enabled is true (env FIREBASE_URL)");
    }
    if (rt->firebase_options_.auth.empty()) {
      return absl::InvalidArgumentError(
          "firebase.auth: required when firebase.enabled is true (database secret or ID "
          "token; env FIREBASE_AUTH)");
    }
    rt->firebase_options_.timeout = cfg.GetDuration("firebase.timeout");
    rt->firebase_options_.connect_timeout =
        std::min(rt->firebase_options_.timeout, absl::Seconds(10));
    rt->firebase_options_.max_retries = static_cast<int>(cfg.GetInt("firebase.max_retries"));
    rt->firebase_options_.retry_max_backoff =
        std::min(cfg.GetDuration("offline.backoff_max"), absl::Seconds(8));
    rt->firebase_options_.retry_initial_backoff =
        std::min(cfg.GetDuration("offline.backoff_base"), absl::Milliseconds(250));
    rt->firebase_ = std::make_unique<firebase::FirebaseClient>(rt->firebase_options_);
    rt->db_ = std::make_unique<FirebaseRealtimeDb>(rt->firebase_.get());
  }
  if (gh) {
    const std::string repo = cfg.GetString("github.repo");
    std::vector<std::string> parts = absl::StrSplit(repo, '/');
    if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "github.repo: required as owner/name when github.enabled is true (got \"", repo,
          "\"; env GITHUB_REPO)"));
    }
    if (cfg.GetString("github.token").empty()) {
      return absl::InvalidArgumentError(
          "github.token: required when github.enabled is true (env GITHUB_TOKEN)");
    }
    github::GitHubOptions o;
    o.api_url = cfg.GetString("github.api_url");
    o.owner = parts[0];
    o.repo = parts[1];
    o.token = cfg.GetString("github.token");
    o.timeout = cfg.GetDuration("firebase.timeout");
    rt->github_ = std::make_unique<github::GitHubClient>(o, clock);
    rt->issues_ = std::make_unique<GitHubIssueTracker>(rt->github_.get());
  }
  FederationOptions fo;
  fo.node = node;
  fo.backoff_base = cfg.GetDuration("offline.backoff_base");
  fo.backoff_factor = cfg.GetDouble("offline.backoff_factor");
  fo.backoff_max = cfg.GetDuration("offline.backoff_max");
  fo.fallback_after = cfg.GetDuration("github.fallback_after");
  fo.github_poll_interval = cfg.GetDuration("github.poll_interval");
  fo.github_labels = cfg.GetStringList("github.labels");
  fo.poll_interval = cfg.GetDuration("federation.poll_interval");
  fo.batch_max_messages = static_cast<int>(cfg.GetInt("federation.batch_max_messages"));
  fo.batch_max_bytes = cfg.GetInt("federation.batch_max_bytes");
  fo.hold_timeout = cfg.GetDuration("federation.hold_timeout");
  fo.max_envelope_bytes = 2 * cfg.GetInt("limits.max_message_bytes") + (64 << 10);
  rt->import_path_ = cfg.GetString("federation.import_offline_queue");
  rt->federation_ = std::make_unique<Federation>(fo, clock, gateway, rt->db_.get(),
                                                 rt->issues_.get());
  Federation* f = rt->federation_.get();
  gateway->SetFederationStatusSource([f](claudenet::v1::FederationStatus* s) { f->FillStatus(s); });
  gateway->SetOutboxListener([f] { f->Nudge(); });
  return rt;
}

FederationRuntime::~FederationRuntime() { Stop(); }

void FederationRuntime::Start(const std::string& shared_secret) {
  if (!import_path_.empty()) {
    std::ifstream probe(import_path_);
    if (probe.good()) {
      probe.close();
      absl::StatusOr<int> n = federation_->ImportOfflineQueue(import_path_, shared_secret);
      if (n.ok()) {
        LOG(INFO) << "federation: imported " << *n << " messages from " << import_path_;
        std::rename(import_path_.c_str(), (import_path_ + ".imported").c_str());
      } else {
        LOG(ERROR) << "federation: import of " << import_path_ << " failed: " << n.status();
      }
    }
  }
  if (federation_->state() == claudenet::v1::FEDERATION_STATE_DISABLED) {
    LOG(INFO) << "federation: disabled (firebase.enabled and github.enabled are false); copies "
                 "for remote agents stay in the outbox";
    return;
  }
  federation_->Start();
  if (firebase_ != nullptr) {
    firebase::StreamOptions so;
    so.firebase = firebase_options_;
    so.path = absl::StrCat("messages/", EscapeKey(federation_->node()));
    so.max_backoff = absl::Seconds(60);
    Federation* f = federation_.get();
    firebase::FirebaseStream::Callbacks cb;
    cb.on_event = [f](const firebase::StreamEvent&) { f->Nudge(); };
    cb.on_state = [f](firebase::StreamState s, const absl::Status&) {
      f->SetStreamConnected(s == firebase::StreamState::kConnected);
      if (s == firebase::StreamState::kConnected) f->Nudge();
    };
    stream_ = std::make_unique<firebase::FirebaseStream>(so, cb);
    absl::Status st = stream_->Start();
    if (!st.ok()) LOG(ERROR) << "federation: Firebase stream: " << st;
    // Receipts for this node wake the thread too (GetMessageStatus shows
    // DELIVERED without waiting for the next poll).
    so.path = absl::StrCat("receipts/", EscapeKey(federation_->node()));
    firebase::FirebaseStream::Callbacks rcb;
    rcb.on_event = [f](const firebase::StreamEvent&) { f->Nudge(); };
    receipt_stream_ = std::make_unique<firebase::FirebaseStream>(so, rcb);
    st = receipt_stream_->Start();
    if (!st.ok()) LOG(ERROR) << "federation: Firebase receipt stream: " << st;
  }
}

void FederationRuntime::Stop() {
  if (stream_) stream_->Stop();
  if (receipt_stream_) receipt_stream_->Stop();
  if (federation_) federation_->Stop();
}

}  // namespace cnet::macs::federation
