"""The Done-means scenario of issue #9, through the built binaries only.

`cnet up` on free ports and a temporary HOME -> two agents join (each with
an `agent run` companion following its inbox and tasks) -> a direct message
and a broadcast are exchanged -> a task with a dependency is created,
claimed, progressed, reviewed and completed in order -> the
network_onboarding skill runs -> `monitor --once --json` shows both agents
HEALTHY and the tasks COMPLETED -> `cnet down` stops every process -> `cnet
up` again: agents, messages and tasks are still there -> `cnet down`.
"""
import json
import os
import signal
import stat
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_lib import Suite, pid_alive  # noqa: E402


class EndToEndTest(unittest.TestCase):
    def setUp(self):
        self.suite = Suite()
        self.addCleanup(self.suite.close)

    def test_done_means(self):
        s = self.suite
        up = s.up()
        pids = [svc["pid"] for svc in up["services"]]
        self.assertEqual(len(pids), 5)

        # Two agents join; their identities are saved 0600.
        alice = s.join("alice", "python", "review")
        bob = s.join("bob", "python")
        for agent in (alice, bob):
            path = os.path.join(s.home, ".claude-network/agents", agent + ".json")
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)

        # Each runs its companion: heartbeats, messages and tasks as they come.
        run_a = s.start("--json", "--agent", alice, "agent", "run")
        hook_log = os.path.join(s.home, "bob-events.jsonl")
        run_b = s.start("--json", "--agent", bob, "agent", "run",
                        "--exec", f"cat >> {hook_log}")
        run_a.wait_stderr("running as " + alice)
        run_b.wait_stderr("running as " + bob)

        # A direct message and a broadcast, delivered through the streams.
        sent = s.ok("--agent", alice, "msg", "send", bob, "hello bob", "-s", "greeting")
        self.assertEqual(sent["recipient_count"], "1")
        got = run_b.wait_for(lambda e: e["kind"] == "message" and
                             e["entry"]["message"].get("body") == "hello bob")
        self.assertEqual(got["entry"]["message"]["sender"], alice)
        s.ok("--agent", bob, "msg", "broadcast", "--body-file", "-", input="hi all, bob here")
        got = run_a.wait_for(lambda e: e["kind"] == "message" and
                             e["entry"]["message"].get("body") == "hi all, bob here")
        self.assertEqual(got["entry"]["message"]["type"], "MESSAGE_TYPE_BROADCAST")

        # A task and one that depends on it; the first needs alice's review.
        t1 = s.ok("--agent", alice, "task", "create", "write the parser", "-c", "python",
                  "--assign-to", bob, "--review", "--payload", '{"file": "parser.py"}')["task"]
        t2 = s.ok("--agent", alice, "task", "create", "release the parser", "-c", "python",
                  "--assign-to", bob, "--dep", t1["id"])["task"]
        self.assertEqual(t2["state"], "TASK_STATE_CREATED")  # waits for t1

        claimed = s.ok("--agent", bob, "task", "claim", "--wait", "10")
        self.assertEqual(claimed["task"]["id"], t1["id"])
        run_b.wait_for(lambda e: e["kind"] == "task" and e["event"]["task"]["id"] == t1["id"])
        progress = s.ok("--agent", bob, "task", "progress", t1["id"], "50", "halfway")
        self.assertTrue(progress["lease_valid"])
        done = s.ok("--agent", bob, "task", "complete", t1["id"], "-m", "parser written",
                    "--result-file", "-", input='{"tests": 12}')["task"]
        self.assertEqual(done["state"], "TASK_STATE_REVIEWING")
        approved = s.ok("--agent", alice, "task", "review", t1["id"], "--approve",
                        "--note", "looks good")["task"]
        self.assertEqual(approved["state"], "TASK_STATE_COMPLETED")
        history = s.ok("task", "history", t1["id"])["transitions"]
        self.assertEqual([t["to_state"] for t in history],
                         ["TASK_STATE_CREATED", "TASK_STATE_QUEUED", "TASK_STATE_ASSIGNED",
                          "TASK_STATE_RUNNING", "TASK_STATE_REVIEWING", "TASK_STATE_COMPLETED"])

        # The dependency is met: the second task becomes available to bob.
        claimed = s.ok("--agent", bob, "task", "claim", "--wait", "10")
        self.assertEqual(claimed["task"]["id"], t2["id"])
        s.ok("--agent", bob, "task", "progress", t2["id"], "90")
        done = s.ok("--agent", bob, "task", "complete", t2["id"], "-m", "released")["task"]
        self.assertEqual(done["state"], "TASK_STATE_COMPLETED")

        # The onboarding skill, as bob.
        run = s.ok("--agent", bob, "skill", "run", "network_onboarding", "-i", "announce=false")
        self.assertEqual(run["state"], "RUN_STATE_SUCCEEDED", run)

        # The monitor's snapshot.
        snap = s.ok("monitor", "--once")
        health = {a["id"]: a["health"] for a in snap["agents"]}
        self.assertEqual(health, {alice: "HEALTHY", bob: "HEALTHY"})
        states = {t["id"]: t["state"] for t in snap["tasks"]["recent"]}
        self.assertEqual(states[t1["id"]], "COMPLETED")
        self.assertEqual(states[t2["id"]], "COMPLETED")
        self.assertEqual(snap["tasks"]["counts"]["COMPLETED"], 2)
        self.assertGreaterEqual(snap["messages"]["sent"], 2)
        self.assertEqual(snap["federation"]["state"], "DISABLED")
        self.assertEqual(snap["errors"], {})

        # The companions stop cleanly on SIGTERM / SIGINT and say so.
        self.assertEqual(run_a.stop(signal.SIGTERM), 0)
        self.assertEqual(run_b.stop(signal.SIGINT), 0)
        # Bob's --exec hook got each event's JSON on stdin.
        with open(hook_log) as f:
            events = [json.loads(line) for line in f]
        self.assertIn("hello bob", [e["entry"]["message"].get("body")
                                    for e in events if e["kind"] == "message"])
        self.assertIn(t1["id"], [e["event"]["task"]["id"] for e in events if e["kind"] == "task"])
        statuses = {a["id"]: a["status"] for a in s.ok("agent", "list")["agents"]}
        self.assertEqual(statuses, {alice: "AGENT_STATUS_OFFLINE", bob: "AGENT_STATUS_OFFLINE"})

        # Down stops every process.
        self.assertEqual(s.down().returncode, 0)
        for pid in pids:
            self.assertFalse(pid_alive(pid), pid)

        # Up again: everything acknowledged is still there.
        pids = [svc["pid"] for svc in s.up()["services"]]
        agents = {a["id"] for a in s.ok("agent", "list")["agents"]}
        self.assertEqual(agents, {alice, bob})
        inbox = s.ok("--agent", bob, "msg", "inbox", "--all")["entries"]
        self.assertIn("hello bob", [e["message"].get("body") for e in inbox])
        thread = s.ok("--agent", alice, "msg", "thread", sent["message_id"])["messages"]
        self.assertEqual([m["id"] for m in thread], [sent["message_id"]])
        for task in (t1, t2):
            self.assertEqual(s.ok("task", "show", task["id"])["task"]["state"],
                             "TASK_STATE_COMPLETED")
        self.assertEqual(len(s.ok("task", "history", t1["id"])["transitions"]), 6)
        self.assertEqual(s.down().returncode, 0)
        for pid in pids:
            self.assertFalse(pid_alive(pid), pid)


if __name__ == "__main__":
    unittest.main()
