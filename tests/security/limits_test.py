"""Per-agent and per-caller limits over the real binaries: each one answers
RESOURCE_EXHAUSTED with a retry delay (message text "retry ...", trailing
metadata `claudenet-retry-after-ms`, ErrorDetail.retry_delay in
`claudenet-error-bin`), other agents are not affected, and the service keeps
serving. Limits are set low through the environment (config keys).
"""
import os
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seclib as lib  # noqa: E402

import grpc  # noqa: E402
from claudenet_signing import canonical_bytes, rfc3339, sign  # noqa: E402

C = grpc.StatusCode

SLEEPER = """name: sleeper
version: 1.0.0
description: Sleeps, to hold a run in flight.
category: test
steps:
  - id: nap
    action: sleep
    args: {duration: 60s}
"""


class LimitsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        library = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        os.makedirs(os.path.join(library, "test"))
        with open(os.path.join(library, "test", "sleeper.yaml"), "w") as f:
            f.write(SLEEPER)
        cls.suite = lib.Suite({
            "CNET_LIMITS__RATE_LIMIT_PER_SEC": "0.001",
            "CNET_LIMITS__RATE_LIMIT_BURST": "2",
            "CNET_MACS__MAX_SUBSCRIBERS_PER_AGENT": "1",
            "CNET_REGISTRY__MAX_WATCHERS_PER_CALLER": "1",
            "CNET_REGISTRY__ROTATE_MIN_INTERVAL": "1h",
            "CNET_TASKS__CREATE_RATE_PER_AGENT": "0.001",
            "CNET_TASKS__CREATE_BURST_PER_AGENT": "2",
            "CNET_TASKS__MAX_WATCHERS_PER_CALLER": "1",
            "CNET_SKILLS__MAX_RUNS_PER_AGENT": "1",
            "CNET_SKILLS__LIBRARY_DIR": library,
            "CNET_TASKS__PUSH_ASSIGNMENT": "false",
            "CNET_LIMITS__MAX_STREAMS_PER_CALLER": "2",
        })
        cls.pb = lib.pb()
        cls.tok = {a: cls.suite.register(a) for a in ("alice", "bob", "carol")}

    @classmethod
    def tearDownClass(cls):
        cls.suite.stop()

    def assertExhausted(self, err, what):
        self.assertEqual(err.code(), C.RESOURCE_EXHAUSTED, "%s: %s" % (what, err.details()))
        self.assertIn("retry", err.details(), what)
        md = dict(err.trailing_metadata() or ())
        self.assertIn("claudenet-retry-after-ms", md, what)
        self.assertGreater(int(md["claudenet-retry-after-ms"]), 0, what)
        detail = self.pb.common.ErrorDetail.FromString(md["claudenet-error-bin"])
        self.assertTrue(detail.HasField("retry_delay"), what)
        self.assertGreater(detail.retry_delay.seconds * 1000 + detail.retry_delay.nanos // 10**6,
                           0, what)

    def unary(self, service, method, req, token):
        with self.suite.channel(service) as ch:
            return lib.call(ch, lib.GRPC_SERVICE[service], method, req, token, timeout=20)

    def refused(self, service, method, req, token):
        with self.assertRaises(grpc.RpcError) as cm:
            self.unary(service, method, req, token)
        return cm.exception

    def stream(self, ch, service, method, req, token):
        d = lib.service_descriptor(lib.GRPC_SERVICE[service]).methods_by_name[method]
        return ch.unary_stream("/%s/%s" % (lib.GRPC_SERVICE[service], method),
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=lib.message_class(d.output_type).FromString)(
            req, metadata=lib.metadata_for(token), timeout=30)

    def assertServing(self):
        for name in lib.SERVICES:
            self.assertTrue(lib.health_serving(self.suite.addr[name], timeout=10), name)

    def send(self, sender, msg_id):
        m = self.pb.macs.Message()
        now = int(time.time())
        m.id, m.recipient, m.body = msg_id, "bob", "hi"
        m.created_at.seconds = now
        m.signature = sign(lib.SECRET, canonical_bytes(m.id, sender, "bob", 0, "", "hi", {}, 0,
                                                       rfc3339(now), 0, "", "", ""))
        return self.unary("macs-gateway", "Send", self.pb.macs.SendRequest(message=m),
                          self.tok[sender])

    def test_message_rate_per_sender(self):
        self.send("alice", "rate-1")
        self.send("alice", "rate-2")
        with self.assertRaises(grpc.RpcError) as cm:
            self.send("alice", "rate-3")
        self.assertExhausted(cm.exception, "macs rate")
        self.send("carol", "rate-carol")  # another sender is not affected
        self.assertServing()

    def test_streams_per_agent(self):
        pb = self.pb
        cases = [
            ("macs-gateway", "Subscribe", pb.macs.SubscribeRequest(), "bob"),
            ("registry", "Watch", pb.registry.WatchAgentsRequest(send_snapshot=True), "alice"),
            ("tasks", "Watch", pb.tasks.WatchTasksRequest(send_snapshot=True), "alice"),
        ]
        for service, method, req, agent in cases:
            with self.suite.channel(service) as ch:
                first = self.stream(ch, service, method, req, self.tok[agent])
                next(first)  # open and live
                second = self.stream(ch, service, method, req, self.tok[agent])
                with self.assertRaises(grpc.RpcError) as cm:
                    next(second)
                self.assertExhausted(cm.exception, "%s/%s" % (service, method))
                # Another agent still gets its stream.
                other = self.stream(ch, service, method, req, self.tok["carol"])
                next(other)
                other.cancel()
                first.cancel()
        self.assertServing()

    def test_streams_per_caller_on_every_service(self):
        """The interceptor's limit: any streaming rpc, per caller (anonymous
        callers per peer address); here 2 per service."""
        pb = self.pb
        s = pb.skills
        runner = self.suite.register("streamer")
        run = self.unary("skills", "RunSkill",
                         s.RunSkillRequest(name="sleeper", mode=s.RUN_MODE_ASYNC), runner).run
        cases = [
            ("skills", "WatchRun", s.WatchRunRequest(run_id=run.run_id), runner),
            ("config", "WatchConfig", pb.config.WatchConfigRequest(send_initial=True), ""),
            ("macs-gateway", "WatchStats", pb.macs.WatchStatsRequest(), runner),
        ]
        for service, method, req, token in cases:
            with self.suite.channel(service) as ch:
                held = [self.stream(ch, service, method, req, token) for _ in range(2)]
                for h in held:
                    next(h)
                extra = self.stream(ch, service, method, req, token)
                with self.assertRaises(grpc.RpcError) as cm:
                    next(extra)
                self.assertEqual(cm.exception.code(), C.RESOURCE_EXHAUSTED, service)
                self.assertIn("retry after", cm.exception.details())
                md = dict(cm.exception.trailing_metadata() or ())
                self.assertGreater(int(md["claudenet-retry-after-ms"]), 0)
                # Closing one frees the slot.
                held[0].cancel()
                deadline = time.time() + 10
                while True:
                    again = self.stream(ch, service, method, req, token)
                    try:
                        next(again)
                        break
                    except grpc.RpcError as e:
                        # the server learns of the cancel asynchronously
                        if e.code() != C.RESOURCE_EXHAUSTED or time.time() > deadline:
                            raise
                        time.sleep(0.05)
                again.cancel()
                held[1].cancel()
        self.unary("skills", "CancelRun", s.CancelRunRequest(run_id=run.run_id, reason="x"),
                   runner)
        self.assertServing()

    def test_token_rotation_rate(self):
        r = self.pb.registry
        token = self.suite.register("rotator")
        new = self.unary("registry", "RotateToken", r.RotateTokenRequest(), token).token
        err = self.refused("registry", "RotateToken", r.RotateTokenRequest(), new)
        self.assertExhausted(err, "rotate")
        self.assertServing()

    def test_tasks_created_per_agent(self):
        t = self.pb.tasks
        token = self.suite.register("creator")
        for i in range(2):
            self.unary("tasks", "CreateTask", t.CreateTaskRequest(title="t%d" % i), token)
        err = self.refused("tasks", "CreateTask", t.CreateTaskRequest(title="t3"), token)
        self.assertExhausted(err, "create")
        self.assertIn("creator", err.details())
        # Nothing was stored by the refused call; others may still create.
        with self.suite.channel("tasks") as ch:
            listed = lib.call(ch, lib.GRPC_SERVICE["tasks"], "ListTasks",
                              t.ListTasksRequest(creator="creator"), lib.ADMIN)
        self.assertEqual(len(listed.tasks), 2)
        self.unary("tasks", "CreateTask", t.CreateTaskRequest(title="c"), self.tok["carol"])
        self.unary("tasks", "CreateTask", t.CreateTaskRequest(title="admin"), lib.ADMIN)
        self.assertServing()

    def test_skill_runs_in_flight_per_agent(self):
        s = self.pb.skills
        token = self.suite.register("runner")
        run = self.unary("skills", "RunSkill",
                         s.RunSkillRequest(name="sleeper", mode=s.RUN_MODE_ASYNC), token).run
        err = self.refused("skills", "RunSkill",
                           s.RunSkillRequest(name="sleeper", mode=s.RUN_MODE_ASYNC), token)
        self.assertExhausted(err, "skill runs")
        other = self.suite.register("runner-2")
        run2 = self.unary("skills", "RunSkill",
                          s.RunSkillRequest(name="sleeper", mode=s.RUN_MODE_ASYNC), other).run
        for r, tok in ((run, token), (run2, other)):
            self.unary("skills", "CancelRun", s.CancelRunRequest(run_id=r.run_id, reason="done"),
                       tok)
        self.assertServing()


if __name__ == "__main__":
    unittest.main(testRunner=unittest.TextTestRunner(stream=sys.stdout, verbosity=2))
