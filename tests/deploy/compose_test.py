"""The docker-compose deployment is valid and matches what Bazel builds.

No Docker engine runs on these machines, but Debian's docker-compose
validates a compose file offline (`config -q`). The test also checks that
every service runs a binary Bazel builds and listens on its default port
from config.example.yaml, with a grpc.health.v1 health check.
"""
import os
import subprocess
import unittest

import yaml

RUNFILES = os.environ.get("TEST_SRCDIR", "") + "/claudenet"
DEPLOY = os.path.join(RUNFILES, "deploy")
ADDR_KEYS = {"config": "config_addr", "registry": "registry_addr",
             "macs-gateway": "macs_addr", "tasks": "tasks_addr", "skills": "skills_addr"}


def compose(*files):
    args = ["docker-compose"]
    for f in files:
        args += ["-f", os.path.join(DEPLOY, f)]
    return subprocess.run(args + ["config"], capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "HOME": os.environ["TEST_TMPDIR"]})


class ComposeTest(unittest.TestCase):
    def test_compose_files_validate(self):
        for files in (["docker-compose.yml"],
                      ["docker-compose.yml", "docker-compose.federation.yml"]):
            run = compose(*files)
            self.assertEqual(run.returncode, 0, run.stderr)

    def test_services_match_bazel_binaries_and_default_ports(self):
        run = compose("docker-compose.yml")
        self.assertEqual(run.returncode, 0, run.stderr)
        spec = yaml.safe_load(run.stdout)
        with open(os.path.join(RUNFILES, "config.example.yaml")) as f:
            defaults = yaml.safe_load(f)["services"]
        self.assertEqual(set(spec["services"]), set(ADDR_KEYS))
        for name, svc in spec["services"].items():
            binary = svc["command"][0]
            self.assertEqual(binary, name)
            self.assertTrue(os.path.exists(os.path.join(RUNFILES, "services", name, name)),
                            f"{name}: not a binary built by Bazel")
            port = defaults[ADDR_KEYS[name]].rsplit(":", 1)[1]
            listen = svc["command"][svc["command"].index("--listen") + 1]
            self.assertEqual(listen, "0.0.0.0:" + port)
            published = {p.split(":")[-1].split("/")[0] for p in svc["ports"]}
            self.assertIn(port, published)
            self.assertEqual(svc["healthcheck"]["test"][1:5],
                             ["cnet", "health", "--addr", "127.0.0.1:" + port])
            env = svc["environment"]
            self.assertEqual(env["CNET_SERVICES__" + ADDR_KEYS[name].upper()],
                             f"{name}:{port}")


if __name__ == "__main__":
    unittest.main()
