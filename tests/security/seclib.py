"""Helpers for the security tests that run the five real service binaries.

- Python message classes for every claudenet.v1 file, generated once per
  process with /usr/bin/protoc, and calls by method path (no stubs).
- Suite: config, registry, macs-gateway, tasks and skills on fixed free
  127.0.0.1 ports (so a killed service comes back on the same address and
  its clients reconnect), one private data directory, explicit admin and
  service credentials, metrics off. Services can be SIGKILLed and restarted
  one at a time.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import grpc

RUNFILES = os.environ.get("TEST_SRCDIR", "") + "/claudenet"
SERVICES = ["config", "registry", "macs-gateway", "tasks", "skills"]
ADDR_KEYS = {
    "config": "CONFIG_ADDR", "registry": "REGISTRY_ADDR", "macs-gateway": "MACS_ADDR",
    "tasks": "TASKS_ADDR", "skills": "SKILLS_ADDR",
}
GRPC_SERVICE = {
    "config": "claudenet.v1.ConfigService", "registry": "claudenet.v1.RegistryService",
    "macs-gateway": "claudenet.v1.MacsGateway", "tasks": "claudenet.v1.TaskService",
    "skills": "claudenet.v1.SkillService",
}
SECRET = "sec-test-shared-secret"
SERVICE_CRED = "sec-test-service-credential"
ADMIN = "sec-test-admin-credential"

sys.path.insert(0, os.path.join(RUNFILES, "examples/python"))

_PB = None


def pb():
    """A namespace with the generated modules: common, config, macs,
    registry, skills, tasks."""
    global _PB
    if _PB is None:
        out = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        files = ["common", "config", "macs", "registry", "skills", "tasks"]
        subprocess.run(["/usr/bin/protoc", "-I", RUNFILES, "--python_out", out] +
                       ["proto/claudenet/v1/%s.proto" % f for f in files], check=True)
        sys.path.insert(0, out)
        import importlib

        class NS:
            pass
        ns = NS()
        for f in files:
            setattr(ns, f, importlib.import_module("proto.claudenet.v1.%s_pb2" % f))
        _PB = ns
    return _PB


def message_class(descriptor):
    """The generated class of a message descriptor from one of our files."""
    ns = pb()
    for f in ("common", "config", "macs", "registry", "skills", "tasks"):
        mod = getattr(ns, f)
        if descriptor.file.name == mod.DESCRIPTOR.name:
            return getattr(mod, descriptor.name)
    from google.protobuf import empty_pb2
    return empty_pb2.Empty


def service_descriptor(service):
    ns = pb()
    for f in ("config", "macs", "registry", "skills", "tasks"):
        d = getattr(ns, f).DESCRIPTOR.services_by_name.get(service.split(".")[-1])
        if d is not None:
            return d
    raise KeyError(service)


def metadata_for(credential, on_behalf_of=None):
    md = []
    if credential:
        md.append(("authorization", "Bearer " + credential))
    if on_behalf_of:
        md.append(("claudenet-on-behalf-of", on_behalf_of))
    return md


def call(channel, service, method, request, credential, on_behalf_of=None, timeout=30):
    """A unary call by name; returns the response or raises grpc.RpcError."""
    d = service_descriptor(service).methods_by_name[method]
    fn = channel.unary_unary("/%s/%s" % (service, method),
                             request_serializer=lambda m: m.SerializeToString(),
                             response_deserializer=message_class(d.output_type).FromString)
    return fn(request, metadata=metadata_for(credential, on_behalf_of), timeout=timeout)


def call_code(channel, service, method, request, credential, on_behalf_of=None, timeout=30):
    """(status code, response or None, details) of any kind of call. Server
    streams: the first response message, or the status the stream ended with.
    Client/bidi streams: `request` is sent as the only message."""
    d = service_descriptor(service).methods_by_name[method]
    path = "/%s/%s" % (service, method)
    ser = lambda m: m.SerializeToString()  # noqa: E731
    de = message_class(d.output_type).FromString
    md = metadata_for(credential, on_behalf_of)
    try:
        if not d.client_streaming and not d.server_streaming:
            resp = channel.unary_unary(path, request_serializer=ser, response_deserializer=de)(
                request, metadata=md, timeout=timeout)
            return grpc.StatusCode.OK, resp, ""
        if d.client_streaming:
            it = channel.stream_stream(path, request_serializer=ser, response_deserializer=de)(
                iter([request]), metadata=md, timeout=timeout)
        else:
            it = channel.unary_stream(path, request_serializer=ser, response_deserializer=de)(
                request, metadata=md, timeout=timeout)
        try:
            first = next(it)
            it.cancel()
            return grpc.StatusCode.OK, first, ""
        except StopIteration:
            return it.code(), None, it.details()
    except grpc.RpcError as e:
        return e.code(), None, e.details()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health_serving(addr, timeout=1.0):
    """grpc.health.v1.Health/Check for the whole server, by hand-encoded bytes
    (request: empty; response: status = SERVING is field 1, value 1)."""
    with grpc.insecure_channel(addr) as ch:
        fn = ch.unary_unary("/grpc.health.v1.Health/Check",
                            request_serializer=lambda b: b, response_deserializer=lambda b: b)
        try:
            return fn(b"", timeout=timeout) == b"\x08\x01"
        except grpc.RpcError:
            return False


class Suite:
    """The five binaries on fixed ports in one private directory."""

    def __init__(self, extra_env=None, services=SERVICES):
        self.root = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        self.data = os.path.join(self.root, "data")
        self.project = os.path.join(self.root, "project")
        os.makedirs(self.project)
        self.env = {
            "HOME": self.root, "PATH": "/usr/bin:/bin",
            "CNET_SERVICES__DATA_DIR": self.data,
            "CNET_SERVICES__LOG_DIR": os.path.join(self.root, "logs"),
            "CNET_SECURITY__SHARED_SECRET": SECRET,
            "CNET_SECURITY__SERVICE_CREDENTIAL": SERVICE_CRED,
            "CNET_SECURITY__ADMIN_TOKEN": ADMIN,
            "CNET_NETWORK__NODE_ID": "node-a",
            "CNET_SERVICES__METRICS_ENABLED": "false",
            "CNET_SKILLS__LIBRARY_DIR": os.path.join(RUNFILES, "skills"),
            "CNET_SKILLS__WATCH_LIBRARY": "false",
        }
        self.addr = {}
        for name in SERVICES:
            self.addr[name] = "127.0.0.1:%d" % free_port()
            self.env["CNET_SERVICES__" + ADDR_KEYS[name]] = self.addr[name]
        self.env.update(extra_env or {})
        # None removes a variable (e.g. to let the services create their
        # admin / service credential files).
        self.env = {k: v for k, v in self.env.items() if v is not None}
        self.procs = {}
        self.starts = {name: 0 for name in SERVICES}
        for name in services:
            self.start(name)

    def start(self, name, timeout=60):
        binary = os.path.join(RUNFILES, "services", name, name)
        log = open(os.path.join(self.root, "%s.stderr.%d" % (name, self.starts[name])), "w")
        self.starts[name] += 1
        p = subprocess.Popen(
            [binary, "--listen", self.addr[name], "--project-dir", self.project,
             "--log-file", os.path.join(self.root, "%s.log" % name)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=log, cwd=self.project)
        self.procs[name] = p
        deadline = time.time() + timeout
        while time.time() < deadline:
            if p.poll() is not None:
                raise RuntimeError("%s exited with %d" % (name, p.returncode))
            if health_serving(self.addr[name]):
                return
            time.sleep(0.05)  # polling a child process's health; not test logic
        raise RuntimeError("%s is not SERVING after %ds" % (name, timeout))

    def kill(self, name):
        p = self.procs[name]
        p.send_signal(signal.SIGKILL)
        p.wait()

    def channel(self, name):
        return grpc.insecure_channel(self.addr[name])

    def stop(self):
        for name in reversed(SERVICES):
            p = self.procs.get(name)
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for name in reversed(SERVICES):
            p = self.procs.get(name)
            if p is None:
                continue
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def register(self, agent_id, capabilities=(), kind=None, spawned_by=None,
                 spawner_token=None, public_key=None):
        r = pb().registry
        req = r.RegisterRequest(agent_id=agent_id, name=agent_id)
        req.capabilities.extend(capabilities)
        if kind is not None:
            req.kind = kind
        if spawned_by:
            req.spawned_by = spawned_by
        if public_key is not None:
            req.public_key.CopyFrom(public_key)
        with self.channel("registry") as ch:
            resp = call(ch, GRPC_SERVICE["registry"], "Register", req, spawner_token or "")
        return resp.token
