// `cnet msg ...`: messages through the MACS gateway, as an agent.
//
//   send TO [BODY]     a direct message (or to `cap:<capability>`), signed
//   broadcast [BODY]   to every other agent
//   inbox              peek at the inbox: unread (default), --unacked, --all;
//                      --since SEQ; never consumes anything
//   watch              follow the inbox stream, print each delivery, Ack it
//   ack SEQ...         acknowledge by inbox sequence (or --id MESSAGE_ID)
//   read SEQ...        mark read
//   thread ID          the messages of a conversation
//   status ID          delivery state per recipient of a message you sent
//   dead-letters       the inbox's dead letters (--requeue SEQ to retry)
//
// The acting agent: see ResolveIdentity in common.h. Bodies and payloads
// come from the flag, a file, or stdin (`--body-file -`).
#include <google/protobuf/util/time_util.h>

#include <iostream>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "libs/macs_client/macs_client.h"
#include "proto/claudenet/v1/macs.grpc.pb.h"
#include "tools/cnet/common.h"

namespace cnet::cli {
namespace pb = claudenet::v1;
using google::protobuf::util::TimeUtil;

namespace {

struct MsgFlags {
  std::string to;
  std::string body, body_file;
  std::string subject;
  std::string payload, payload_file;
  std::string type;
  std::string priority;
  std::string thread;
  std::string reply_to;
  std::string id;
  std::string cap;
  int64_t ttl_seconds = 0;
  double ack_deadline_seconds = 0;
  // inbox
  bool all = false;
  bool unacked = false;
  int64_t since = 0;
  int limit = 100;
  bool mark_read = false;
  // watch
  bool no_ack = false;
  int count = 0;
  double for_seconds = 0;
  // ack / read / requeue
  std::vector<int64_t> sequences;
  std::vector<std::string> ids;
  std::string inbox_agent;
  bool requeue = false;
  std::string target;
};

std::unique_ptr<macs_client::MacsClient> Client(Globals* g, const Identity& who) {
  macs_client::ClientOptions o;
  o.agent_id = who.id;
  o.token = who.token;
  o.signing_key = SigningKey(g);
  o.ed25519_seed = who.ed25519_seed;
  o.ed25519_key_id = who.key_id;
  o.deadline = absl::Seconds(g->timeout_seconds);
  o.max_attempts = 3;
  return std::make_unique<macs_client::MacsClient>(
      g->Channel(g->config().GetString("services.macs_addr")), o);
}

std::unique_ptr<pb::MacsGateway::Stub> Stub(Globals* g) {
  return pb::MacsGateway::NewStub(g->Channel(g->config().GetString("services.macs_addr")));
}

// One line per message: "#12 HIGH agent-a -> agent-b [subject] body".
std::string EntryLine(const pb::InboxEntry& e) {
  const pb::Message& m = e.message();
  std::string body = m.body();
  for (char& c : body) {
    if (c == '\n') c = ' ';
  }
  if (body.size() > 200) body = body.substr(0, 197) + "...";
  return absl::StrCat(
      "#", e.inbox_sequence(), " ", TimeUtil::ToString(m.created_at()).substr(0, 19), " ",
      m.sender(), " -> ", m.recipient(), " ", ShortName(m.type(), pb::MessageType_descriptor()),
      m.priority() > pb::PRIORITY_NORMAL
          ? " " + ShortName(m.priority(), pb::Priority_descriptor())
          : "",
      m.subject().empty() ? "" : " [" + m.subject() + "]", body.empty() ? "" : " " + body,
      m.payload().fields_size() > 0 ? " " + ProtoJson(m.payload()) : "");
}

int Send(Globals* g, const MsgFlags& f, const std::string& recipient, pb::MessageType type) {
  const std::string what = type == pb::MESSAGE_TYPE_BROADCAST ? "msg broadcast" : "msg send";
  absl::StatusOr<Identity> who = ResolveIdentity(g);
  if (!who.ok()) return ReportAbsl(*g, what, who.status());
  if (who->id.empty()) {
    return ReportUsage(*g, what, "--agent: the sending agent's id is needed with --token");
  }
  pb::Message m;
  m.set_id(f.id);
  m.set_recipient(recipient);
  m.set_subject(f.subject);
  absl::StatusOr<std::string> body = ReadInput(f.body, f.body_file, "--body");
  if (!body.ok()) return ReportAbsl(*g, what, body.status());
  m.set_body(*body);
  absl::StatusOr<std::string> payload = ReadInput(f.payload, f.payload_file, "--payload");
  if (!payload.ok()) return ReportAbsl(*g, what, payload.status());
  if (!payload->empty()) {
    absl::Status s = ParseStruct(*payload, "--payload", m.mutable_payload());
    if (!s.ok()) return ReportAbsl(*g, what, s);
  }
  if (m.body().empty() && m.subject().empty() && m.payload().fields_size() == 0) {
    return ReportUsage(*g, what, "nothing to send: give BODY, --subject or --payload");
  }
  int value = type;
  if (!f.type.empty() && !ParseEnum(f.type, pb::MessageType_descriptor(), &value)) {
    return ReportUsage(*g, what, "--type: one of direct, broadcast, task, status, query, ...");
  }
  m.set_type(static_cast<pb::MessageType>(value));
  if (!f.priority.empty()) {
    if (!ParseEnum(f.priority, pb::Priority_descriptor(), &value)) {
      return ReportUsage(*g, what, "--priority: low, normal, high or critical");
    }
    m.set_priority(static_cast<pb::Priority>(value));
  }
  m.set_correlation_id(f.thread);
  m.set_reply_to(f.reply_to);
  if (f.ttl_seconds < 0) return ReportUsage(*g, what, "--ttl: seconds, > 0");
  if (f.ttl_seconds > 0) m.mutable_ttl()->set_seconds(f.ttl_seconds);
  std::optional<absl::Duration> ack_deadline;
  if (f.ack_deadline_seconds > 0) ack_deadline = absl::Seconds(f.ack_deadline_seconds);
  absl::StatusOr<pb::SendResponse> resp = Client(g, *who)->Send(m, ack_deadline);
  if (!resp.ok()) {
    if (resp.status().code() == absl::StatusCode::kUnauthenticated && SigningKey(g).empty() &&
        g->config().GetBool("security.use_message_signing")) {
      return ReportAbsl(*g, what,
                        absl::UnauthenticatedError(absl::StrCat(
                            std::string(resp.status().message()),
                            " (no signing key here: set security.shared_secret, the network's "
                            "HMAC key)")));
    }
    return ReportAbsl(*g, what, resp.status());
  }
  if (g->json) {
    std::cout << ProtoJson(*resp) << "\n";
    return kExitOk;
  }
  std::cout << "sent " << resp->message_id() << " to " << recipient << " ("
            << resp->recipient_count() << " recipient" << (resp->recipient_count() == 1 ? "" : "s")
            << (resp->duplicate() ? ", duplicate" : "") << ")\n";
  return kExitOk;
}

int Inbox(Globals* g, const MsgFlags& f) {
  absl::StatusOr<Identity> who = ResolveIdentity(g);
  if (!who.ok()) return ReportAbsl(*g, "msg inbox", who.status());
  if (f.all && f.unacked) return ReportUsage(*g, "msg inbox", "--all and --unacked exclude each other");
  if (f.limit < 1 || f.limit > 1000) return ReportUsage(*g, "msg inbox", "--limit: 1..1000");
  if (f.since < 0) return ReportUsage(*g, "msg inbox", "--since: an inbox sequence >= 0");
  pb::FetchInboxRequest req;
  req.set_filter(f.all ? pb::INBOX_FILTER_ALL
                       : f.unacked ? pb::INBOX_FILTER_UNACKED : pb::INBOX_FILTER_UNREAD);
  req.set_since_sequence(f.since);
  req.set_page_size(f.limit);
  auto client = Client(g, *who);
  absl::StatusOr<pb::FetchInboxResponse> resp = client->FetchInbox(req);
  if (!resp.ok()) return ReportAbsl(*g, "msg inbox", resp.status());
  if (f.mark_read && resp->entries_size() > 0) {
    std::vector<int64_t> seqs;
    for (const auto& e : resp->entries()) seqs.push_back(e.inbox_sequence());
    absl::StatusOr<pb::MarkReadResponse> marked = client->MarkRead(seqs);
    if (!marked.ok()) return ReportAbsl(*g, "msg inbox --mark-read", marked.status());
  }
  if (g->json) {
    std::cout << ProtoJson(*resp) << "\n";
    return kExitOk;
  }
  for (const auto& e : resp->entries()) std::cout << EntryLine(e) << "\n";
  std::cout << resp->entries_size() << " shown; " << resp->unread_count() << " unread, "
            << resp->pending_count() << " pending, latest #" << resp->latest_sequence()
            << (resp->next_page_token().empty() ? "" : " (more: --since ")
            << (resp->next_page_token().empty()
                    ? ""
                    : absl::StrCat(resp->entries(resp->entries_size() - 1).inbox_sequence(), ")"))
            << "\n";
  return kExitOk;
}

int Watch(Globals* g, const MsgFlags& f) {
  absl::StatusOr<Identity> who = ResolveIdentity(g);
  if (!who.ok()) return ReportAbsl(*g, "msg watch", who.status());
  if (f.count < 0) return ReportUsage(*g, "msg watch", "--count: >= 0");
  auto client = Client(g, *who);
  absl::Mutex mu;
  macs_client::Subscription* live = nullptr;
  bool stopping = false;
  StopSignal stop([&] {
    absl::MutexLock l(&mu);
    stopping = true;
    if (live) live->Cancel();
  });
  std::unique_ptr<std::thread> timer;
  absl::Notification done;
  if (f.for_seconds > 0) {
    timer = std::make_unique<std::thread>([&] {
      if (!done.WaitForNotificationWithTimeout(absl::Seconds(f.for_seconds))) stop.Stop();
    });
  }
  auto finish = [&](int code) {
    done.Notify();
    if (timer) timer->join();
    return code;
  };
  absl::StatusOr<std::unique_ptr<macs_client::Subscription>> sub = client->Subscribe();
  if (!sub.ok()) return finish(ReportAbsl(*g, "msg watch", sub.status()));
  {
    absl::MutexLock l(&mu);
    live = sub->get();
    if (stopping) live->Cancel();
  }
  if (!g->json) {
    std::cerr << "watching the inbox of " << who->id << " (" << (*sub)->ready().pending_count()
              << " pending); Ctrl-C to stop\n";
  }
  int seen = 0;
  pb::InboxEntry entry;
  while ((f.count == 0 || seen < f.count) && (*sub)->Next(&entry)) {
    ++seen;
    if (g->json) {
      // One JSON object per line (JSON Lines): one per delivery.
      std::cout << ProtoJson(entry) << std::endl;
    } else {
      std::cout << EntryLine(entry) << std::endl;
    }
    if (!f.no_ack) {
      absl::StatusOr<pb::AckResponse> acked = client->Ack({entry.inbox_sequence()});
      if (!acked.ok()) return finish(ReportAbsl(*g, "msg watch: ack", acked.status()));
    }
  }
  {
    absl::MutexLock l(&mu);
    live = nullptr;
  }
  if (f.count > 0 && seen >= f.count) {
    (*sub)->Cancel();
    return finish(kExitOk);
  }
  absl::Status end = (*sub)->Finish();
  if (stop.stopped()) return finish(kExitOk);
  if (!end.ok()) return finish(ReportAbsl(*g, "msg watch", end));
  return finish(kExitOk);
}

int AckOrRead(Globals* g, const MsgFlags& f, bool ack) {
  const std::string what = ack ? "msg ack" : "msg read";
  absl::StatusOr<Identity> who = ResolveIdentity(g);
  if (!who.ok()) return ReportAbsl(*g, what, who.status());
  if (f.sequences.empty() && f.ids.empty()) {
    return ReportUsage(*g, what, "give inbox sequences (SEQ...) or --id MESSAGE_ID");
  }
  auto stub = Stub(g);
  google::protobuf::RepeatedPtrField<pb::ItemResult> results;
  grpc::Status s;
  if (ack) {
    pb::AckRequest req;
    for (int64_t q : f.sequences) req.add_inbox_sequences(q);
    for (const auto& id : f.ids) req.add_message_ids(id);
    pb::AckResponse resp;
    s = stub->Ack(g->Context(who->token).get(), req, &resp);
    results = resp.results();
  } else {
    pb::MarkReadRequest req;
    for (int64_t q : f.sequences) req.add_inbox_sequences(q);
    for (const auto& id : f.ids) req.add_message_ids(id);
    pb::MarkReadResponse resp;
    s = stub->MarkRead(g->Context(who->token).get(), req, &resp);
    results = resp.results();
  }
  if (!s.ok()) return ReportError(*g, what, s);
  bool all_found = true;
  nlohmann::json items = nlohmann::json::array();
  for (const auto& r : results) {
    bool found = r.outcome() == pb::ITEM_OUTCOME_OK || r.outcome() == pb::ITEM_OUTCOME_ALREADY_DONE;
    all_found = all_found && found;
    if (g->json) {
      items.push_back(ProtoJsonValue(r));
    } else {
      std::cout << "#" << r.inbox_sequence() << " " << r.message_id() << ": "
                << ShortName(r.outcome(), pb::ItemOutcome_descriptor()) << "\n";
    }
  }
  if (g->json) PrintJson({{"results", items}});
  if (!all_found && !g->json) std::cerr << "cnet " << what << ": some items were not done\n";
  return all_found ? kExitOk : kExitNotFound;
}

int Thread(Globals* g, const MsgFlags& f) {
  std::string token = ReaderCredential(g);
  pb::GetThreadRequest req;
  req.set_correlation_id(f.target);
  req.set_page_size(1000);
  std::vector<pb::Message> messages;
  auto stub = Stub(g);
  for (;;) {
    pb::GetThreadResponse resp;
    grpc::Status s = stub->GetThread(g->Context(token).get(), req, &resp);
    if (!s.ok()) return ReportError(*g, "msg thread", s);
    for (auto& m : *resp.mutable_messages()) messages.push_back(std::move(m));
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  if (g->json) {
    nlohmann::json items = nlohmann::json::array();
    for (const auto& m : messages) items.push_back(ProtoJsonValue(m));
    PrintJson({{"correlation_id", f.target}, {"messages", items}});
    return kExitOk;
  }
  for (const auto& m : messages) {
    pb::InboxEntry e;
    *e.mutable_message() = m;
    std::string line = EntryLine(e);
    std::cout << m.id() << line.substr(line.find(' ')) << "\n";
  }
  std::cout << messages.size() << " message(s) in thread " << f.target << "\n";
  return kExitOk;
}

int Status(Globals* g, const MsgFlags& f) {
  absl::StatusOr<Identity> who = ResolveIdentity(g);
  std::string token = who.ok() ? who->token : g->AdminCredential();
  pb::GetMessageStatusRequest req;
  req.set_message_id(f.target);
  req.set_page_size(1000);
  pb::GetMessageStatusResponse resp;
  grpc::Status s = Stub(g)->GetMessageStatus(g->Context(token).get(), req, &resp);
  if (!s.ok()) return ReportError(*g, "msg status " + f.target, s);
  if (g->json) {
    std::cout << ProtoJson(resp) << "\n";
    return kExitOk;
  }
  for (const auto& r : resp.recipients()) {
    std::cout << r.agent_id() << (r.remote() ? " (" + r.node() + ")" : "") << "  "
              << ShortName(r.state(), pb::DeliveryState_descriptor()) << "\n";
  }
  return kExitOk;
}

int DeadLetters(Globals* g, const MsgFlags& f) {
  absl::StatusOr<Identity> who = ResolveIdentity(g);
  std::string token;
  if (f.inbox_agent == "*" || !who.ok()) {
    token = g->AdminCredential();
  } else {
    token = who->token;
  }
  auto stub = Stub(g);
  if (f.requeue) {
    if (f.sequences.empty()) return ReportUsage(*g, "msg dead-letters", "--requeue needs SEQ...");
    pb::RequeueDeadLetterRequest req;
    req.set_agent_id(f.inbox_agent == "*" ? "" : f.inbox_agent);
    for (int64_t q : f.sequences) req.add_inbox_sequences(q);
    pb::RequeueDeadLetterResponse resp;
    grpc::Status s = stub->RequeueDeadLetter(g->Context(token).get(), req, &resp);
    if (!s.ok()) return ReportError(*g, "msg dead-letters --requeue", s);
    if (g->json) {
      std::cout << ProtoJson(resp) << "\n";
    } else {
      for (const auto& r : resp.results()) {
        std::cout << "#" << r.inbox_sequence() << ": "
                  << ShortName(r.outcome(), pb::ItemOutcome_descriptor()) << "\n";
      }
    }
    return kExitOk;
  }
  pb::ListDeadLettersRequest req;
  req.set_agent_id(f.inbox_agent);
  req.set_page_size(f.limit);
  pb::ListDeadLettersResponse resp;
  grpc::Status s = stub->ListDeadLetters(g->Context(token).get(), req, &resp);
  if (!s.ok()) return ReportError(*g, "msg dead-letters", s);
  if (g->json) {
    std::cout << ProtoJson(resp) << "\n";
    return kExitOk;
  }
  for (const auto& d : resp.dead_letters()) {
    std::cout << d.recipient() << " " << ShortName(d.reason(), pb::DeadLetterReason_descriptor())
              << (d.detail().empty() ? "" : " (" + d.detail() + ")") << ": "
              << EntryLine(d.entry()) << "\n";
  }
  std::cout << resp.dead_letters_size() << " dead letter(s)\n";
  return kExitOk;
}

void AddSendFlags(CLI::App* c, MsgFlags* f) {
  c->add_option("body", f->body, "message text (or --body-file)");
  c->add_option("--body-file", f->body_file, "read the body from a file, - for stdin");
  c->add_option("--subject,-s", f->subject, "subject line (at most 256 bytes)");
  c->add_option("--payload", f->payload, "structured payload, a JSON object");
  c->add_option("--payload-file", f->payload_file, "payload from a file, - for stdin");
  c->add_option("--type", f->type, "direct, broadcast, task, status, query, response, ...");
  c->add_option("--priority,-p", f->priority, "low, normal, high or critical");
  c->add_option("--thread", f->thread, "thread (correlation) id");
  c->add_option("--reply-to", f->reply_to, "id of the message this answers");
  c->add_option("--id", f->id, "message id (default: generated); reuse to retry safely");
  c->add_option("--ttl", f->ttl_seconds, "time to live, seconds (default: 24 h)");
  c->add_option("--ack-deadline", f->ack_deadline_seconds,
                "escalate to you when not every recipient ACKs within this many seconds");
}

}  // namespace

void AddMsgCommands(CLI::App* app, Globals* g) {
  auto f = std::make_shared<MsgFlags>();
  auto* group = app->add_subcommand("msg", "send, receive and acknowledge messages");
  group->require_subcommand(1);
  group->footer("The acting agent: --agent ID / CNET_AGENT, or --token / CNET_TOKEN, else the\n"
                "only identity saved by `cnet agent join`.");

  auto* send = group->add_subcommand("send", "send a message to an agent or a capability group");
  send->add_option("to", f->to, "agent id, or cap:<capability>")->required();
  AddSendFlags(send, f.get());
  send->footer("Example: cnet msg send agent-01j... 'tests pass on main' -s 'CI' -p high");
  send->callback([g, f] { g->exit_code = Send(g, *f, f->to, pb::MESSAGE_TYPE_DIRECT); });

  auto* broadcast = group->add_subcommand("broadcast", "send a message to every other agent");
  AddSendFlags(broadcast, f.get());
  broadcast->add_option("--cap", f->cap, "only agents with this capability (cap:<capability>)");
  broadcast->footer("Example: cnet msg broadcast 'deploying main in 5 minutes' -s deploy");
  broadcast->callback([g, f] {
    g->exit_code = Send(g, *f, f->cap.empty() ? "broadcast" : "cap:" + f->cap,
                        pb::MESSAGE_TYPE_BROADCAST);
  });

  auto* inbox = group->add_subcommand("inbox", "peek at the inbox (unread by default)");
  inbox->add_flag("--all", f->all, "also read and acknowledged messages");
  inbox->add_flag("--unacked", f->unacked, "every message not yet acknowledged");
  inbox->add_option("--since", f->since, "only after this inbox sequence");
  inbox->add_option("--limit", f->limit, "at most this many (1..1000)")->capture_default_str();
  inbox->add_flag("--mark-read", f->mark_read, "mark the shown messages read");
  inbox->footer("Example: cnet msg inbox --since 41 --json");
  inbox->callback([g, f] { g->exit_code = Inbox(g, *f); });

  auto* watch = group->add_subcommand("watch", "follow the inbox, printing and acknowledging");
  watch->add_flag("--no-ack", f->no_ack, "print without acknowledging");
  watch->add_option("--count,-n", f->count, "stop after this many messages");
  watch->add_option("--for", f->for_seconds, "stop after this many seconds");
  watch->footer("Example: cnet msg watch --count 1 --json   (with --json: one JSON object\n"
                "per line per delivery)");
  watch->callback([g, f] { g->exit_code = Watch(g, *f); });

  auto* ack = group->add_subcommand("ack", "acknowledge messages (processed)");
  ack->add_option("seq", f->sequences, "inbox sequences");
  ack->add_option("--id", f->ids, "message ids; repeat");
  ack->footer("Example: cnet msg ack 12 13");
  ack->callback([g, f] { g->exit_code = AckOrRead(g, *f, true); });

  auto* read = group->add_subcommand("read", "mark messages read");
  read->add_option("seq", f->sequences, "inbox sequences");
  read->add_option("--id", f->ids, "message ids; repeat");
  read->footer("Example: cnet msg read 12");
  read->callback([g, f] { g->exit_code = AckOrRead(g, *f, false); });

  auto* thread = group->add_subcommand("thread", "the messages of a conversation");
  thread->add_option("id", f->target, "thread id (correlation id or root message id)")
      ->required();
  thread->footer("Example: cnet msg thread msg-01j...");
  thread->callback([g, f] { g->exit_code = Thread(g, *f); });

  auto* status = group->add_subcommand("status", "delivery state of a message you sent");
  status->add_option("id", f->target, "message id")->required();
  status->footer("Example: cnet msg status msg-01j...");
  status->callback([g, f] { g->exit_code = Status(g, *f); });

  auto* dead = group->add_subcommand("dead-letters", "the inbox's dead letters");
  dead->add_option("--inbox", f->inbox_agent, "whose inbox (default: yours; * = all, admin)");
  dead->add_flag("--requeue", f->requeue, "put the given dead letters back as pending");
  dead->add_option("seq", f->sequences, "inbox sequences (with --requeue)");
  dead->add_option("--limit", f->limit, "at most this many (1..1000)")->capture_default_str();
  dead->footer("Example: cnet msg dead-letters; cnet msg dead-letters --requeue 7");
  dead->callback([g, f] { g->exit_code = DeadLetters(g, *f); });
}

}  // namespace cnet::cli
