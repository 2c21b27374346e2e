// The pieces without services: the JSON tree's event semantics, the
// in-memory store's stream semantics, and the documents' round trips and
// rejections.
#include <deque>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "absl/synchronization/notification.h"
#include "services/macs-gateway/xnode/coalescing_writer.h"
#include "services/macs-gateway/xnode/documents.h"
#include "services/macs-gateway/xnode/json_tree.h"
#include "services/macs-gateway/xnode/memory_kv_store.h"

namespace cnet::federation {
namespace {
namespace pb = ::claudenet::v1;

JsonValue J(const std::string& text) {
  auto v = ParseJson(text);
  EXPECT_TRUE(v.ok()) << text;
  return *v;
}

TEST(JsonTree, PutPatchAndDeletePruneEmptyParents) {
  JsonTree t;
  ASSERT_TRUE(t.Apply({KvEvent::Type::kPut, "/", R"({"a":{"x":1},"b":2})"}).ok());
  auto touched = t.Apply({KvEvent::Type::kPatch, "/", R"({"a/y":3,"b":null})"});
  ASSERT_TRUE(touched.ok());
  EXPECT_EQ(*touched, (std::set<std::string>{"a", "b"}));
  ASSERT_NE(t.Get({"a", "x"}), nullptr);
  EXPECT_EQ(t.Get({"a", "x"})->number_value(), 1);
  EXPECT_EQ(t.Get({"a", "y"})->number_value(), 3);
  EXPECT_EQ(t.Get({"b"}), nullptr);
  ASSERT_TRUE(t.Apply({KvEvent::Type::kPut, "/a/x", "null"}).ok());
  ASSERT_TRUE(t.Apply({KvEvent::Type::kPut, "/a/y", "null"}).ok());
  EXPECT_EQ(t.Get({"a"}), nullptr);
  EXPECT_FALSE(t.Apply({KvEvent::Type::kPut, "/a", "{not json"}).ok());
  // The whole value again: only the children that differ are reported.
  ASSERT_TRUE(t.Apply({KvEvent::Type::kPut, "/", R"({"p":{"x":1},"q":2})"}).ok());
  auto diff = t.Apply({KvEvent::Type::kPut, "/", R"({"p":{"x":1},"q":3,"r":4})"});
  ASSERT_TRUE(diff.ok());
  EXPECT_EQ(*diff, (std::set<std::string>{"q", "r"}));
  diff = t.Apply({KvEvent::Type::kPut, "/", R"({"q":3,"r":4})"});
  EXPECT_EQ(*diff, (std::set<std::string>{"p"}));
  // After a reset the next whole value is "*".
  ASSERT_TRUE(t.Apply({KvEvent::Type::kReset, "/", "null"}).ok());
  EXPECT_EQ(*t.Apply({KvEvent::Type::kPut, "/", R"({"q":3})"}), (std::set<std::string>{"*"}));
  EXPECT_FALSE(t.Apply({KvEvent::Type::kPatch, "/", "5"}).ok());
}

class Recorder {
 public:
  void Add(const KvEvent& e) {
    absl::MutexLock lock(&mu_);
    events_.push_back(e);
  }
  KvEvent Next() {
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !events_.empty(); };
    EXPECT_TRUE(mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(10)));
    if (events_.empty()) return {};
    KvEvent e = events_.front();
    events_.pop_front();
    return e;
  }

 private:
  absl::Mutex mu_;
  std::deque<KvEvent> events_ ABSL_GUARDED_BY(mu_);
};

TEST(MemoryKvStore, StreamStartsWithWholeValueThenPutsAndPatches) {
  MemoryKvStore kv;
  ASSERT_TRUE(kv.Put("agents/a1", R"({"id":"a1"})").ok());
  Recorder r;
  auto sub = kv.Listen("agents", [&](const KvEvent& e) { r.Add(e); });
  KvEvent first = r.Next();
  EXPECT_EQ(first.type, KvEvent::Type::kPut);
  EXPECT_EQ(first.path, "/");
  EXPECT_EQ(first.data, R"({"a1":{"id":"a1"}})");
  ASSERT_TRUE(kv.Put("agents/a2", R"({"id":"a2"})").ok());
  KvEvent put = r.Next();
  EXPECT_EQ(put.path, "/a2");
  ASSERT_TRUE(kv.Update({{"agents/a1", "null"}, {"other/x", "1"}}).ok());
  KvEvent patch = r.Next();
  EXPECT_EQ(patch.type, KvEvent::Type::kPatch);
  EXPECT_EQ(patch.data, R"({"a1":null})");
  EXPECT_EQ(*kv.Get("agents"), R"({"a2":{"id":"a2"}})");
  kv.SetFailing(absl::UnavailableError("down"));
  EXPECT_EQ(kv.Put("agents/a3", "{}").code(), absl::StatusCode::kUnavailable);
}

TEST(Documents, AgentRoundTripKeepsRecordAndSeedFields) {
  pb::Agent a;
  a.set_id("a-1");
  a.set_name("worker");
  a.set_node("node-b");
  a.add_capabilities("rust");
  a.set_status(pb::AGENT_STATUS_ONLINE);
  a.set_health(pb::HEALTH_HEALTHY);
  a.mutable_last_heartbeat()->set_seconds(1764158400);
  a.mutable_public_key()->set_algorithm(pb::KEY_ALGORITHM_ED25519);
  a.mutable_public_key()->set_key(std::string(32, 'k'));
  a.mutable_public_key()->set_key_id("0123456789abcdef");
  JsonValue doc = AgentDocument(a, absl::FromUnixSeconds(1764158401));
  EXPECT_EQ(StringField(doc, "status"), "online");
  EXPECT_EQ(StringField(doc, "health"), "healthy");
  EXPECT_EQ(StringField(doc, "last_heartbeat"), "2025-11-26T12:00:00Z");
  auto back = AgentFromDocument(J(ToJson(doc)), "a-1");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->public_key().key(), std::string(32, 'k'));
  EXPECT_EQ(back->capabilities(0), "rust");
  EXPECT_EQ(back->node(), "node-b");
}

TEST(Documents, SeedAgentWithoutRecordIsRead) {
  auto a = AgentFromDocument(
      J(R"({"id":"s1","name":"seed","status":"busy","capabilities":["py"],"node":"n9",)"
        R"("last_heartbeat":"2026-01-01T00:00:00Z"})"),
      "s1");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->status(), pb::AGENT_STATUS_BUSY);
  EXPECT_EQ(a->capabilities(0), "py");
}

TEST(Documents, BadAgentDocumentsAreRejectedWithReason) {
  auto wrong_key = AgentFromDocument(J(R"({"id":"x","node":"n"})"), "y");
  EXPECT_EQ(wrong_key.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(wrong_key.status().message()).find("differs from its key"),
            std::string::npos);
  EXPECT_FALSE(AgentFromDocument(J(R"({"id":"x"})"), "x").ok());          // no node
  EXPECT_FALSE(AgentFromDocument(J("5"), "x").ok());                      // not an object
  EXPECT_FALSE(AgentFromDocument(J(R"({"record":{"id":7}})"), "x").ok()); // bad record
  EXPECT_FALSE(AgentFromDocument(J(R"({"id":"x","node":"n","last_heartbeat":"yesterday"})"),
                                 "x").ok());
}

TEST(Documents, SignedDocumentsVerifyAndTamperingIsRefused) {
  pb::Agent a;
  a.set_id("a-1");
  a.set_name("worker");
  a.set_node("node-b");
  a.mutable_metrics()->set_load(0.1 + 0.2);  // a double that must survive JSON
  JsonValue doc = J(ToJson(AgentDocument(a, absl::Now(), "k")));
  EXPECT_TRUE(AgentFromDocument(doc, "a-1", "k").ok());
  EXPECT_EQ(AgentFromDocument(doc, "a-1", "other").status().code(),
            absl::StatusCode::kUnauthenticated);
  (*doc.mutable_struct_value()->mutable_fields())["record"]
      .mutable_struct_value()->mutable_fields()->operator[]("name").set_string_value("evil");
  EXPECT_EQ(AgentFromDocument(doc, "a-1", "k").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(AgentFromDocument(doc, "a-1").ok());  // signing disabled: not checked

  TaskOp op;
  op.op_id = "op-1";
  op.from_node = "node-b";
  op.agent_id = "b1";
  op.task_id = "t1";
  op.kind = TaskOpKind::kProgress;
  op.request = J(R"({"task_id":"t1","lease_epoch":"3","percent":12.5})");
  JsonValue opdoc = J(ToJson(TaskOpDocument(op, "k")));
  EXPECT_TRUE(TaskOpFromDocument(opdoc, "op-1", "k").ok());
  (*opdoc.mutable_struct_value()->mutable_fields())["agent_id"].set_string_value("b2");
  EXPECT_EQ(TaskOpFromDocument(opdoc, "op-1", "k").status().code(),
            absl::StatusCode::kUnauthenticated);

  TaskOpResult r;
  r.op_id = "op-1";
  r.response = J(R"({"lease_valid":true})");
  auto back = TaskOpResultFromDocument(J(ToJson(TaskOpResultDocument(r, op.kind, "k"))), "op-1");
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(VerifyTaskOpResult(*back, op.kind, "k").ok());
  back->code = 9;
  EXPECT_FALSE(VerifyTaskOpResult(*back, op.kind, "k").ok());
}

TEST(Documents, TaskBucketsAndOps) {
  EXPECT_EQ(TaskBucket(pb::TASK_STATE_QUEUED), "available");
  EXPECT_EQ(TaskBucket(pb::TASK_STATE_RUNNING), "assigned");
  EXPECT_EQ(TaskBucket(pb::TASK_STATE_CANCELLED), "completed");
  pb::Task t;
  t.set_id("task-1");
  t.set_origin_node("node-a");
  t.set_state(pb::TASK_STATE_QUEUED);
  auto back = TaskFromDocument(J(ToJson(TaskDocument(t))), "task-1");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->origin_node(), "node-a");
  TaskOp op;
  op.op_id = "op-1";
  op.from_node = "node-b";
  op.agent_id = "b1";
  op.task_id = "task-1";
  op.kind = TaskOpKind::kComplete;
  op.request = J(R"({"task_id":"task-1"})");
  auto op2 = TaskOpFromDocument(J(ToJson(TaskOpDocument(op))), "op-1");
  ASSERT_TRUE(op2.ok());
  EXPECT_EQ(op2->kind, TaskOpKind::kComplete);
  EXPECT_FALSE(TaskOpFromDocument(J(R"({"op_id":"op-1","op":"explode"})"), "op-1").ok());
  EXPECT_FALSE(TaskOpResultFromDocument(J(R"({"op_id":"op-1","code":99})"), "op-1").ok());
  EXPECT_FALSE(ValidKey("a/b"));
  EXPECT_FALSE(ValidKey("a.b"));
  EXPECT_TRUE(ValidKey("agent-01J"));
}

TEST(CoalescingWriter, BatchesPendingWritesAndKeepsTheLatestPerGroup) {
  MemoryKvStore kv;
  Worker worker;
  absl::Mutex mu;
  size_t updates = 0, paths = 0;
  CoalescingWriter writer(&kv, &worker, 500, [&](const absl::Status& s, size_t n) {
    EXPECT_TRUE(s.ok());
    absl::MutexLock lock(&mu);
    ++updates;
    paths += n;
  });
  absl::Notification release;
  worker.Post([&] { release.WaitForNotification(); });  // hold the worker
  for (int i = 0; i < 1000; ++i) {
    std::string id = "t" + std::to_string(i);
    writer.Write(id, {{"x/a/" + id, "1"}, {"x/b/" + id, "null"}});
    writer.Write(id, {{"x/a/" + id, "null"}, {"x/b/" + id, "2"}});  // replaces the first
  }
  release.Notify();
  absl::MutexLock lock(&mu);
  auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return paths == 2000; };
  ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(10)));
  EXPECT_EQ(updates, 4u);  // 1000 groups of 2 paths, 250 groups per update
  EXPECT_EQ(*kv.Get("x/a"), "null");
  EXPECT_EQ(*kv.Get("x/b/t999"), "2");
}

}  // namespace
}  // namespace cnet::federation
