"""Authorization matrix: every rpc of the five services x every kind of
caller, over real sockets against the real binaries (real agent tokens
issued by the registry, checked by the other services through their cached
RegistryAuthenticator).

Caller kinds:
  none     no credential
  bad      a well-formed bearer credential nobody issued
  self     the agent the request is about (owner of the inbox / task / run)
  other    another registered agent, naming the first one in the request
  svc      the service credential, without claudenet-on-behalf-of
  svc_obo  the service credential on behalf of the agent the request is about
  admin    the admin credential

Verdicts: "unauth" = UNAUTHENTICATED, "deny" = PERMISSION_DENIED, "ok" = the
call got past authorization (any other code; the code is printed, and codes
that show a malformed request are failures). The expected verdicts are the
per-rpc rules stated at the top of each service in proto/claudenet/v1/*.proto.
Every rpc of every service must have a row: a new rpc without one fails.

Each cell runs on fresh agents and resources, so cells are independent.
Also here: token rotation invalidates the old token at the registry and, via
the registry Watch, in the other services' token caches.
"""
import itertools
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seclib as lib  # noqa: E402

import grpc  # noqa: E402
from claudenet_signing import canonical_bytes, rfc3339, sign  # noqa: E402

KINDS = ["none", "bad", "self", "other", "svc", "svc_obo", "admin"]
C = grpc.StatusCode
# Codes that mean "the request itself was malformed": a cell expected to
# pass authorization must not get these, or it tested nothing.
MALFORMED = {C.INVALID_ARGUMENT, C.INTERNAL, C.UNIMPLEMENTED, C.UNKNOWN}


def verdict(code):
    if code == C.UNAUTHENTICATED:
        return "unauth"
    if code == C.PERMISSION_DENIED:
        return "deny"
    return "ok"


def expect(default_auth="unauth", **kinds):
    """Expected verdicts: none/bad default to unauth, the rest to kinds."""
    e = {"none": default_auth, "bad": "unauth"}
    e.update(kinds)
    return e


ANY = dict(self="ok", other="ok", svc="ok", svc_obo="ok", admin="ok")
OWNER_OR_ADMIN = dict(self="ok", other="deny", svc="deny", svc_obo="ok", admin="ok")
OWNER_ONLY = dict(self="ok", other="deny", svc="deny", svc_obo="ok", admin="deny")
ADMIN_ONLY = dict(self="deny", other="deny", svc="deny", svc_obo="deny", admin="ok")
OWN_TOKEN_ONLY = dict(self="ok", other="deny", svc="deny", svc_obo="deny", admin="deny")
SERVICE_OR_ADMIN = dict(self="deny", other="deny", svc="ok", svc_obo="ok", admin="ok")


class Fixture:
    """Fresh agents for one cell: `me` (the agent the request is about) and
    `other`, with their tokens."""
    counter = itertools.count()

    def __init__(self, suite, caps=("python",)):
        n = next(Fixture.counter)
        self.suite = suite
        self.me = "me-%04d" % n
        self.other = "other-%04d" % n
        self.tok = {self.me: suite.register(self.me, caps),
                    self.other: suite.register(self.other, caps)}
        self.n = n

    def credential(self, kind):
        return {
            "none": ("", None),
            "bad": ("0" * 64, None),
            "self": (self.tok[self.me], None),
            "other": (self.tok[self.other], None),
            "svc": (lib.SERVICE_CRED, None),
            "svc_obo": (lib.SERVICE_CRED, self.me),
            "admin": (lib.ADMIN, None),
        }[kind]

    def unary(self, service, method, request, token):
        with self.suite.channel(service) as ch:
            return lib.call(ch, lib.GRPC_SERVICE[service], method, request, token)

    # --- resources ------------------------------------------------------------
    def signed(self, sender, recipient, msg_id, correlation_id=""):
        m = lib.pb().macs.Message()
        now = int(time.time())
        m.id, m.recipient, m.body = msg_id, recipient, "hello " + msg_id
        m.sender = sender
        m.created_at.seconds = now
        m.correlation_id = correlation_id
        data = canonical_bytes(m.id, sender, recipient, 0, "", m.body, {}, 0, rfc3339(now), 0,
                               correlation_id, "", "")
        m.signature = sign(lib.SECRET, data)
        return m

    def send(self, sender, recipient, msg_id, correlation_id=""):
        req = lib.pb().macs.SendRequest()
        req.message.CopyFrom(self.signed(sender, recipient, msg_id, correlation_id))
        return self.unary("macs-gateway", "Send", req, self.tok[sender])

    def task(self, creator, **fields):
        t = lib.pb().tasks
        req = t.CreateTaskRequest(title="task of " + creator, **fields)
        return self.unary("tasks", "CreateTask", req, self.tok[creator]).task

    def claimed(self, holder, creator=None, start=True, **fields):
        """A task created by `creator` (default holder) claimed (and started)
        by `holder`: (task, lease)."""
        t = lib.pb().tasks
        task = self.task(creator or holder, assign_to="", **fields)
        resp = self.unary("tasks", "Claim", t.ClaimRequest(task_id=task.id), self.tok[holder])
        if start:
            self.unary("tasks", "Start",
                       t.StartRequest(task_id=task.id, **lease_fields(resp.lease)),
                       self.tok[holder])
        return resp.task, resp.lease

    def run(self, agent):
        s = lib.pb().skills
        req = s.RunSkillRequest(name="ping", mode=s.RUN_MODE_ASYNC)
        return self.unary("skills", "RunSkill", req, self.tok[agent]).run.run_id


def lease_fields(lease):
    return dict(lease_id=lease.lease_id, lease_epoch=lease.epoch)


# --- the tables: (method, request builder, expected verdicts) ----------------

def registry_rows(pb):
    r = pb.registry

    def update(f):
        a = r.Agent(id=f.me, status_message="busy")
        req = r.UpdateAgentRequest(agent=a)
        req.update_mask.paths.append("status_message")
        return req

    return [
        ("Register", lambda f: r.RegisterRequest(agent_id="new-%04d" % f.n, name="new"),
         expect("ok", **ANY)),
        ("Register", lambda f: r.RegisterRequest(agent_id=f.me, name="renamed"),
         expect("deny", self="ok", other="deny", svc="deny", svc_obo="ok", admin="ok")),
        ("UpdateAgent", update, expect(**OWNER_OR_ADMIN)),
        ("Deregister", lambda f: r.DeregisterRequest(agent_id=f.me), expect(**OWNER_OR_ADMIN)),
        ("RotateToken", lambda f: r.RotateTokenRequest(agent_id=f.me), expect(**OWNER_OR_ADMIN)),
        # Nobody heartbeats for another agent, admin and services included.
        ("Heartbeat", lambda f: r.HeartbeatRequest(agent_id=f.me), expect(**OWN_TOKEN_ONLY)),
        ("HeartbeatStream", lambda f: r.HeartbeatRequest(agent_id=f.me),
         expect(**OWN_TOKEN_ONLY)),
        ("GetAgent", lambda f: r.GetAgentRequest(agent_id=f.me), expect(**ANY)),
        ("ListAgents", lambda f: r.ListAgentsRequest(), expect(**ANY)),
        ("FindAgents", lambda f: r.FindAgentsRequest(capabilities=["python"]), expect(**ANY)),
        ("Watch", lambda f: r.WatchAgentsRequest(send_snapshot=True), expect(**ANY)),
        ("ValidateToken", lambda f: r.ValidateTokenRequest(token=f.tok[f.me]),
         expect(**SERVICE_OR_ADMIN)),
        ("GetNetworkStatus", lambda f: r.GetNetworkStatusRequest(), expect(**ANY)),
        ("GetAgentCard", lambda f: r.GetAgentCardRequest(agent_id=f.me), expect(**ANY)),
        ("ListAgentCards", lambda f: r.ListAgentCardsRequest(), expect(**ANY)),
        ("SyncRemoteAgents",
         lambda f: r.SyncRemoteAgentsRequest(origin_node="node-z"),
         expect(self="deny", other="deny", svc="ok", svc_obo="ok", admin="deny")),
    ]


def macs_rows(pb):
    m = pb.macs

    def inbox_with_message(f):
        f.send(f.other, f.me, "in-%04d" % f.n)
        return "in-%04d" % f.n

    def send(f):
        req = m.SendRequest()
        req.message.CopyFrom(f.signed(f.me, f.other, "out-%04d" % f.n))
        return req

    def ack(cls):
        def build(f):
            return cls(agent_id=f.me, message_ids=[inbox_with_message(f)])
        return build

    def status(f):
        f.send(f.me, f.other, "st-%04d" % f.n)
        return m.GetMessageStatusRequest(message_id="st-%04d" % f.n, sender=f.me)

    def thread(f):
        f.send(f.me, f.other, "th-%04d" % f.n, correlation_id="conv-%04d" % f.n)
        return m.GetThreadRequest(correlation_id="conv-%04d" % f.n)

    return [
        ("Send", send,
         expect(self="ok", other="deny", svc="deny", svc_obo="ok", admin="deny")),
        ("Subscribe", lambda f: m.SubscribeRequest(agent_id=f.me), expect(**OWNER_ONLY)),
        ("Ack", ack(m.AckRequest), expect(**OWNER_ONLY)),
        ("MarkRead", ack(m.MarkReadRequest), expect(**OWNER_ONLY)),
        ("FetchInbox", lambda f: m.FetchInboxRequest(agent_id=f.me), expect(**OWNER_OR_ADMIN)),
        ("ListDeadLetters", lambda f: m.ListDeadLettersRequest(agent_id=f.me),
         expect(**OWNER_OR_ADMIN)),
        ("RequeueDeadLetter",
         lambda f: m.RequeueDeadLetterRequest(agent_id=f.me, inbox_sequences=[1]),
         expect(**OWNER_OR_ADMIN)),
        ("GetMessageStatus", status, expect(**OWNER_OR_ADMIN)),
        ("GetThread", thread, expect(**ANY)),
        ("GetStats", lambda f: m.GetStatsRequest(), expect(**ANY)),
        ("WatchStats", lambda f: m.WatchStatsRequest(), expect(**ANY)),
    ]


def tasks_rows(pb):
    t = pb.tasks

    def own_task(cls, **extra):
        def build(f):
            return cls(task_id=f.task(f.me).id, **extra)
        return build

    def held(cls, start=True, **extra):
        def build(f):
            task, lease = f.claimed(f.me, start=start)
            return cls(task_id=task.id, **lease_fields(lease), **extra)
        return build

    def release(f):
        task, lease = f.claimed(f.me)
        req = t.ReleaseRequest(task_id=task.id, reason=t.RELEASE_REASON_RATE_LIMITED,
                               **lease_fields(lease))
        req.not_before.seconds = int(time.time()) + 60
        return req

    def complete(f):
        task, lease = f.claimed(f.me)
        res = t.TaskResult(stop_reason=t.STOP_REASON_DONE, summary="done")
        return t.CompleteRequest(task_id=task.id, result=res, **lease_fields(lease))

    def provide(f):
        task, lease = f.claimed(f.me)
        f.unary("tasks", "RequestInput",
                t.RequestInputRequest(task_id=task.id, question="which?", **lease_fields(lease)),
                f.tok[f.me])
        return t.ProvideInputRequest(task_id=task.id, answer="that one")

    def review(f):
        # `me` creates and does the work; review is by anybody else.
        task, lease = f.claimed(f.me, review=t.ReviewPolicy(required=True))
        res = t.TaskResult(stop_reason=t.STOP_REASON_DONE, summary="done")
        f.unary("tasks", "Complete",
                t.CompleteRequest(task_id=task.id, result=res, **lease_fields(lease)),
                f.tok[f.me])
        return t.ReviewRequest(task_id=task.id, verdict=t.REVIEW_VERDICT_APPROVE)

    def update(f):
        task = f.task(f.me)
        req = t.UpdateTaskRequest(task=t.Task(id=task.id, title="new title"))
        req.update_mask.paths.append("title")
        return req

    def steal(f):
        task, _ = f.claimed(f.other)
        return t.StealRequest(agent_id=f.me, task_id=task.id)

    ws = dict(workspace="repo")

    def reservation(cls, **extra):
        def build(f):
            f.unary("tasks", "Reserve",
                    t.ReserveRequest(agent_id=f.me, patterns=["src/%d/**" % f.n], **ws),
                    f.tok[f.me])
            return cls(agent_id=f.me, patterns=["src/%d/**" % f.n], **ws, **extra)
        return build

    def force(f):
        r = f.unary("tasks", "Reserve",
                    t.ReserveRequest(agent_id=f.me, patterns=["force/%d/**" % f.n], **ws),
                    f.tok[f.me])
        ids = [x.id for x in r.granted] if hasattr(r, "granted") else []
        return t.ForceReleaseRequest(holder=f.me, reason="stuck", **ws,
                                     reservation_ids=ids)

    # The holder / the agent itself; admin may act for an agent (common.proto).
    holder = OWNER_OR_ADMIN
    return [
        ("CreateTask", lambda f: t.CreateTaskRequest(title="t"), expect(**ANY)),
        ("GetTask", own_task(t.GetTaskRequest), expect(**ANY)),
        ("UpdateTask", update, expect(**OWNER_OR_ADMIN)),
        ("ListTasks", lambda f: t.ListTasksRequest(), expect(**ANY)),
        ("Claim", lambda f: t.ClaimRequest(agent_id=f.me, task_id=f.task(f.other).id),
         expect(**holder)),
        ("Steal", steal, expect(**holder)),
        ("Start", held(t.StartRequest, start=False), expect(**holder)),
        ("Progress", held(t.ProgressRequest, percent=10), expect(**holder)),
        ("RenewLease", held(t.RenewLeaseRequest), expect(**holder)),
        ("Release", release, expect(**holder)),
        ("RequestInput", held(t.RequestInputRequest, question="why?"), expect(**holder)),
        ("ProvideInput", provide, expect(**OWNER_OR_ADMIN)),
        ("Complete", complete, expect(**holder)),
        ("Fail", held(t.FailRequest, reason="broken"), expect(**holder)),
        ("Review", review,
         expect(self="deny", other="ok", svc="deny", svc_obo="deny", admin="ok")),
        ("Cancel", own_task(t.CancelRequest, reason="no longer needed"),
         expect(**OWNER_OR_ADMIN)),
        ("ExplainTask", own_task(t.ExplainTaskRequest), expect(**ANY)),
        ("GetHistory", own_task(t.GetHistoryRequest), expect(**ANY)),
        ("Watch", lambda f: t.WatchTasksRequest(send_snapshot=True), expect(**ANY)),
        ("GetStats", lambda f: t.GetTaskStatsRequest(), expect(**ANY)),
        ("Reserve", lambda f: t.ReserveRequest(agent_id=f.me, patterns=["a/%d" % f.n], **ws),
         expect(**holder)),
        ("RenewReservation", reservation(t.RenewReservationRequest), expect(**holder)),
        ("ReleaseReservation", reservation(t.ReleaseReservationRequest), expect(**holder)),
        ("ListReservations", lambda f: t.ListReservationsRequest(), expect(**ANY)),
        ("ForceRelease", force, expect(**ADMIN_ONLY)),
        ("CheckPaths", lambda f: t.CheckPathsRequest(agent_id=f.me, paths=["x.cc"], **ws),
         expect(**ANY)),
        ("ReportChangedPaths",
         lambda f: t.ReportChangedPathsRequest(agent_id=f.me, paths=["x.cc"], **ws),
         expect(**holder)),
    ]


def skills_rows(pb):
    s = pb.skills

    def own_run(cls, **extra):
        def build(f):
            return cls(run_id=f.run(f.me), **extra)
        return build

    return [
        ("ListSkills", lambda f: s.ListSkillsRequest(), expect(**ANY)),
        ("GetSkill", lambda f: s.GetSkillRequest(name="ping"), expect(**ANY)),
        ("ValidateSkill",
         lambda f: s.ValidateSkillRequest(yaml_document="name: x\n", file_name="x.yaml"),
         expect(**ANY)),
        ("Reload", lambda f: s.ReloadSkillsRequest(), expect(**ADMIN_ONLY)),
        ("RunSkill", lambda f: s.RunSkillRequest(name="ping", mode=s.RUN_MODE_SYNC),
         expect(self="ok", other="ok", svc="deny", svc_obo="ok", admin="deny")),
        ("WatchRun", own_run(s.WatchRunRequest), expect(**ANY)),
        ("CancelRun", own_run(s.CancelRunRequest, reason="stop"), expect(**OWNER_OR_ADMIN)),
        ("GetRun", own_run(s.GetRunRequest), expect(**ANY)),
        ("ListRuns", lambda f: s.ListRunsRequest(), expect(**ANY)),
        ("GetSkillStats", lambda f: s.GetSkillStatsRequest(), expect(**ANY)),
    ]


def config_rows(pb):
    c = pb.config
    # The config service knows the admin and service credentials only: any
    # credential is fine for the open rpcs; agent tokens are unknown to it.
    open_rpc = dict(none="ok", bad="ok", **ANY)
    admin_rpc = dict(none="unauth", bad="unauth", self="unauth", other="unauth", svc="deny",
                     svc_obo="deny", admin="ok")
    return [
        ("GetConfig", lambda f: c.GetConfigRequest(key_prefix="limits"), open_rpc),
        ("ValidateConfig",
         lambda f: c.ValidateConfigRequest(yaml_document="limits:\n  inbox_cap: 5\n",
                                           name="x.yaml"),
         open_rpc),
        ("WatchConfig", lambda f: c.WatchConfigRequest(send_initial=True), open_rpc),
        ("SetOverride",
         lambda f: c.SetOverrideRequest(key="limits.inbox_cap", value="5000", reason="t"),
         admin_rpc),
        ("DeleteOverride", lambda f: c.DeleteOverrideRequest(key="limits.inbox_cap"),
         admin_rpc),
        ("ListOverrides", lambda f: c.ListOverridesRequest(), open_rpc),
        ("Reload", lambda f: c.ReloadConfigRequest(), admin_rpc),
    ]


ROWS = {
    "registry": registry_rows, "macs-gateway": macs_rows, "tasks": tasks_rows,
    "skills": skills_rows, "config": config_rows,
}


class AuthzMatrixTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.suite = lib.Suite({
            "CNET_LIMITS__RATE_LIMIT_BURST": "100000",
            "CNET_REGISTRY__ROTATE_MIN_INTERVAL": "0s",
            "CNET_TASKS__PUSH_ASSIGNMENT": "false",
        })
        cls.pb = lib.pb()
        cls.totals = {"cells": 0, "denied": 0, "unauthenticated": 0}

    @classmethod
    def tearDownClass(cls):
        cls.suite.stop()
        print("authz matrix: %(cells)d cells, %(unauthenticated)d UNAUTHENTICATED, "
              "%(denied)d PERMISSION_DENIED" % cls.totals)

    def run_service(self, service):
        rows = ROWS[service](self.pb)
        methods = {m.name for m in lib.service_descriptor(lib.GRPC_SERVICE[service]).methods}
        self.assertEqual(methods - {r[0] for r in rows}, set(),
                         "rpcs of %s without a row in the matrix" % service)
        mismatches, lines = [], []
        for method, build, want in rows:
            got_line = []
            for kind in KINDS:
                f = Fixture(self.suite)
                request = build(f)
                cred, obo = f.credential(kind)
                with self.suite.channel(service) as ch:
                    code, _, details = lib.call_code(ch, lib.GRPC_SERVICE[service], method,
                                                     request, cred, obo, timeout=20)
                got = verdict(code)
                self.totals["cells"] += 1
                self.totals["denied"] += code == C.PERMISSION_DENIED
                self.totals["unauthenticated"] += code == C.UNAUTHENTICATED
                got_line.append("%s=%s" % (kind, code.name))
                if got != want[kind] or (got == "ok" and code in MALFORMED):
                    mismatches.append("%s/%s as %s: want %s, got %s (%s)" % (
                        service, method, kind, want[kind], code.name, details))
            lines.append("%-20s %s" % (method, " ".join(got_line)))
        print("\n".join(["", "== " + service] + lines))
        self.assertEqual(mismatches, [], "\n" + "\n".join(mismatches))

    def test_registry(self):
        self.run_service("registry")

    def test_macs(self):
        self.run_service("macs-gateway")

    def test_tasks(self):
        self.run_service("tasks")

    def test_skills(self):
        self.run_service("skills")

    def test_config(self):
        self.run_service("config")

    def test_on_behalf_of_needs_the_service_credential(self):
        f = Fixture(self.suite)
        r = self.pb.registry
        for cred in (f.tok[f.other], lib.ADMIN):
            with self.suite.channel("registry") as ch:
                code, _, _ = lib.call_code(ch, lib.GRPC_SERVICE["registry"], "Heartbeat",
                                           r.HeartbeatRequest(agent_id=f.me), cred, f.me)
            self.assertEqual(code, C.PERMISSION_DENIED)

    def test_rotation_invalidates_the_old_token_everywhere(self):
        f = Fixture(self.suite)
        old = f.tok[f.me]
        r, t, m = self.pb.registry, self.pb.tasks, self.pb.macs
        # Warm every service's token cache with the old token.
        f.unary("tasks", "ListTasks", t.ListTasksRequest(), old)
        f.unary("macs-gateway", "FetchInbox", m.FetchInboxRequest(), old)
        f.unary("skills", "ListRuns", self.pb.skills.ListRunsRequest(), old)
        new = f.unary("registry", "RotateToken", r.RotateTokenRequest(), old).token
        self.assertNotEqual(new, old)
        with self.suite.channel("registry") as ch:
            code, _, _ = lib.call_code(ch, lib.GRPC_SERVICE["registry"], "Heartbeat",
                                       r.HeartbeatRequest(), old)
        self.assertEqual(code, C.UNAUTHENTICATED)
        f.unary("registry", "Heartbeat", r.HeartbeatRequest(), new)
        # The other services learn of the rotation through the registry's
        # Watch (TOKEN_ROTATED drops the cached answer); wait for that event
        # to have reached them by polling the outcome, bounded.
        checks = [("tasks", "ListTasks", t.ListTasksRequest()),
                  ("macs-gateway", "FetchInbox", m.FetchInboxRequest()),
                  ("skills", "ListRuns", self.pb.skills.ListRunsRequest())]
        for service, method, req in checks:
            deadline = time.time() + 20
            while True:
                with self.suite.channel(service) as ch:
                    code, _, _ = lib.call_code(ch, lib.GRPC_SERVICE[service], method, req, old)
                if code == C.UNAUTHENTICATED or time.time() > deadline:
                    break
                time.sleep(0.05)  # the Watch event is asynchronous
            self.assertEqual(code, C.UNAUTHENTICATED, "%s still accepts the old token" % service)
            with self.suite.channel(service) as ch:
                code, _, d = lib.call_code(ch, lib.GRPC_SERVICE[service], method, req, new)
            self.assertEqual(code, C.OK, "%s refuses the new token: %s" % (service, d))


if __name__ == "__main__":
    unittest.main(testRunner=unittest.TextTestRunner(stream=sys.stdout, verbosity=2))
