// Everything an engine needs, wired for tests: a temporary directory with a
// skill library and a database, the in-memory FakeNetwork as MACS/Registry/
// Tasks, the real /proc probe, and an inline executor (deterministic with a
// SimulatedClock) or a thread pool.
#ifndef CNET_SERVICES_SKILLS_TESTING_TEST_BED_H_
#define CNET_SERVICES_SKILLS_TESTING_TEST_BED_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "libs/clock/clock.h"
#include "services/skills/engine.h"
#include "services/skills/testing/fake_network.h"

namespace cnet::skills::testing {

struct TestBedOptions {
  bool inline_executor = true;
  EngineOptions engine;
  std::vector<std::string> shell_allowlist;
  // Copy this directory (e.g. the shipped skills/) as the library.
  std::string library_source;
};

// The end of a run, as the engine reports it once committed.
class RunWaiter {
 public:
  Engine::Finished Callback();
  // Waits (bounded, to fail instead of hanging) for the committed end.
  RunRecord Wait();
  bool done() const { return done_.HasBeenNotified(); }

 private:
  absl::Notification done_;
  absl::Mutex mu_;
  RunRecord rec_;
};

class TestBed {
 public:
  explicit TestBed(Clock* clock, TestBedOptions options = {});
  ~TestBed();

  const std::string& dir() const { return dir_; }
  std::string root() const { return dir_ + "/skills"; }
  // Writes a file under the library root (directories created).
  void Write(const std::string& rel, const std::string& text);
  // Reloads the library; returns the report (fails the test on error).
  ReloadReport Reload();

  Engine& engine() { return *engine_; }
  FakeNetwork& net() { return net_; }
  Store& store() { return *store_; }
  LibraryManager& library() { return *library_; }
  ActionRegistry& actions() { return *actions_; }

  // A request by `agent` (registered in the fake registry if new).
  RunRequest Request(const std::string& skill, Json inputs = Json::object(),
                     const std::string& agent = "alice");
  // Starts a run; the waiter sees its committed end.
  absl::StatusOr<RunRecord> Start(const RunRequest& req, RunWaiter* waiter);
  // Starts a run that needs no clock advance and waits for its end.
  absl::StatusOr<RunRecord> RunToEnd(const RunRequest& req);

  // Destroys the engine and the store and opens them again on the same
  // database, as a service restart would.
  void Restart();

 private:
  void Open();

  Clock* clock_;
  TestBedOptions options_;
  std::string dir_;
  FakeNetwork net_;
  ProcSystemProbe probe_;
  std::unique_ptr<Executor> pool_;
  std::unique_ptr<Executor> blocking_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<ActionRegistry> actions_;
  std::unique_ptr<LibraryManager> library_;
  std::unique_ptr<Engine> engine_;
};

}  // namespace cnet::skills::testing

#endif  // CNET_SERVICES_SKILLS_TESTING_TEST_BED_H_
