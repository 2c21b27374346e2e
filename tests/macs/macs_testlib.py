"""Helpers for tests that run the real macs-gateway binary.

- The CNET-MSG-V1 canonical encoding and its HMAC, written from the doc
  with the standard library only (examples/python/claudenet_signing.py).
- Python message classes generated at test time with /usr/bin/protoc, and
  plain grpc calls by method path (no generated stubs needed).
- The real registry binary and the gateway binary on free ports, with
  agents registered through the registry's Register rpc (real tokens).
"""
import os
import signal
import subprocess
import sys
import tempfile
import time

RUNFILES = os.environ.get("TEST_SRCDIR", "") + "/claudenet"
GATEWAY = os.path.join(RUNFILES, "services/macs-gateway/macs-gateway")
REGISTRY = os.path.join(RUNFILES, "services/registry/registry")
SECRET = "py-test-shared-secret"
SERVICE = "svc-cred-py"
ADMIN = "admin-cred-py"


# --- CNET-MSG-V1: the example client's stdlib-only implementation --------

sys.path.insert(0, os.path.join(RUNFILES, "examples/python"))
from claudenet_signing import canonical_bytes, canonical_json, rfc3339, sign  # noqa: E402,F401


# --- generated messages and calls -----------------------------------------

_PB = None


def pb():
    """(common_pb2, macs_pb2, registry_pb2), generated once per process with
    /usr/bin/protoc."""
    global _PB
    if _PB is None:
        out = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        subprocess.run(["/usr/bin/protoc", "-I", RUNFILES, "--python_out", out,
                        "proto/claudenet/v1/common.proto", "proto/claudenet/v1/macs.proto",
                        "proto/claudenet/v1/registry.proto"],
                       check=True)
        sys.path.insert(0, out)
        from proto.claudenet.v1 import common_pb2, macs_pb2, registry_pb2  # noqa: E402
        _PB = (common_pb2, macs_pb2, registry_pb2)
    return _PB


def call(channel, method, request, response_cls, token, timeout=30,
         service="claudenet.v1.MacsGateway"):
    fn = channel.unary_unary("/" + service + "/" + method,
                             request_serializer=lambda m: m.SerializeToString(),
                             response_deserializer=response_cls.FromString)
    metadata = [("authorization", "Bearer " + token)] if token else []
    return fn(request, metadata=metadata, timeout=timeout)


def call_future(channel, method, request, response_cls, token, timeout=30):
    fn = channel.unary_unary("/claudenet.v1.MacsGateway/" + method,
                             request_serializer=lambda m: m.SerializeToString(),
                             response_deserializer=response_cls.FromString)
    return fn.future(request, metadata=[("authorization", "Bearer " + token)], timeout=timeout)


# --- processes ---------------------------------------------------------------

def wait_for_file(path, proc, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path) and open(path).read().strip():
            return open(path).read().strip()
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        time.sleep(0.02)  # polling a child process's port file; not test logic
    raise RuntimeError(f"{what} did not report its port")


class Network:
    """The registry and the gateway, in a private directory.

    `agents` is "id:capability,capability;id2;..."; each is registered with
    the registry's Register rpc and its token kept in self.tokens[id]."""

    def __init__(self, agents, extra_env=None):
        self.root = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        self.data = os.path.join(self.root, "data")
        self.project = os.path.join(self.root, "project")
        os.makedirs(self.project)
        self.env = {
            "HOME": self.root, "PATH": "/usr/bin:/bin",
            "CNET_SERVICES__DATA_DIR": self.data,
            "CNET_SERVICES__LOG_DIR": os.path.join(self.root, "logs"),
            "CNET_SECURITY__SHARED_SECRET": SECRET,
            "CNET_SECURITY__SERVICE_CREDENTIAL": SERVICE,
            "CNET_SECURITY__ADMIN_TOKEN": ADMIN,
            "CNET_NETWORK__NODE_ID": "node-a",
            # Parallel tests must not fight over the fixed metrics ports.
            "CNET_SERVICES__METRICS_ENABLED": "false",
        }
        self.env.update(extra_env or {})
        port_file = os.path.join(self.root, "registry.port")
        self.registry = subprocess.Popen(
            [REGISTRY, "--listen", "127.0.0.1:0", "--port-file", port_file,
             "--project-dir", self.project,
             "--log-file", os.path.join(self.root, "registry.log")],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.registry_addr = "127.0.0.1:" + wait_for_file(port_file, self.registry, "registry")
        self.env["CNET_SERVICES__REGISTRY_ADDR"] = self.registry_addr
        self.tokens = {}
        import grpc
        _, _, registry_pb2 = pb()
        with grpc.insecure_channel(self.registry_addr) as channel:
            for spec in filter(None, agents.split(";")):
                id, _, caps = spec.partition(":")
                req = registry_pb2.RegisterRequest(agent_id=id, name=id)
                req.capabilities.extend(filter(None, caps.split(",")))
                resp = call(channel, "Register", req, registry_pb2.RegisterResponse, "",
                            service="claudenet.v1.RegistryService")
                self.tokens[id] = resp.token
        self.gateway = None
        self.addr = None

    def start_gateway(self):
        port_file = os.path.join(self.root, "macs.port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        self.gateway = subprocess.Popen(
            [GATEWAY, "--listen", "127.0.0.1:0", "--port-file", port_file,
             "--project-dir", self.project,
             "--log-file", os.path.join(self.root, "macs.log")],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.addr = "127.0.0.1:" + wait_for_file(port_file, self.gateway, "macs-gateway")
        return self.addr

    def kill_gateway(self):
        self.gateway.send_signal(signal.SIGKILL)
        self.gateway.wait()

    def stop(self):
        for p in (self.gateway, self.registry):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
