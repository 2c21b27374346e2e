"""`cnet agent ...` against the real registry binary, as an agent runs it.

join saves the identity 0600 and rejoins with it; list/show/heartbeat/leave
work with --json; errors use the documented exit codes (1 usage/invalid,
2 not found, 4 denied, 5 unavailable).
"""
import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import unittest

RUNFILES = os.environ.get("TEST_SRCDIR", "") + "/claudenet"
CNET = os.path.join(RUNFILES, "tools/cnet/cnet")
REGISTRY = os.path.join(RUNFILES, "services/registry/registry")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AgentCliTest(unittest.TestCase):
    def setUp(self):
        self.home = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        self.project = os.path.join(self.home, "project")
        os.makedirs(self.project)
        self.env = {
            "HOME": self.home, "PATH": "/usr/bin:/bin",
            "CNET_SERVICES__REGISTRY_ADDR": f"127.0.0.1:{free_port()}",
            "CNET_SERVICES__DATA_DIR": os.path.join(self.home, "data"),
            "CNET_NETWORK__NODE_ID": "cli-node",
            # Parallel tests must not fight over the fixed metrics port.
            "CNET_SERVICES__METRICS_ENABLED": "false",
        }
        port_file = os.path.join(self.home, "port")
        self.registry = subprocess.Popen(
            [REGISTRY, "--project-dir", self.project, "--log-file",
             os.path.join(self.home, "registry.log"), "--port-file", port_file],
            env=self.env)
        # Ready once it wrote the port file (after binding) and answers SERVING.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.registry.poll() is not None:
                self.fail("registry exited with %s" % self.registry.returncode)
            if os.path.exists(port_file):
                health = subprocess.run(
                    [CNET, "health", "--addr", self.env["CNET_SERVICES__REGISTRY_ADDR"]],
                    env=self.env, capture_output=True, text=True, timeout=60)
                if health.returncode == 0:
                    return
            time.sleep(0.05)
        self.fail("registry did not become SERVING")

    def tearDown(self):
        self.registry.terminate()
        self.registry.wait(timeout=30)
        shutil.rmtree(self.home, ignore_errors=True)

    def cnet(self, *args):
        return subprocess.run([CNET, "--json", "--project-dir", self.project, *args],
                              env=self.env, capture_output=True, text=True, timeout=60)

    def test_join_list_show_heartbeat_leave(self):
        joined = self.cnet("agent", "join", "--name", "reviewer", "-c", "python", "-c", "review")
        self.assertEqual(joined.returncode, 0, joined.stderr)
        out = json.loads(joined.stdout)
        self.assertTrue(out["created"])
        agent_id = out["agent"]["id"]
        self.assertEqual(out["agent"]["node"], "cli-node")
        path = out["identity_file"]
        self.assertEqual(path, os.path.join(self.home, ".claude-network/agents", agent_id + ".json"))
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path) as f:
            saved = json.load(f)
        self.assertEqual(saved["agent_id"], agent_id)
        self.assertTrue(saved["token"].startswith("cnt_"))
        self.assertNotIn(saved["token"], joined.stdout)  # never printed

        listed = json.loads(self.cnet("agent", "list", "-c", "python").stdout)
        self.assertEqual(listed["total"], 1)
        self.assertEqual(listed["agents"][0]["id"], agent_id)
        self.assertEqual(json.loads(self.cnet("agent", "list", "-c", "go").stdout)["total"], 0)

        beat = self.cnet("agent", "heartbeat", "--status", "busy", "--message", "reviewing")
        self.assertEqual(beat.returncode, 0, beat.stderr)
        self.assertEqual(json.loads(beat.stdout)["heartbeat"]["health"], "HEALTH_HEALTHY")
        shown = json.loads(self.cnet("agent", "show", agent_id).stdout)["agent"]
        self.assertEqual(shown["status"], "AGENT_STATUS_BUSY")
        self.assertEqual(shown["status_message"], "reviewing")

        # Rejoin with the saved identity keeps the id and the token.
        again = self.cnet("agent", "join", "--id", agent_id, "--name", "reviewer-2")
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertFalse(json.loads(again.stdout)["created"])
        with open(path) as f:
            self.assertEqual(json.load(f)["token"], saved["token"])

        left = self.cnet("agent", "leave", "--reason", "done")
        self.assertEqual(left.returncode, 0, left.stderr)
        self.assertFalse(os.path.exists(path))
        self.assertEqual(self.cnet("agent", "show", agent_id).returncode, 2)

    def test_exit_codes(self):
        bad = self.cnet("agent", "join", "--name", "x", "-c", "Bad Cap")
        self.assertEqual(bad.returncode, 1)
        self.assertIn("capabilities[0]", json.loads(bad.stdout)["error"])
        self.assertEqual(self.cnet("agent", "show", "nobody").returncode, 2)
        self.assertEqual(self.cnet("agent", "heartbeat").returncode, 1)  # nothing joined
        taken = self.cnet("agent", "join", "--id", "fixed-id", "--name", "a")
        self.assertEqual(taken.returncode, 0, taken.stderr)
        os.unlink(json.loads(taken.stdout)["identity_file"])  # the token is gone
        stolen = self.cnet("agent", "join", "--id", "fixed-id", "--name", "b")
        self.assertEqual(stolen.returncode, 4, stolen.stdout)
        self.env["CNET_SERVICES__REGISTRY_ADDR"] = f"127.0.0.1:{free_port()}"
        self.assertEqual(self.cnet("--timeout", "2", "agent", "list").returncode, 5)


if __name__ == "__main__":
    unittest.main()
