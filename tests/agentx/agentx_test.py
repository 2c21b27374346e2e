"""Agent experience (issue 13) against a live suite, as Claude Code and agents use it.

- `cnet mcp` as a subprocess: a full MCP session (initialize, tools/list,
  tools/call of several tools, shutdown by closing stdin) with every response
  checked against the MCP / JSON-RPC shapes; malformed lines answered with
  the right error codes while the server keeps serving.
- Reservations between two agents: exclusive vs shared overlapping globs,
  per-item answers, bad input; the git pre-commit hook refusing a commit that
  touches another agent's exclusive reservation; overlapping reported changed
  paths.
- `cnet hook` events fed recorded-shape JSON on stdin: SessionStart joins and
  starts the heartbeater, PreToolUse denies a reserved path naming the holder
  and allows a free one, injects urgent messages, Stop / SessionEnd report
  and release; with the suite down the hook allows and warns once;
  `cnet hooks install` merges into an existing settings file.
- `cnet agent card` / `cards`: the A2A card's required fields.

One suite (five services on free ports, temporary HOME and data dir) serves
all tests; each test uses its own agents and workspace.
"""
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

RUNFILES = os.environ.get("TEST_SRCDIR", "") + "/claudenet"
CNET = os.path.join(RUNFILES, "tools/cnet/cnet")
PRE_COMMIT = os.path.join(RUNFILES, "tools/pre-commit")
ADDR_KEYS = ["CONFIG_ADDR", "REGISTRY_ADDR", "MACS_ADDR", "TASKS_ADDR", "SKILLS_ADDR"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def wait_until(predicate, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


class Suite:
    """Five services on free ports with a temporary HOME."""

    def __init__(self):
        self.root = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        self.home = os.path.join(self.root, "home")
        self.project = os.path.join(self.root, "project")
        os.makedirs(self.home)
        os.makedirs(self.project)
        self.env = {"HOME": self.home, "PATH": "/usr/bin:/bin",
                    "CNET_NETWORK__NODE_ID": "agentx-node",
                    "CNET_SERVICES__DATA_DIR": os.path.join(self.root, "data"),
                    "GIT_CONFIG_NOSYSTEM": "1"}
        self.pick_ports()

    def pick_ports(self):
        for key in ADDR_KEYS:
            self.env["CNET_SERVICES__" + key] = f"127.0.0.1:{free_port()}"
            self.env["CNET_SERVICES__" + key.replace("_ADDR", "_METRICS_PORT")] = str(free_port())

    def cnet(self, *args, env=None, cwd=None, stdin=None, home=None):
        e = dict(self.env)
        if home:
            e["HOME"] = home
        if env:
            e.update(env)
        return subprocess.run([CNET, "--project-dir", self.project, *args], env=e,
                              cwd=cwd or self.project, input=stdin, capture_output=True,
                              text=True, timeout=60)

    def up(self):
        # A free port can be taken by a parallel test between picking and
        # binding: then start again on other ports.
        for attempt in range(3):
            up = self.cnet("up", "--bin-dir", os.path.join(RUNFILES, "services"))
            if up.returncode == 0:
                return
            self.cnet("down")
            self.pick_ports()
        raise RuntimeError("cnet up failed: " + up.stderr)

    def down(self):
        self.cnet("down")
        shutil.rmtree(self.root, ignore_errors=True)


SUITE = None


def shared_suite():
    """Started by the first test that needs it, stopped at exit (the runner
    does not run module fixtures)."""
    global SUITE
    if SUITE is None:
        SUITE = Suite()
        atexit.register(SUITE.down)
        SUITE.up()
    return SUITE


class Base(unittest.TestCase):
    counter = 0

    def setUp(self):
        self.s = shared_suite()
        Base.counter += 1
        # A git repository of its own: its own workspace.
        self.repo = tempfile.mkdtemp(dir=self.s.root, prefix="repo")
        for args in (["init", "-q"], ["config", "user.email", "t@example.com"],
                     ["config", "user.name", "t"]):
            subprocess.run(["git", "-C", self.repo, *args], check=True, env=self.s.env)
        os.makedirs(os.path.join(self.repo, "src"))
        os.makedirs(os.path.join(self.repo, "docs"))
        for name in ("src/a.cc", "src/b.cc", "docs/readme.md"):
            with open(os.path.join(self.repo, name), "w") as f:
                f.write("v1\n")
        subprocess.run(["git", "-C", self.repo, "add", "-A"], check=True, env=self.s.env)
        subprocess.run(["git", "-C", self.repo, "commit", "-qm", "base"], check=True,
                       env=self.s.env)

    def join(self, name, *caps):
        args = ["--json", "agent", "join", "--name", name]
        for c in caps:
            args += ["-c", c]
        out = self.s.cnet(*args)
        self.assertEqual(out.returncode, 0, out.stderr)
        return json.loads(out.stdout)["agent"]["id"]

    def as_agent(self, agent_id, *args, cwd=None, stdin=None):
        return self.s.cnet(*args, env={"CNET_AGENT_ID": agent_id}, cwd=cwd or self.repo,
                           stdin=stdin)


class Mcp:
    """`cnet mcp` as a subprocess speaking newline-delimited JSON-RPC."""

    def __init__(self, suite, agent_id, cwd, extra=()):
        env = dict(suite.env)
        if agent_id:
            env["CNET_AGENT_ID"] = agent_id
        self.proc = subprocess.Popen([CNET, "--project-dir", suite.project, "mcp", *extra],
                                     env=env, cwd=cwd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.next_id = 0

    def send_raw(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("cnet mcp closed stdout: " + self.proc.stderr.read())
        return json.loads(line)

    def request(self, method, params=None):
        self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            msg["params"] = params
        self.send_raw(json.dumps(msg))
        response = self.read()
        assert response["id"] == self.next_id, response
        return response

    def call(self, tool, **arguments):
        return self.request("tools/call", {"name": tool, "arguments": arguments})

    def close(self):
        self.proc.stdin.close()
        rc = self.proc.wait(timeout=30)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return rc


class McpTest(Base):
    def check_result(self, response):
        """A JSON-RPC success response with an MCP CallToolResult."""
        self.assertEqual(response["jsonrpc"], "2.0")
        self.assertNotIn("error", response, response)
        result = response["result"]
        self.assertIsInstance(result["content"], list)
        self.assertGreaterEqual(len(result["content"]), 1)
        for block in result["content"]:
            self.assertEqual(block["type"], "text")
            self.assertIsInstance(block["text"], str)
        self.assertIsInstance(result["isError"], bool)
        self.assertIsInstance(result["structuredContent"], dict)
        return result

    def test_full_session(self):
        alice = self.join("mcp-alice", "python")
        bob = self.join("mcp-bob", "review")
        mcp = Mcp(self.s, alice, self.repo)
        try:
            init = mcp.request("initialize", {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "test", "version": "1"}})
            self.assertEqual(init["jsonrpc"], "2.0")
            result = init["result"]
            self.assertEqual(result["protocolVersion"], "2025-06-18")
            self.assertIn("tools", result["capabilities"])
            self.assertEqual(result["serverInfo"]["name"], "cnet")
            self.assertIsInstance(result["serverInfo"]["version"], str)
            mcp.send_raw(json.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            self.assertEqual(mcp.request("ping")["result"], {})

            tools = mcp.request("tools/list")["result"]["tools"]
            names = {t["name"] for t in tools}
            self.assertEqual(names, {"network_status", "list_agents", "send_message",
                                     "read_inbox", "ack", "task_create", "task_claim",
                                     "task_update", "task_complete", "reserve_paths",
                                     "release_paths"})
            for t in tools:
                self.assertIsInstance(t["description"], str)
                self.assertEqual(t["inputSchema"]["type"], "object")
                self.assertIsInstance(t["inputSchema"]["properties"], dict)
                for required in t["inputSchema"].get("required", []):
                    self.assertIn(required, t["inputSchema"]["properties"])

            status = self.check_result(mcp.call("network_status"))
            self.assertFalse(status["isError"])
            self.assertGreaterEqual(status["structuredContent"]["total_agents"], 2)
            self.assertEqual(status["structuredContent"]["you"], alice)

            agents = self.check_result(mcp.call("list_agents", capability="review"))
            self.assertIn(bob, [a["id"] for a in agents["structuredContent"]["agents"]])

            sent = self.check_result(mcp.call("send_message", to=bob, subject="hi",
                                              body="please review src/", priority="high"))
            self.assertFalse(sent["isError"], sent)
            self.assertEqual(sent["structuredContent"]["recipient_count"], 1)

            created = self.check_result(mcp.call("task_create", title="write the parser",
                                                 capabilities=["python"]))
            self.assertFalse(created["isError"], created)
            task_id = created["structuredContent"]["task"]["id"]
            claimed = self.check_result(mcp.call("task_claim", task_id=task_id))
            self.assertFalse(claimed["isError"], claimed)
            self.assertEqual(claimed["structuredContent"]["task"]["state"], "running")
            progress = self.check_result(mcp.call("task_update", task_id=task_id, percent=50,
                                                  note="half way"))
            self.assertFalse(progress["isError"], progress)
            self.assertTrue(progress["structuredContent"]["lease_valid"])
            done = self.check_result(mcp.call("task_complete", task_id=task_id,
                                              summary="parser written"))
            self.assertFalse(done["isError"], done)
            self.assertIn(done["structuredContent"]["task"]["state"], ("completed", "reviewing"))

            reserved = self.check_result(mcp.call("reserve_paths", patterns=["src/**"],
                                                  reason="parser work", ttl_seconds=600))
            self.assertFalse(reserved["isError"], reserved)
            self.assertEqual(reserved["structuredContent"]["results"][0]["outcome"], "ok")
            released = self.check_result(mcp.call("release_paths", patterns=["src/**", "nope/*"]))
            self.assertEqual([r["outcome"] for r in released["structuredContent"]["results"]],
                             ["ok", "not_found"])

            # A tool that runs and fails is a result with isError, not a protocol error.
            failed = self.check_result(mcp.call("task_update", task_id="task-unknown",
                                                percent=1))
            self.assertTrue(failed["isError"])
        finally:
            self.assertEqual(mcp.close(), 0)

        # Bob reads his inbox through his own MCP server and acknowledges.
        mcp = Mcp(self.s, bob, self.repo)
        try:
            mcp.request("initialize", {"protocolVersion": "2024-11-05", "capabilities": {},
                                       "clientInfo": {"name": "t", "version": "1"}})
            inbox = self.check_result(mcp.call("read_inbox", limit=5))
            messages = inbox["structuredContent"]["messages"]
            self.assertEqual([m["from"] for m in messages], [alice])
            self.assertEqual(messages[0]["body"], "please review src/")
            acked = self.check_result(mcp.call("ack", sequences=[messages[0]["sequence"]]))
            self.assertEqual(acked["structuredContent"]["results"][0]["outcome"], "ok")
            again = self.check_result(mcp.call("read_inbox"))
            self.assertEqual(again["structuredContent"]["messages"], [])
        finally:
            self.assertEqual(mcp.close(), 0)

    def test_malformed_lines_get_error_codes_and_serving_continues(self):
        alice = self.join("mcp-malformed")
        mcp = Mcp(self.s, alice, self.repo, extra=["--max-line", "2000"])
        try:
            def error_of(line):
                mcp.send_raw(line)
                response = mcp.read()
                self.assertEqual(response["jsonrpc"], "2.0")
                self.assertNotIn("result", response)
                self.assertIsInstance(response["error"]["message"], str)
                return response

            r = error_of("{not json")
            self.assertEqual((r["id"], r["error"]["code"]), (None, -32700))
            self.assertEqual(error_of("[]")["error"]["code"], -32600)
            self.assertEqual(error_of("42")["error"]["code"], -32600)
            r = error_of('{"jsonrpc":"1.0","id":7,"method":"ping"}')
            self.assertEqual((r["id"], r["error"]["code"]), (7, -32600))
            self.assertEqual(error_of('{"jsonrpc":"2.0","id":true,"method":"ping"}')
                             ["error"]["code"], -32600)
            r = error_of('{"jsonrpc":"2.0","id":8,"method":"resources/list"}')
            self.assertEqual((r["id"], r["error"]["code"]), (8, -32601))
            r = error_of('{"jsonrpc":"2.0","id":9,"method":"initialize","params":{}}')
            self.assertEqual(r["error"]["code"], -32602)
            self.assertIn("protocolVersion", r["error"]["message"])
            r = error_of(json.dumps({"jsonrpc": "2.0", "id": 10, "method": "tools/call",
                                     "params": {"name": "send_message",
                                                "arguments": {"body": "x"}}}))
            self.assertEqual(r["error"]["code"], -32602)
            self.assertIn("arguments.to", r["error"]["message"])
            r = error_of(json.dumps({"jsonrpc": "2.0", "id": 11, "method": "tools/call",
                                     "params": {"name": "read_inbox",
                                                "arguments": {"limit": "many"}}}))
            self.assertIn("arguments.limit", r["error"]["message"])
            r = error_of(json.dumps({"jsonrpc": "2.0", "id": 12, "method": "tools/call",
                                     "params": {"name": "no_such_tool"}}))
            self.assertEqual(r["error"]["code"], -32602)
            self.assertIn("no_such_tool", r["error"]["message"])
            r = error_of(json.dumps({"jsonrpc": "2.0", "id": 13, "method": "ping",
                                     "params": {"pad": "x" * 5000}}))
            self.assertEqual((r["id"], r["error"]["code"]), (None, -32600))
            self.assertIn("too large", r["error"]["message"])
            # Notifications (even unknown ones) are never answered; the next
            # request gets the next response.
            mcp.send_raw('{"jsonrpc":"2.0","method":"notifications/whatever"}')
            mcp.send_raw("")
            r = mcp.request("ping")
            self.assertEqual(r["result"], {})
            # Unknown protocol version: the server answers with its own.
            init = mcp.request("initialize", {"protocolVersion": "1999-01-01",
                                              "capabilities": {},
                                              "clientInfo": {"name": "t", "version": "1"}})
            self.assertEqual(init["result"]["protocolVersion"], "2025-06-18")
        finally:
            self.assertEqual(mcp.close(), 0)


class ReservationTest(Base):
    def test_exclusive_and_shared_overlapping_globs(self):
        alice = self.join("res-alice")
        bob = self.join("res-bob")
        r = self.as_agent(alice, "reserve", "src/**", "--reason", "refactor", "--ttl", "10m")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("OK src/**"), r.stdout)

        # Bob's overlapping exclusive glob is refused, naming the holder.
        r = self.as_agent(bob, "reserve", "src/*.cc")
        self.assertEqual(r.returncode, 3, r.stdout)
        self.assertIn(alice, r.stderr)
        self.assertIn("src/**", r.stderr)
        # The global --agent flag names the identity too (two are saved).
        r = self.s.cnet("--agent", bob, "reserve", "src/*.cc", cwd=self.repo)
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn(alice, r.stderr)
        # Shared does not get around an exclusive reservation either.
        r = self.as_agent(bob, "--json", "reserve", "--shared", "--partial", "src/a.cc",
                          "docs/*.md")
        self.assertEqual(r.returncode, 3, r.stdout)
        results = json.loads(r.stdout)["results"]
        self.assertEqual([x["outcome"] for x in results],
                         ["PATH_OUTCOME_CONFLICT", "PATH_OUTCOME_OK"])
        self.assertEqual(results[0]["conflicts"][0]["holder"], alice)
        # Shared + shared coexist; exclusive over shared is refused.
        self.assertEqual(self.as_agent(alice, "reserve", "--shared", "docs/readme.md").returncode, 0)
        r = self.as_agent(alice, "reserve", "docs/**")
        self.assertEqual(r.returncode, 3)
        self.assertIn(bob, r.stderr)

        # CheckPaths: blocked for Bob, allowed for Alice; shared does not block.
        r = self.as_agent(bob, "reservations", "check", "src/a.cc", "docs/readme.md")
        self.assertEqual(r.returncode, 3, r.stdout)
        self.assertIn("BLOCKED src/a.cc", r.stdout)
        self.assertIn(alice, r.stdout)
        self.assertEqual(self.as_agent(alice, "reservations", "check", "src/a.cc").returncode, 0)

        # Listing shows both holders; per-item release answers.
        r = self.as_agent(alice, "--json", "reservations")
        holders = {x["holder"] for x in json.loads(r.stdout)["reservations"]}
        self.assertTrue({alice, bob} <= holders)
        r = self.as_agent(bob, "release", "src/**")
        self.assertEqual(r.returncode, 3)
        self.assertIn("NOT_OWNER src/**", r.stdout)
        r = self.as_agent(alice, "release", "src/**", "never/**")
        self.assertEqual(r.returncode, 3)
        self.assertIn("OK src/**", r.stdout)
        self.assertIn("NOT_FOUND never/**", r.stdout)
        self.assertEqual(self.as_agent(bob, "reservations", "check", "src/a.cc").returncode, 0)

        # Bad input: clear errors, exit 1, nothing stored.
        before = self.as_agent(alice, "--json", "reservations").stdout
        for args in (["reserve", "/abs/path"], ["reserve", "src/../x"],
                     ["reserve", "a/**", "a/b"], ["reserve", "x", "--ttl", "1s"],
                     ["reserve", "x", "--ttl", "48h"]):
            r = self.as_agent(alice, *args)
            self.assertEqual(r.returncode, 1, (args, r.stdout, r.stderr))
        self.assertEqual(self.as_agent(alice, "--json", "reservations").stdout, before)
        self.assertEqual(self.as_agent(alice, "release", "--all").returncode, 0)
        self.assertEqual(self.as_agent(bob, "release", "--all").returncode, 0)

    def test_renew_and_admin_force_release_answer_per_item(self):
        alice = self.join("renew-alice")
        bob = self.join("renew-bob")
        r = self.as_agent(alice, "--json", "reserve", "lib/**", "--ttl", "5m")
        self.assertEqual(r.returncode, 0, r.stderr)
        res_id = json.loads(r.stdout)["results"][0]["reservation_id"]
        r = self.as_agent(alice, "reservations", "renew", "lib/**", "--ttl", "20m")
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertTrue(r.stdout.startswith("OK lib/**"), r.stdout)
        r = self.as_agent(bob, "reservations", "renew", "--id", res_id)
        self.assertEqual(r.returncode, 3)
        self.assertIn("NOT_OWNER", r.stdout)
        # Agents cannot force-release; the admin (local admin.token) can.
        r = self.s.cnet("--token", "not-admin", "reservations", "force-release", "--id", res_id,
                        "--reason", "stuck")
        self.assertEqual(r.returncode, 4, r.stderr)
        r = self.s.cnet("reservations", "force-release", "--id", res_id, "--reason", "stuck")
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        self.assertIn("OK lib/**", r.stdout)
        r = self.as_agent(alice, "reservations", "renew", "--id", res_id)
        self.assertEqual(r.returncode, 3)
        self.assertRegex(r.stdout, "(NOT_FOUND|EXPIRED)")

    def test_pre_commit_refuses_a_commit_touching_another_agents_reservation(self):
        alice = self.join("commit-alice")
        bob = self.join("commit-bob")
        r = self.s.cnet("hooks", "install", "--git", "--project", self.repo,
                        "--command", CNET, cwd=self.repo)
        self.assertEqual(r.returncode, 0, r.stderr)
        hook = os.path.join(self.repo, ".git/hooks/pre-commit")
        self.assertTrue(os.access(hook, os.X_OK))
        self.assertEqual(self.as_agent(alice, "reserve", "src/**").returncode, 0)

        def commit(agent, path):
            with open(os.path.join(self.repo, path), "a") as f:
                f.write("change by %s\n" % agent)
            env = dict(self.s.env, CNET_AGENT_ID=agent)
            # The hook runs cnet with the project dir of the suite's config.
            env["CNET_SERVICES__DATA_DIR"] = self.s.env["CNET_SERVICES__DATA_DIR"]
            subprocess.run(["git", "-C", self.repo, "add", path], check=True, env=env)
            return subprocess.run(["git", "-C", self.repo, "commit", "-qm", "edit " + path],
                                  env=env, capture_output=True, text=True, timeout=60)

        refused = commit(bob, "src/a.cc")
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn(alice, refused.stdout + refused.stderr)
        self.assertIn("reserved by another agent", refused.stderr)
        subprocess.run(["git", "-C", self.repo, "reset", "-q", "HEAD", "src/a.cc"], check=True)
        subprocess.run(["git", "-C", self.repo, "checkout", "-q", "src/a.cc"], check=True)
        allowed = commit(bob, "docs/readme.md")
        self.assertEqual(allowed.returncode, 0, allowed.stderr)
        own = commit(alice, "src/b.cc")
        self.assertEqual(own.returncode, 0, own.stderr)
        # tools/pre-commit, the script in the repository, refuses the same way.
        with open(os.path.join(self.repo, "src/a.cc"), "a") as f:
            f.write("bob again\n")
        subprocess.run(["git", "-C", self.repo, "add", "src/a.cc"], check=True)
        script = subprocess.run(["sh", PRE_COMMIT], cwd=self.repo, capture_output=True,
                                text=True, timeout=60,
                                env=dict(self.s.env, CNET=CNET, CNET_AGENT_ID=bob))
        self.assertEqual(script.returncode, 1, script.stdout + script.stderr)
        self.as_agent(alice, "release", "--all")

    def test_overlapping_changed_paths_are_reported_to_both(self):
        alice = self.join("changed-alice")
        bob = self.join("changed-bob")
        r = self.as_agent(alice, "--json", "reservations", "report-changed", "src/a.cc",
                          "src/b.cc")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout).get("overlaps", []), [])
        r = self.as_agent(bob, "--json", "reservations", "report-changed", "src/b.cc",
                          "docs/readme.md")
        self.assertEqual(r.returncode, 0, r.stderr)
        overlaps = json.loads(r.stdout)["overlaps"]
        self.assertEqual(overlaps[0]["other_agent_id"], alice)
        self.assertEqual(overlaps[0]["paths"], ["src/b.cc"])
        # From git: Alice's working tree changes against HEAD.
        with open(os.path.join(self.repo, "docs/readme.md"), "a") as f:
            f.write("alice\n")
        r = self.as_agent(alice, "reservations", "report-changed", "--base", "HEAD")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("OVERLAP with " + bob, r.stdout)


class HookTest(Base):
    def hook(self, event, payload, agent=None, home=None, env=None, deadline="20"):
        # A generous deadline: under load a 1.5 s one could pass for "suite
        # down"; the suite-down test keeps the default.
        e = dict(env or {})
        if agent:
            e["CNET_AGENT_ID"] = agent
        extra = ["--deadline", deadline] if deadline else []
        r = self.s.cnet("hook", event, *extra, stdin=json.dumps(payload), env=e, home=home,
                        cwd=self.repo)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def payload(self, event, session, **extra):
        p = {"session_id": session, "transcript_path": "/tmp/t.jsonl", "cwd": self.repo,
             "hook_event_name": event}
        p.update(extra)
        return p

    def test_session_start_joins_heartbeats_and_session_end_releases(self):
        home = tempfile.mkdtemp(dir=self.s.root, prefix="home")  # no saved identity yet
        session = "sess-start-%d" % Base.counter
        out = self.hook("session-start", self.payload("SessionStart", session, source="startup"),
                        home=home)
        context = out["hookSpecificOutput"]
        self.assertEqual(context["hookEventName"], "SessionStart")
        self.assertIn("You are agent", context["additionalContext"])
        self.assertIn("Inbox: 0 unread", context["additionalContext"])
        self.assertIn("Tasks assigned to you: none", context["additionalContext"])
        saved = os.listdir(os.path.join(home, ".claude-network/agents"))
        self.assertEqual(len(saved), 1)
        agent = saved[0][:-len(".json")]
        self.assertIn(agent, context["additionalContext"])
        pid_file = os.path.join(home, ".claude-network/hooks/sessions", session + ".pid")
        self.assertTrue(wait_until(lambda: os.path.exists(pid_file)), "no heartbeater")
        with open(pid_file) as f:
            pid = int(f.read())
        self.assertTrue(pid_alive(pid))

        # A second start (resume) rejoins with the saved identity.
        out = self.hook("session-start", self.payload("SessionStart", session, source="resume"),
                        home=home)
        self.assertIn(agent, out["hookSpecificOutput"]["additionalContext"])
        self.assertEqual(len(os.listdir(os.path.join(home, ".claude-network/agents"))), 1)
        self.assertTrue(wait_until(lambda: not pid_alive(pid)), "old heartbeater not stopped")
        self.assertTrue(wait_until(lambda: os.path.exists(pid_file)))
        with open(pid_file) as f:
            pid = int(f.read())

        r = self.s.cnet("reserve", "src/**", home=home, cwd=self.repo)
        self.assertEqual(r.returncode, 0, r.stderr)
        stop = self.hook("stop", self.payload("Stop", session, stop_hook_active=False), home=home)
        self.assertNotIn("decision", stop)  # never blocks the stop
        show = self.s.cnet("--json", "agent", "show", agent, home=home)
        self.assertEqual(json.loads(show.stdout)["agent"]["status"], "AGENT_STATUS_AWAY")
        self.assertEqual(self.s.cnet("--json", "reservations", "--holder", agent,
                                     home=home).returncode, 0)
        listed = json.loads(self.s.cnet("--json", "reservations", "--holder", agent,
                                        home=home).stdout)["reservations"]
        self.assertEqual(len(listed), 1)  # Stop (each turn) keeps reservations

        self.hook("session-end", self.payload("SessionEnd", session, reason="exit"), home=home)
        listed = json.loads(self.s.cnet("--json", "reservations", "--holder", agent,
                                        home=home).stdout)["reservations"]
        self.assertEqual(listed, [])
        show = self.s.cnet("--json", "agent", "show", agent, home=home)
        self.assertEqual(json.loads(show.stdout)["agent"]["status"], "AGENT_STATUS_OFFLINE")
        self.assertTrue(wait_until(lambda: not pid_alive(pid)), "heartbeater still running")
        self.assertFalse(os.path.exists(pid_file))

    def test_pre_tool_use_denies_reserved_paths_and_surfaces_urgent_messages(self):
        alice = self.join("hook-alice")
        bob = self.join("hook-bob")
        self.assertEqual(self.as_agent(alice, "reserve", "src/**", "--reason",
                                       "big refactor").returncode, 0)
        session = "sess-pre-%d" % Base.counter
        edit = self.payload("PreToolUse", session, tool_name="Edit", tool_use_id="toolu_1",
                            tool_input={"file_path": os.path.join(self.repo, "src/a.cc"),
                                        "old_string": "v1", "new_string": "v2"})
        out = self.hook("pre-tool-use", edit, agent=bob)
        decision = out["hookSpecificOutput"]
        self.assertEqual(decision["hookEventName"], "PreToolUse")
        self.assertEqual(decision["permissionDecision"], "deny")
        self.assertIn(alice, decision["permissionDecisionReason"])
        self.assertIn("until", decision["permissionDecisionReason"])
        self.assertIn("big refactor", decision["permissionDecisionReason"])

        # The holder itself, and a free path, are not blocked (no decision:
        # Claude Code's own permission flow applies).
        self.assertEqual(self.hook("pre-tool-use", edit, agent=alice), {})
        write = self.payload("PreToolUse", session, tool_name="Write",
                             tool_input={"file_path": os.path.join(self.repo, "docs/new.md"),
                                         "content": "x"})
        self.assertEqual(self.hook("pre-tool-use", write, agent=bob), {})
        multi = self.payload("PreToolUse", session,
                             tool_name="MultiEdit",
                             tool_input={"file_path": "src/b.cc", "edits": []})
        self.assertEqual(self.hook("pre-tool-use", multi, agent=bob)["hookSpecificOutput"]
                         ["permissionDecision"], "deny")
        notebook = self.payload("PreToolUse", session, tool_name="NotebookEdit",
                                tool_input={"notebook_path": os.path.join(self.repo, "src/n.ipynb"),
                                            "new_source": "x"})
        self.assertEqual(self.hook("pre-tool-use", notebook, agent=bob)["hookSpecificOutput"]
                         ["permissionDecision"], "deny")
        read = self.payload("PreToolUse", session, tool_name="Read",
                            tool_input={"file_path": os.path.join(self.repo, "src/a.cc")})
        self.assertEqual(self.hook("pre-tool-use", read, agent=bob), {})

        # An urgent message reaches Bob's model before his next edit, once.
        mcp = Mcp(self.s, alice, self.repo)
        try:
            mcp.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                       "clientInfo": {"name": "t", "version": "1"}})
            sent = mcp.call("send_message", to=bob, subject="stop", priority="critical",
                            body="do not touch the parser")["result"]
            self.assertFalse(sent["isError"], sent)
        finally:
            mcp.close()
        out = self.hook("pre-tool-use", write, agent=bob)
        context = out["hookSpecificOutput"]["additionalContext"]
        self.assertIn("do not touch the parser", context)
        self.assertIn(alice, context)
        self.assertNotIn("permissionDecision", out["hookSpecificOutput"])
        self.assertEqual(self.hook("pre-tool-use", write, agent=bob), {})
        self.as_agent(alice, "release", "--all")

    def test_suite_down_allows_and_warns_once(self):
        home = tempfile.mkdtemp(dir=self.s.root, prefix="home")
        env = {"CNET_SERVICES__REGISTRY_ADDR": f"127.0.0.1:{free_port()}",
               "CNET_SERVICES__MACS_ADDR": f"127.0.0.1:{free_port()}",
               "CNET_SERVICES__TASKS_ADDR": f"127.0.0.1:{free_port()}"}
        # An identity exists, the suite does not answer.
        agents = os.path.join(home, ".claude-network/agents")
        os.makedirs(agents)
        with open(os.path.join(agents, "agent-offline.json"), "w") as f:
            json.dump({"agent_id": "agent-offline", "token": "t" * 64}, f)
        edit = self.payload("PreToolUse", "sess-down", tool_name="Edit",
                            tool_input={"file_path": os.path.join(self.repo, "src/a.cc")})
        started = time.monotonic()
        first = self.hook("pre-tool-use", edit, home=home, env=env, deadline=None)
        self.assertLess(time.monotonic() - started, 20)
        self.assertNotIn("hookSpecificOutput", first)  # allowed: no deny
        self.assertIn("unreachable", first["systemMessage"])
        second = self.hook("pre-tool-use", edit, home=home, env=env)
        self.assertEqual(second, {})
        start = self.hook("session-start", self.payload("SessionStart", "sess-down"),
                          home=home, env=env)
        self.assertNotIn("systemMessage", start)  # said once already
        self.assertEqual(self.hook("session-end", self.payload("SessionEnd", "sess-down"),
                                   home=home, env=env), {})

    def test_hooks_install_merges_without_losing_entries(self):
        project = tempfile.mkdtemp(dir=self.s.root, prefix="proj")
        os.makedirs(os.path.join(project, ".claude"))
        existing = {
            "permissions": {"allow": ["Bash(npm test)"]},
            "model": "opus",
            "hooks": {
                "PreToolUse": [{"matcher": "Bash",
                                "hooks": [{"type": "command", "command": "./check.sh"}]}],
                "PostToolUse": [{"matcher": "Edit",
                                 "hooks": [{"type": "command", "command": "fmt"}]}],
            },
        }
        path = os.path.join(project, ".claude/settings.json")
        with open(path, "w") as f:
            json.dump(existing, f)
        r = self.s.cnet("hooks", "install", "--project", project, "--command", "cnet")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(path) as f:
            merged = json.load(f)
        self.assertEqual(merged["permissions"], existing["permissions"])
        self.assertEqual(merged["model"], "opus")
        self.assertEqual(merged["hooks"]["PostToolUse"], existing["hooks"]["PostToolUse"])
        pre = merged["hooks"]["PreToolUse"]
        self.assertEqual(pre[0], existing["hooks"]["PreToolUse"][0])
        self.assertEqual(pre[1]["matcher"], "Edit|Write|MultiEdit|NotebookEdit")
        self.assertEqual(pre[1]["hooks"][0]["command"], "cnet hook pre-tool-use")
        for event, arg in (("SessionStart", "session-start"), ("Stop", "stop"),
                           ("SessionEnd", "session-end")):
            self.assertEqual(merged["hooks"][event][0]["hooks"][0]["command"], "cnet hook " + arg)
        # Idempotent.
        r = self.s.cnet("hooks", "install", "--project", project, "--command", "cnet")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(path) as f:
            self.assertEqual(json.load(f), merged)
        # Without cnet on PATH the hooks call this binary by its absolute path.
        other = tempfile.mkdtemp(dir=self.s.root, prefix="proj")
        r = self.s.cnet("hooks", "install", "--project", other)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(other, ".claude/settings.json")) as f:
            command = json.load(f)["hooks"]["PreToolUse"][0]["hooks"][0]["command"]
        self.assertEqual(command, os.path.realpath(CNET) + " hook pre-tool-use")
        # A settings file that is not JSON is left alone.
        with open(path, "w") as f:
            f.write("{broken")
        r = self.s.cnet("hooks", "install", "--project", project)
        self.assertEqual(r.returncode, 1)
        with open(path) as f:
            self.assertEqual(f.read(), "{broken")


class CardTest(Base):
    def test_agent_card_has_the_a2a_required_fields(self):
        agent = self.join("card-agent", "python", "review")
        bare = self.join("card-bare")
        for agent_id in (agent, bare):
            r = self.s.cnet("--json", "agent", "card", agent_id)
            self.assertEqual(r.returncode, 0, r.stderr)
            card = json.loads(r.stdout)
            for field, kind in (("name", str), ("description", str), ("url", str),
                                ("version", str), ("capabilities", dict),
                                ("defaultInputModes", list), ("defaultOutputModes", list),
                                ("skills", list)):
                self.assertIsInstance(card.get(field), kind, (field, card))
            self.assertTrue(card["name"] and card["description"] and card["url"])
            self.assertTrue(card["defaultInputModes"] and card["defaultOutputModes"])
            for skill in card["skills"]:
                for field in ("id", "name", "description"):
                    self.assertIsInstance(skill[field], str)
                    self.assertTrue(skill[field])
                self.assertIsInstance(skill["tags"], list)
        r = self.s.cnet("--json", "agent", "card", agent)
        self.assertEqual([s["id"] for s in json.loads(r.stdout)["skills"]], ["python", "review"])
        r = self.s.cnet("--json", "agent", "cards")
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        ids = {c["agentId"] for c in doc["agents"]}
        self.assertTrue({agent, bare} <= ids)
        self.assertEqual(self.s.cnet("agent", "card", "agent-nope").returncode, 2)


if __name__ == "__main__":
    unittest.main()
