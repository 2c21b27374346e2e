"""End-to-end checks of the five binaries and the launcher, as a user runs them.

- `cnet up` on free ports and a temporary HOME brings up five processes that
  answer SERVING; a second `cnet up` is refused; `cnet status --json` reports
  them; `cnet down` stops every process.
- A malformed configuration makes every service exit non-zero with one line
  naming the file, line and key, and writes nothing.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest
import urllib.request

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
            metrics_key = key.replace("_ADDR", "_METRICS_PORT")
            self.env["CNET_SERVICES__" + metrics_key] = str(free_port())

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

        # Every binary is grpcurl-ready: reflection lists its service, and a
        # method is callable by name from the reflected descriptors.
        services = {"config": "claudenet.v1.ConfigService",
                    "registry": "claudenet.v1.RegistryService",
                    "macs-gateway": "claudenet.v1.MacsGateway",
                    "tasks": "claudenet.v1.TaskService",
                    "skills": "claudenet.v1.SkillService"}
        for name, service in services.items():
            addr = self.env["CNET_SERVICES__" + ADDR_KEYS[name]]
            listed = self.cnet("--json", "list", "--addr", addr)
            self.assertEqual(listed.returncode, 0, listed.stderr)
            self.assertIn(service, json.loads(listed.stdout)["services"])
        call = self.cnet("call", "--addr", self.env["CNET_SERVICES__CONFIG_ADDR"],
                         "claudenet.v1.ConfigService/GetConfig", '{"key_prefix":"limits.inbox_cap"}')
        self.assertEqual(call.returncode, 0, call.stderr)
        self.assertEqual(json.loads(call.stdout)["values"][0]["key"], "limits.inbox_cap")

        # Each binary exposes Prometheus metrics; the health checks above
        # went through the shared rpc interceptor.
        for name, key in ADDR_KEYS.items():
            port = self.env["CNET_SERVICES__" + key.replace("_ADDR", "_METRICS_PORT")]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
                self.assertIn("version=0.0.4", r.headers["Content-Type"])
                body = r.read().decode()
            self.assertIn('cnet_rpc_requests_total{method="/grpc.health.v1.Health/Check",code="OK"}',
                          body)
            sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? \S+$')
            for line in body.splitlines():
                if not line.startswith("#"):
                    self.assertRegex(line, sample)

        down = self.cnet("down")
        self.assertEqual(down.returncode, 0, down.stderr)
        for pid in pids:
            self.assertFalse(pid_alive(pid))
        self.assertEqual(self.cnet("status").returncode, 5)

    def test_config_commands(self):
        up = self.cnet("up", "--bin-dir", os.path.join(RUNFILES, "services"))
        self.assertEqual(up.returncode, 0, up.stderr)
        show = self.cnet("--json", "config", "show", "network.heartbeat_interval")
        self.assertEqual(show.returncode, 0, show.stderr)
        value = json.loads(show.stdout)["values"][0]
        self.assertEqual((value["value"], value["layer"]), ("15s", "DEFAULT"))

        setv = self.cnet("config", "set", "limits.inbox_cap", "123")
        self.assertEqual(setv.returncode, 0, setv.stderr)
        show = self.cnet("--json", "config", "show", "limits.inbox_cap")
        value = json.loads(show.stdout)["values"][0]
        self.assertEqual((value["value"], value["layer"]), ("123", "RUNTIME_OVERRIDE"))
        overrides = os.path.join(self.home, ".claude-network/data/config-overrides.yaml")
        self.assertEqual(os.stat(overrides).st_mode & 0o777, 0o600)

        bad = self.cnet("config", "set", "limits.inbox_cap", "lots")
        self.assertEqual(bad.returncode, 1)
        self.assertIn("limits.inbox_cap", bad.stderr)
        self.assertEqual(len(bad.stderr.strip().splitlines()), 1)
        denied = self.cnet("--token", "not-the-admin", "config", "set", "limits.inbox_cap", "5")
        self.assertEqual(denied.returncode, 4, denied.stderr)

        doc = os.path.join(self.home, "candidate.yaml")
        with open(doc, "w") as f:
            f.write("limits:\n  inbox_cap: 10\n  no_such: 1\n")
        invalid = self.cnet("config", "validate", doc)
        self.assertEqual(invalid.returncode, 1)
        self.assertIn(doc + ":3:", invalid.stderr)
        self.assertIn("limits.no_such", invalid.stderr)

        unset = self.cnet("--json", "config", "unset", "limits.inbox_cap")
        self.assertEqual(unset.returncode, 0, unset.stderr)
        self.assertTrue(json.loads(unset.stdout)["existed"])
        secret = self.cnet("--json", "config", "show", "security.admin_token")
        value = json.loads(secret.stdout)["values"][0]
        self.assertEqual(value["value"], "")

    def test_suite_over_mutual_tls(self):
        certs = os.path.join(self.home, "certs")
        subprocess.run(["bash", os.path.join(RUNFILES, "tools/make_certs.sh"), certs],
                       check=True, capture_output=True)
        self.env.update({
            "CNET_SECURITY__TLS__ENABLED": "true",
            "CNET_SECURITY__TLS__REQUIRE_CLIENT_CERT": "true",
            "CNET_SECURITY__TLS__CERT_FILE": os.path.join(certs, "server.pem"),
            "CNET_SECURITY__TLS__KEY_FILE": os.path.join(certs, "server.key"),
            "CNET_SECURITY__TLS__CA_FILE": os.path.join(certs, "ca.pem"),
        })
        up = self.cnet("up", "--bin-dir", os.path.join(RUNFILES, "services"))
        self.assertEqual(up.returncode, 0, up.stderr)
        status = self.cnet("--json", "status")
        self.assertEqual(status.returncode, 0, status.stderr)
        show = self.cnet("config", "show", "security.tls.enabled")
        self.assertEqual(show.returncode, 0, show.stderr)
        # A client without TLS gets nothing.
        plain = dict(self.env)
        plain["CNET_SECURITY__TLS__ENABLED"] = "false"
        run = subprocess.run([CNET, "--project-dir", self.project, "--timeout", "3",
                              "config", "show"], env=plain, capture_output=True, text=True)
        self.assertEqual(run.returncode, 5, run.stderr)

    def test_commands_fail_cleanly_when_the_suite_is_down(self):
        show = self.cnet("--timeout", "2", "config", "show")
        self.assertEqual(show.returncode, 5)
        self.assertIn("cnet up", show.stderr)
        self.assertEqual(len(show.stderr.strip().splitlines()), 1)

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
