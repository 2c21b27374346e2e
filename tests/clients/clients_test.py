"""The example clients in Python and Node, generated from proto/, work
against a live suite: register, send a signed message and read it back,
create and claim a task."""
import os
import shutil
import socket
import subprocess
import tempfile
import unittest

RUNFILES = os.environ.get("TEST_SRCDIR", "") + "/claudenet"
CNET = os.path.join(RUNFILES, "tools/cnet/cnet")
# The source tree (node_modules is installed there by tools/test.sh).
SOURCE = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(
    os.path.join(RUNFILES, "examples/node/client.js")))))
KEYS = ["CONFIG", "REGISTRY", "MACS", "TASKS", "SKILLS"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ClientsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.home = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        cls.env = {"HOME": cls.home, "PATH": "/usr/bin:/bin"}
        cls.addr = {}
        for k in KEYS:
            cls.addr[k] = f"127.0.0.1:{free_port()}"
            cls.env[f"CNET_SERVICES__{k}_ADDR"] = cls.addr[k]
            cls.env[f"CNET_SERVICES__{k}_METRICS_PORT"] = str(free_port())
        up = subprocess.run([CNET, "--project-dir", cls.home, "up", "--bin-dir",
                             os.path.join(RUNFILES, "services")],
                            env=cls.env, capture_output=True, text=True, timeout=120)
        assert up.returncode == 0, up.stderr
        cls.secret = os.path.join(cls.home, ".claude-network/data/message.secret")
        cls.out = os.path.join(cls.home, "gen")
        subprocess.run(["bash", os.path.join(RUNFILES, "tools/gen_clients.sh"), cls.out],
                       check=True, capture_output=True)

    @classmethod
    def tearDownClass(cls):
        subprocess.run([CNET, "--project-dir", cls.home, "down"], env=cls.env,
                       capture_output=True, timeout=60)
        shutil.rmtree(cls.home, ignore_errors=True)

    def run_example(self, argv, extra_env):
        env = dict(self.env, **extra_env)
        run = subprocess.run(argv + ["--registry", self.addr["REGISTRY"], "--macs",
                                     self.addr["MACS"], "--tasks", self.addr["TASKS"],
                                     "--secret-file", self.secret],
                             env=env, capture_output=True, text=True, timeout=120)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        return run.stdout

    def test_python_example(self):
        out = self.run_example(
            ["/usr/bin/python3", os.path.join(RUNFILES, "examples/python/example.py")],
            {"PYTHONPATH": os.path.join(self.out, "python") + ":" +
                           os.path.join(RUNFILES, "examples/python")})
        self.assertIn("bob read: 'hello'", out)
        self.assertIn("and started", out)

    def test_node_example(self):
        if not os.path.isdir(os.path.join(SOURCE, "examples/node/node_modules")):
            self.fail("examples/node/node_modules missing: run `npm ci` there (tools/test.sh does)")
        out = self.run_example(
            ["node", os.path.join(SOURCE, "examples/node/client.js"), "--proto-root", SOURCE],
            {})
        self.assertIn("bob read: hello", out)
        self.assertIn("and started", out)


if __name__ == "__main__":
    unittest.main()
