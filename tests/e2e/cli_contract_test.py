"""The cnet contract scripts rely on, through the built binary only:

- with --json, stdout is exactly one JSON value for every command group
  (errors too: {"error": ...} or {"ok": false, ...}), and nothing on stderr;
- exit codes per error class: 1 usage, 2 not found, 3 conflict or
  precondition, 4 unauthenticated or denied, 5 unavailable; the error is one
  line on stderr naming what was wrong;
- every command has --help with an example;
- identity (token) files are written 0600 in a 0700 directory.
"""
import json
import os
import stat
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from e2e_lib import Suite, free_port  # noqa: E402

COMMANDS = [
    [], ["agent"], ["msg"], ["task"], ["skill"], ["config"], ["list"], ["call"],
    ["up"], ["down"], ["status"], ["health"], ["monitor"],
    ["agent", "join"], ["agent", "list"], ["agent", "show"], ["agent", "heartbeat"],
    ["agent", "leave"], ["agent", "run"],
    ["msg", "send"], ["msg", "broadcast"], ["msg", "inbox"], ["msg", "watch"], ["msg", "ack"],
    ["msg", "read"], ["msg", "thread"], ["msg", "status"], ["msg", "dead-letters"],
    ["task", "create"], ["task", "list"], ["task", "show"], ["task", "claim"],
    ["task", "progress"], ["task", "complete"], ["task", "fail"], ["task", "review"],
    ["task", "cancel"], ["task", "history"], ["task", "watch"],
    ["skill", "validate"], ["skill", "list"], ["skill", "show"], ["skill", "run"],
    ["skill", "history"], ["skill", "stats"],
    ["config", "show"], ["config", "validate"], ["config", "set"], ["config", "unset"],
    ["hook"], ["hooks"], ["hooks", "install"], ["mcp"], ["reserve"], ["release"],
    ["reservations"], ["agent", "card"],
]


class CliContractTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.suite = Suite()
        cls.suite.up()
        cls.alice = cls.suite.join("alice", "python")
        cls.bob = cls.suite.join("bob", "python")

    @classmethod
    def tearDownClass(cls):
        cls.suite.close()

    def json_only(self, *args, code=0, **kw):
        """cnet --json ARGS: the exit code, exactly one JSON value, no stderr."""
        r = self.suite.cnet("--json", *args, **kw)
        self.assertEqual(r.returncode, code, f"{args}: {r.stdout} {r.stderr}")
        self.assertEqual(r.stderr, "", args)
        return json.loads(r.stdout)  # fails unless stdout is one JSON value

    def fails(self, code, *args, mention=None, **kw):
        """cnet ARGS exits `code` with one line on stderr (naming `mention`)."""
        r = self.suite.cnet(*args, **kw)
        self.assertEqual(r.returncode, code, f"{args}: {r.stdout} {r.stderr}")
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, f"{args}: {r.stderr}")
        if mention:
            self.assertIn(mention, lines[0])
        return lines[0]

    def test_identity_files_are_private(self):
        folder = os.path.join(self.suite.home, ".claude-network/agents")
        self.assertEqual(stat.S_IMODE(os.stat(folder).st_mode), 0o700)
        for agent in (self.alice, self.bob):
            path = os.path.join(folder, agent + ".json")
            self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
            with open(path) as f:
                self.assertEqual(json.load(f)["agent_id"], agent)

    def test_agents_sign_messages_with_their_own_ed25519_key(self):
        """`cnet agent join` keeps an Ed25519 seed in the identity file (0600,
        never printed) and registers its public key; `cnet msg send` signs
        with it, and the receiver's provenance shows the signature VERIFIED."""
        a, b = self.alice, self.bob
        path = os.path.join(self.suite.home, ".claude-network/agents", a + ".json")
        with open(path) as f:
            saved = json.load(f)
        seed, key_id = saved["ed25519_seed"], saved["key_id"]
        self.assertRegex(seed, r"^[0-9a-f]{64}$")
        self.assertRegex(key_id, r"^[0-9a-f]{16}$")
        shown = self.json_only("agent", "show", a)["agent"]
        self.assertEqual(shown["public_key"]["key_id"], key_id)
        # Rejoining keeps the key, the file stays private, the seed is never
        # printed.
        r = self.suite.cnet("--json", "agent", "join", "--id", a, "--name", "alice",
                            "-c", "python")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(seed, r.stdout + r.stderr)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path) as f:
            self.assertEqual(json.load(f)["ed25519_seed"], seed)

        sent = self.json_only("--agent", a, "msg", "send", b, "signed by alice")
        inbox = self.json_only("--agent", b, "msg", "inbox", "--all")
        entry = [e for e in inbox["entries"] if e["message"]["id"] == sent["message_id"]][0]
        provenance = entry["message"]["provenance"]
        self.assertEqual(provenance["ed25519"], "SIGNATURE_STATE_VERIFIED")
        self.assertEqual(provenance["signing_key_id"], key_id)
        self.assertEqual(entry["message"]["signing_key_id"], key_id)

        # An identity file from before keys (no ed25519_seed) still sends,
        # unsigned (the gateway's default accepts it).
        bob_path = os.path.join(self.suite.home, ".claude-network/agents", b + ".json")
        with open(bob_path) as f:
            original = f.read()
        try:
            old = json.loads(original)
            old.pop("ed25519_seed")
            old.pop("key_id")
            with open(bob_path, "w") as f:
                json.dump(old, f)
            sent = self.json_only("--agent", b, "msg", "send", a, "from an old identity")
            inbox = self.json_only("--agent", a, "msg", "inbox", "--all")
            entry = [e for e in inbox["entries"] if e["message"]["id"] == sent["message_id"]][0]
            self.assertEqual(entry["message"]["provenance"]["ed25519"],
                             "SIGNATURE_STATE_UNSIGNED")
        finally:
            with open(bob_path, "w") as f:
                f.write(original)
            os.chmod(bob_path, 0o600)

    def test_help_everywhere_has_an_example(self):
        for command in COMMANDS:
            r = self.suite.cnet(*command, "--help")
            self.assertEqual(r.returncode, 0, command)
            self.assertIn("Example", r.stdout, command)

    def test_json_shapes(self):
        s, a, b = self.suite, self.alice, self.bob
        self.assertEqual({x["id"] for x in self.json_only("agent", "list")["agents"]}, {a, b})
        self.assertEqual(self.json_only("agent", "show", a)["agent"]["id"], a)

        sent = self.json_only("--agent", a, "msg", "send", b, "shape check", "--payload",
                              '{"n": 1}')
        self.assertTrue(sent["message_id"].startswith("msg-"))
        inbox = self.json_only("--agent", b, "msg", "inbox", "--all")
        self.assertIn("unread_count", inbox)
        entry = [e for e in inbox["entries"] if e["message"]["id"] == sent["message_id"]][0]
        self.assertEqual(entry["message"]["payload"], {"n": 1})
        acked = self.json_only("--agent", b, "msg", "ack", entry["inbox_sequence"])
        self.assertEqual(acked["results"][0]["outcome"], "ITEM_OUTCOME_OK")
        thread = self.json_only("--agent", a, "msg", "thread", sent["message_id"])
        self.assertEqual(len(thread["messages"]), 1)
        status = self.json_only("--agent", a, "msg", "status", sent["message_id"])
        self.assertEqual(status["recipients"][0]["state"], "DELIVERY_STATE_ACKED")
        self.assertIn("dead_letters", self.json_only("--agent", b, "msg", "dead-letters") | {
            "dead_letters": []})

        # A capability nobody has: the task stays QUEUED until cancelled.
        created = self.json_only("--agent", a, "task", "create", "shape task", "-c", "nobody",
                                 "--tag", "shape", "--payload-file", "-", input='{"k": "v"}')
        self.assertTrue(created["created"])
        task = created["task"]
        self.assertEqual(task["payload"], {"k": "v"})
        listed = self.json_only("task", "list", "--tag", "shape")
        self.assertEqual([t["id"] for t in listed["tasks"]], [task["id"]])
        self.assertEqual(listed["total"], 1)
        shown = self.json_only("task", "show", task["id"], "--explain")
        self.assertEqual(shown["explain"]["task_id"], task["id"])
        self.assertEqual(self.json_only("task", "history", task["id"])["task_id"], task["id"])
        cancelled = self.json_only("task", "cancel", task["id"], "--reason", "shape test")
        self.assertEqual(cancelled["task"]["state"], "TASK_STATE_CANCELLED")
        # Streams print JSON Lines: one object per event (here replayed from
        # the retained log: created, queued, cancelled).
        events = self.suite.cnet("--json", "task", "watch", "--task", task["id"], "--from", "1",
                                 "--count", "3")
        self.assertEqual(events.returncode, 0, events.stderr)
        lines = [json.loads(line) for line in events.stdout.splitlines()]
        self.assertEqual([e["type"] for e in lines],
                         ["TASK_EVENT_TYPE_CREATED", "TASK_EVENT_TYPE_TRANSITION",
                          "TASK_EVENT_TYPE_TRANSITION"])
        self.assertEqual(lines[-1]["transition"]["to_state"], "TASK_STATE_CANCELLED")

        snap = self.json_only("monitor", "--once")
        self.assertEqual(set(snap), {"agents", "agent_health", "tasks", "messages",
                                     "federation", "errors"})
        self.assertEqual(set(snap["tasks"]), {"counts", "top_queued", "recent"})
        status = self.json_only("status")
        self.assertEqual(len(status["services"]), 5)
        self.assertTrue(all(svc["uptime_s"] >= 0 for svc in status["services"]))
        self.assertEqual(status["federation"]["state"], "DISABLED")
        self.assertIn("values", self.json_only("config", "show", "network.heartbeat_interval"))

        run = self.json_only("--agent", a, "skill", "run", "network_onboarding",
                             "-i", "announce=false")
        self.assertEqual(run["state"], "RUN_STATE_SUCCEEDED")
        runs = self.json_only("skill", "history", "network_onboarding")["runs"]
        self.assertIn(run["run_id"], [r["run_id"] for r in runs])
        one = self.json_only("skill", "history", "--run", run["run_id"])
        self.assertEqual(one["run"]["run_id"], run["run_id"])
        stats = self.json_only("skill", "stats", "network_onboarding")
        self.assertEqual(stats["stats"][0]["skill_name"], "network_onboarding")
        self.assertIn("network_onboarding",
                      [k["name"] for k in self.json_only("skill", "list")["skills"]])

        # Errors with --json: still one JSON value on stdout, the exit code
        # of the class.
        err = self.json_only("task", "show", "task-01m8bz8gyp64xnya54ptgsty2h", code=2)
        self.assertIn("error", err)

    def test_live_monitor_draws_from_the_streams(self):
        # Not a terminal: frames are separated by a blank line, no colours.
        r = self.suite.cnet("monitor", "--for", "2")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("AGENTS 2", r.stdout)
        self.assertIn("FEDERATION  DISABLED", r.stdout)
        self.assertNotIn("\033[", r.stdout)

    def test_exit_codes_per_error_class(self):
        s, a, b = self.suite, self.alice, self.bob
        # 1: usage / invalid input.
        self.fails(1, "task", "create")
        self.fails(1, "task", "list", "--state", "bogus", mention="--state")
        self.fails(1, "--agent", a, "msg", "send", b, "x", "--payload", "[1]", mention="--payload")
        self.fails(1, "task", "show", "not-a-task", mention="not-a-task")
        # 2: not found.
        self.fails(2, "task", "show", "task-01m8bz8gyp64xnya54ptgsty2h",
                   mention="task-01m8bz8gyp64xnya54ptgsty2h")
        self.fails(2, "--agent", a, "msg", "send", "agent-nobody", "hi", mention="agent-nobody")
        # 3: conflict / precondition.
        task = self.json_only("--agent", a, "task", "create", "not submitted")["task"]
        self.fails(3, "--agent", b, "task", "review", task["id"], "--approve", mention=task["id"])
        self.fails(3, "up", "--bin-dir", "/nonexistent", mention="already running")
        self.json_only("task", "cancel", task["id"])
        # 4: unauthenticated / denied.
        self.fails(4, "--agent", a, "--token", "bogus-token", "task", "claim")
        self.fails(4, "msg", "inbox", mention="--agent")  # two identities, none chosen
        self.fails(4, "--agent", "agent-unknown", "msg", "inbox", mention="agent-unknown")
        # 5: unavailable (nothing listens there).
        self.fails(5, "--timeout", "2", "task", "list",
                   env={"CNET_SERVICES__TASKS_ADDR": f"127.0.0.1:{free_port()}"},
                   mention="unavailable")
        self.fails(5, "--timeout", "2", "--macs-addr", f"127.0.0.1:{free_port()}",
                   "--agent", a, "msg", "inbox", mention="unavailable")


if __name__ == "__main__":
    unittest.main()
