"""End-to-end checks of the five binaries and the launcher, as a user runs them.

- `cnet up` on free ports and a temporary HOME brings up five processes that
  answer SERVING; a second `cnet up` is refused; `cnet status --json` reports
  them; `cnet down` stops every process.
- A malformed configuration makes every service exit non-zero with one line
  naming the file, line and key, and writes nothing.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

RUNFILES = os.environ.get("TEST_SRCDIR", "") + "/claudenet"
CNET = os.path.join(RUNFILES, "tools/cnet/cnet")
SERVICES = ["config", "registry", "macs-gateway", "tasks", "skills"]
ADDR_KEYS = {
    "config": "CONFIG_ADDR", "registry": "REGISTRY_ADDR", "macs-gateway": "MACS_ADDR",
    "tasks": "TASKS_ADDR", "skills": "SKILLS_ADDR",
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie awaiting its parent counts as gone.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


class SuiteTest(unittest.TestCase):
    def setUp(self):
        self.home = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        self.project = os.path.join(self.home, "project")
        os.makedirs(self.project)
        self.env = {"HOME": self.home, "PATH": "/usr/bin:/bin"}
        for name, key in ADDR_KEYS.items():
            self.env["CNET_SERVICES__" + key] = f"127.0.0.1:{free_port()}"

    def tearDown(self):
        self.cnet("down")
        shutil.rmtree(self.home, ignore_errors=True)

    def cnet(self, *args):
        return subprocess.run([CNET, "--project-dir", self.project, *args],
                              env=self.env, capture_output=True, text=True, timeout=120)

    def test_up_status_down(self):
        up = self.cnet("--json", "up", "--bin-dir", os.path.join(RUNFILES, "services"))
        self.assertEqual(up.returncode, 0, up.stderr)
        report = json.loads(up.stdout)
        self.assertTrue(report["ok"])
        self.assertEqual([s["name"] for s in report["services"]], SERVICES)
        pids = [s["pid"] for s in report["services"]]
        for pid in pids:
            self.assertTrue(pid_alive(pid))

        again = self.cnet("up", "--bin-dir", os.path.join(RUNFILES, "services"))
        self.assertEqual(again.returncode, 3)
        self.assertIn("already running", again.stderr)

        status = self.cnet("--json", "status")
        self.assertEqual(status.returncode, 0, status.stderr)
        self.assertEqual({s["health"] for s in json.loads(status.stdout)["services"]},
                         {"SERVING"})
        for name in SERVICES:
            addr = self.env["CNET_SERVICES__" + ADDR_KEYS[name]]
            health = self.cnet("health", "--addr", addr)
            self.assertEqual(health.returncode, 0, health.stdout)
            log = os.path.join(self.home, ".claude-network/logs", name + ".log")
            with open(log) as f:
                first = json.loads(f.readline())
            self.assertEqual(first["service"], name)

        down = self.cnet("down")
        self.assertEqual(down.returncode, 0, down.stderr)
        for pid in pids:
            self.assertFalse(pid_alive(pid))
        self.assertEqual(self.cnet("status").returncode, 5)

    def test_malformed_config_exits_nonzero_with_one_line(self):
        with open(os.path.join(self.project, "config.yaml"), "w") as f:
            f.write("network:\n  heartbeat_interval: soon\n")
        data_dir = os.path.join(self.home, "data")
        for name in SERVICES:
            binary = os.path.join(RUNFILES, "services", name, name)
            run = subprocess.run([binary, "--project-dir", self.project,
                                  "--data-dir", data_dir, "--log-file", "-"],
                                 env=self.env, capture_output=True, text=True, timeout=60)
            self.assertEqual(run.returncode, 2, run.stderr)
            lines = run.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, run.stderr)
            self.assertIn(name + ": invalid configuration: ", lines[0])
            self.assertIn("config.yaml:2:", lines[0])
            self.assertIn("network.heartbeat_interval", lines[0])
        self.assertFalse(os.path.exists(data_dir))
        up = self.cnet("up")
        self.assertEqual(up.returncode, 1)
        self.assertIn("config.yaml:2:", up.stderr)

    def test_service_that_cannot_bind_stops_the_launch(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            self.env["CNET_SERVICES__TASKS_ADDR"] = "127.0.0.1:%d" % busy.getsockname()[1]
            up = self.cnet("up", "--bin-dir", os.path.join(RUNFILES, "services"))
        self.assertEqual(up.returncode, 5, up.stderr)
        self.assertIn("tasks exited", up.stderr)
        self.assertIn("cannot listen", up.stderr)


if __name__ == "__main__":
    unittest.main(testRunner=unittest.TextTestRunner(stream=sys.stdout, verbosity=2))
