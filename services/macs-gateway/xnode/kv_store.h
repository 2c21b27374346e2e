// The narrow view of the Firebase Realtime Database that the agents/tasks
// federation (presence mirror, task mirror, remote task operations) needs:
// JSON writes at a path, atomic multi-path updates, reads, and a stream of
// put/patch events under a path, with the Realtime Database's semantics
// (the first event of a stream is a `put` at "/" carrying the whole value).
//
// Production: an adapter over libs/firebase (FirebaseClient, FirebaseStream)
// in the gateway. Tests and the bench: MemoryKvStore (memory_kv_store.h), or
// the same adapter against tests/fakes/firebase_fake.
//
// Paths are '/'-separated, without ".json", e.g. "agents/agent-1".
// JSON values are text; "null" deletes.
#ifndef CNET_SERVICES_MACS_GATEWAY_XNODE_KV_STORE_H_
#define CNET_SERVICES_MACS_GATEWAY_XNODE_KV_STORE_H_

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace cnet::federation {

// One Server-Sent Event of a Realtime Database stream, already decoded.
struct KvEvent {
  enum class Type {
    kPut,    // `data` replaces the value at `path` (null = deleted)
    kPatch,  // each key of the object `data` (a relative child path)
             // replaces the value at `path`/key
    kReset,  // the stream was (re)opened: a kPut at "/" with the whole
             // value follows; consumers drop their cache (never lost events)
  };
  Type type = Type::kPut;
  std::string path;  // relative to the listened path, starts with "/"
  std::string data;  // JSON text
};

// A running stream. Destruction stops it (and waits for the callback).
class KvSubscription {
 public:
  virtual ~KvSubscription() = default;
};

class KvStore {
 public:
  virtual ~KvStore() = default;
  // PUT: replaces the value at `path` ("null" deletes).
  virtual absl::Status Put(const std::string& path, const std::string& json) = 0;
  // Multi-path PATCH at the root: every entry (path -> JSON, "null"
  // deletes) is applied atomically.
  virtual absl::Status Update(const std::map<std::string, std::string>& writes) = 0;
  // GET: the JSON value at `path` ("null" when absent).
  virtual absl::StatusOr<std::string> Get(const std::string& path) = 0;
  // Streams events under `path` to `on_event`, in order, on a thread of the
  // store (keep it short). Reconnects by itself; after a reconnect a kReset
  // then a kPut "/" with the whole value are delivered.
  virtual std::unique_ptr<KvSubscription> Listen(
      const std::string& path, std::function<void(const KvEvent&)> on_event) = 0;
};

}  // namespace cnet::federation

#endif  // CNET_SERVICES_MACS_GATEWAY_XNODE_KV_STORE_H_
