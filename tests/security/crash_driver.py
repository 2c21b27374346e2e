"""Crash-safety driver: steady load on all five services while random
services are SIGKILLed at random moments (each service in turn, in a
random order per round) and restarted; then the invariants.

Load (one thread each, every call with a short deadline, errors while a
service is down are expected and counted, never fatal):
  registry  register new agents; heartbeat them
  macs      send signed messages alice -> bob; ack some of them
  tasks     create tasks; two agents compete to claim them; complete some
  skills    run the `ping` skill synchronously

Invariants checked at the end, over every operation whose rpc answered OK:
  * every registered agent still exists (registration lost = 0);
  * every acknowledged message is in bob's inbox (message lost = 0), and an
    acked one is still acked;
  * every created task exists; every completed one is COMPLETED;
    no (task, lease epoch) was granted to two agents, and no task's final
    lease epoch is below one that was acknowledged (task lost / double
    owner = 0);
  * every acknowledged skill run exists;
  * every SQLite store passes PRAGMA integrity_check.

  crash_driver.py --kills 3            # the short form (the test command)
  crash_driver.py --kills 25 --seed 7  # a longer run
As a library: run(kills, seed, gap) returns the report dict.
"""
import argparse
import glob
import os
import random
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seclib as lib  # noqa: E402

import grpc  # noqa: E402
from claudenet_signing import canonical_bytes, rfc3339, sign  # noqa: E402

DEADLINE = 3


class Load:
    def __init__(self, suite, tokens):
        self.suite = suite
        self.tok = tokens
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = {"register": 0, "heartbeat": 0, "send": 0, "ack": 0, "create": 0,
                   "claim": 0, "complete": 0, "run": 0}
        self.errors = {}
        self.registered = []
        self.sent = []
        self.acked = set()
        self.created = []
        self.completed = set()
        self.claims = {}  # (task, epoch) -> agent
        self.double_claims = []
        self.max_epoch = {}
        self.runs = []
        self.pb = lib.pb()

    def count(self, op, n=1):
        with self.lock:
            self.ok[op] += n

    def error(self, op, e):
        code = e.code().name if isinstance(e, grpc.RpcError) else type(e).__name__
        with self.lock:
            self.errors[(op, code)] = self.errors.get((op, code), 0) + 1
        self.stop.wait(0.02)  # back off while a service restarts

    def call(self, ch, service, method, req, token):
        return lib.call(ch, lib.GRPC_SERVICE[service], method, req, token, timeout=DEADLINE)

    # --- workers --------------------------------------------------------------
    def registry_worker(self):
        r = self.pb.registry
        n = 0
        with self.suite.channel("registry") as ch:
            while not self.stop.is_set():
                agent = "load-%05d" % n
                try:
                    resp = self.call(ch, "registry", "Register",
                                     r.RegisterRequest(agent_id=agent, name=agent), "")
                    with self.lock:
                        self.registered.append(agent)
                    self.count("register")
                    n += 1
                    self.call(ch, "registry", "Heartbeat", r.HeartbeatRequest(), resp.token)
                    self.count("heartbeat")
                except grpc.RpcError as e:
                    if e.code() == grpc.StatusCode.PERMISSION_DENIED:
                        # Registered before the kill, answer lost: it exists.
                        with self.lock:
                            self.registered.append(agent)
                        n += 1
                    self.error("register", e)

    def macs_worker(self):
        m = self.pb.macs
        n = 0
        with self.suite.channel("macs-gateway") as ch:
            while not self.stop.is_set():
                msg = m.Message()
                now = int(time.time())
                msg.id, msg.recipient, msg.body = "crash-%06d" % n, "bob", "body %d" % n
                msg.created_at.seconds = now
                data = canonical_bytes(msg.id, "alice", "bob", 0, "", msg.body, {}, 0,
                                       rfc3339(now), 0, "", "", "")
                msg.signature = sign(lib.SECRET, data)
                n += 1
                try:
                    self.call(ch, "macs-gateway", "Send", m.SendRequest(message=msg),
                              self.tok["alice"])
                    with self.lock:
                        self.sent.append(msg.id)
                    self.count("send")
                except grpc.RpcError as e:
                    self.error("send", e)
                    continue
                if n % 4 == 0:
                    try:
                        resp = self.call(ch, "macs-gateway", "Ack",
                                         m.AckRequest(message_ids=[msg.id]), self.tok["bob"])
                        done = (m.ITEM_OUTCOME_OK, m.ITEM_OUTCOME_ALREADY_DONE)
                        if all(r.outcome in done for r in resp.results):
                            with self.lock:
                                self.acked.add(msg.id)
                            self.count("ack")
                    except grpc.RpcError as e:
                        self.error("ack", e)

    def tasks_creator(self):
        t = self.pb.tasks
        n = 0
        with self.suite.channel("tasks") as ch:
            while not self.stop.is_set():
                key = "crash-task-%06d" % n
                try:
                    resp = self.call(ch, "tasks", "CreateTask",
                                     t.CreateTaskRequest(title=key, idempotency_key=key),
                                     self.tok["alice"])
                    with self.lock:
                        self.created.append(resp.task.id)
                    self.count("create")
                    n += 1
                except grpc.RpcError as e:
                    self.error("create", e)

    def tasks_claimer(self, agent):
        t = self.pb.tasks
        with self.suite.channel("tasks") as ch:
            while not self.stop.is_set():
                try:
                    req = t.ClaimRequest()
                    req.wait.nanos = 200 * 1000 * 1000
                    resp = self.call(ch, "tasks", "Claim", req, self.tok[agent])
                except grpc.RpcError as e:
                    self.error("claim", e)
                    continue
                if not resp.task.id:
                    continue
                key = (resp.task.id, resp.lease.epoch)
                with self.lock:
                    prev = self.claims.get(key)
                    if prev is not None and prev != agent:
                        self.double_claims.append((key, prev, agent))
                    self.claims[key] = agent
                    self.max_epoch[resp.task.id] = max(self.max_epoch.get(resp.task.id, 0),
                                                       resp.lease.epoch)
                self.count("claim")
                lease = dict(lease_id=resp.lease.lease_id, lease_epoch=resp.lease.epoch)
                try:
                    self.call(ch, "tasks", "Start", t.StartRequest(task_id=resp.task.id, **lease),
                              self.tok[agent])
                    res = t.TaskResult(stop_reason=t.STOP_REASON_DONE, summary="done")
                    self.call(ch, "tasks", "Complete",
                              t.CompleteRequest(task_id=resp.task.id, result=res, **lease),
                              self.tok[agent])
                    with self.lock:
                        self.completed.add(resp.task.id)
                    self.count("complete")
                except grpc.RpcError as e:
                    self.error("complete", e)

    def skills_worker(self):
        s = self.pb.skills
        with self.suite.channel("skills") as ch:
            while not self.stop.is_set():
                try:
                    resp = self.call(ch, "skills", "RunSkill",
                                     s.RunSkillRequest(name="ping", mode=s.RUN_MODE_SYNC),
                                     self.tok["carol"])
                    with self.lock:
                        self.runs.append(resp.run.run_id)
                    self.count("run")
                except grpc.RpcError as e:
                    self.error("run", e)

    def start(self):
        self.threads = [threading.Thread(target=f, args=a, daemon=True) for f, a in [
            (self.registry_worker, ()), (self.macs_worker, ()), (self.tasks_creator, ()),
            (self.tasks_claimer, ("worker-a",)), (self.tasks_claimer, ("worker-b",)),
            (self.skills_worker, ())]]
        for th in self.threads:
            th.start()

    def join(self):
        self.stop.set()
        for th in self.threads:
            th.join(timeout=30)


def retry(fn, attempts=50):
    """Calls fn until it answers (the services were just restarted)."""
    for i in range(attempts):
        try:
            return fn()
        except grpc.RpcError as e:
            if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                                grpc.StatusCode.UNAUTHENTICATED) or i == attempts - 1:
                raise
            time.sleep(0.1)  # waiting for a restarted dependency


def check(suite, load):
    pb = lib.pb()
    lost = {"registration": [], "message": [], "ack": [], "task": [], "completion": [],
            "run": [], "double_owner": list(load.double_claims), "epoch": []}
    with suite.channel("registry") as ch:
        have = set()
        token = ""
        req = pb.registry.ListAgentsRequest(page_size=1000)
        while True:
            resp = retry(lambda: lib.call(ch, lib.GRPC_SERVICE["registry"], "ListAgents", req,
                                          lib.ADMIN))
            have.update(a.id for a in resp.agents)
            token = resp.next_page_token
            if not token:
                break
            req.page_token = token
        lost["registration"] = [a for a in load.registered if a not in have]
    with suite.channel("macs-gateway") as ch:
        inbox = {}
        req = pb.macs.FetchInboxRequest(agent_id="bob", filter=pb.macs.INBOX_FILTER_ALL,
                                        page_size=1000)
        while True:
            resp = retry(lambda: lib.call(ch, lib.GRPC_SERVICE["macs-gateway"], "FetchInbox",
                                          req, lib.ADMIN))
            for e in resp.entries:
                inbox[e.message.id] = e.state
            if not resp.next_page_token:
                break
            req.page_token = resp.next_page_token
        lost["message"] = [m for m in load.sent if m not in inbox]
        lost["ack"] = [m for m in load.acked
                       if m in inbox and inbox[m] != pb.macs.DELIVERY_STATE_ACKED]
    with suite.channel("tasks") as ch:
        for task_id in load.created:
            try:
                task = retry(lambda: lib.call(ch, lib.GRPC_SERVICE["tasks"], "GetTask",
                                              pb.tasks.GetTaskRequest(task_id=task_id),
                                              lib.ADMIN)).task
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.NOT_FOUND:
                    lost["task"].append(task_id)
                    continue
                raise
            if task_id in load.completed and task.state != pb.tasks.TASK_STATE_COMPLETED:
                lost["completion"].append((task_id, pb.tasks.TaskState.Name(task.state)))
            terminal = (pb.tasks.TASK_STATE_COMPLETED, pb.tasks.TASK_STATE_FAILED,
                        pb.tasks.TASK_STATE_CANCELLED)
            # A live lease never goes back to an epoch already handed out
            # (terminal tasks drop their lease).
            if task.state not in terminal and \
                    task.lease.epoch < load.max_epoch.get(task_id, 0):
                lost["epoch"].append((task_id, task.lease.epoch, load.max_epoch[task_id]))
    with suite.channel("skills") as ch:
        for run_id in load.runs:
            try:
                retry(lambda: lib.call(ch, lib.GRPC_SERVICE["skills"], "GetRun",
                                       pb.skills.GetRunRequest(run_id=run_id, omit_steps=True),
                                       lib.ADMIN))
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.NOT_FOUND:
                    lost["run"].append(run_id)
                    continue
                raise
    return lost


def integrity(data_dir):
    results = {}
    for path in sorted(glob.glob(os.path.join(data_dir, "**", "*.db"), recursive=True)):
        con = sqlite3.connect(path)
        try:
            results[os.path.relpath(path, data_dir)] = con.execute(
                "PRAGMA integrity_check").fetchone()[0]
        finally:
            con.close()
    return results


def run(kills=3, seed=1, gap=(0.5, 2.0), out=sys.stdout):
    rng = random.Random(seed)
    suite = lib.Suite({
        "CNET_LIMITS__RATE_LIMIT_BURST": "1000000",
        "CNET_LIMITS__INBOX_CAP": "1000000",
        "CNET_TASKS__PUSH_ASSIGNMENT": "false",
        "CNET_TASKS__CREATE_RATE_PER_AGENT": "0",
        "CNET_SKILLS__MAX_RUNS_PER_AGENT": "1000",
        "CNET_LIMITS__MAX_SKILL_RUNS": "1000",
    })
    try:
        tokens = {a: suite.register(a) for a in ("alice", "bob", "carol", "worker-a",
                                                 "worker-b")}
        load = Load(suite, tokens)
        load.start()
        killed = {name: 0 for name in lib.SERVICES}
        started = time.time()
        order = []
        for _ in range(kills):
            time.sleep(rng.uniform(*gap))  # a random moment under load: the point of the driver
            if not order:  # every service in turn, in a random order each round
                order = list(lib.SERVICES)
                rng.shuffle(order)
            victim = order.pop()
            suite.kill(victim)
            killed[victim] += 1
            suite.start(victim)
        time.sleep(rng.uniform(*gap))  # load after the last restart
        load.join()
        elapsed = time.time() - started
        lost = check(suite, load)
    finally:
        suite.stop()
    checks = integrity(suite.data)
    report = {
        "kills": sum(killed.values()), "killed": killed, "acknowledged": dict(load.ok),
        "errors_during_kills": sum(load.errors.values()), "seconds": round(elapsed, 1),
        "lost": {k: len(v) for k, v in lost.items()}, "lost_detail": lost,
        "integrity": checks,
    }
    print("crash driver: kills=%d (%s) in %.1fs" % (
        report["kills"], ", ".join("%s %d" % kv for kv in killed.items() if kv[1]), elapsed),
        file=out)
    print("  acknowledged: " + ", ".join("%s %d" % kv for kv in load.ok.items()), file=out)
    print("  failed calls while services were down: %d (%s)" % (
        report["errors_during_kills"],
        ", ".join("%s %s %d" % (op, code, n) for (op, code), n in sorted(load.errors.items()))),
        file=out)
    print("  lost = %d (%s)" % (sum(report["lost"].values()),
                                ", ".join("%s %d" % kv for kv in report["lost"].items())),
          file=out)
    print("  integrity_check: " + ", ".join("%s %s" % kv for kv in checks.items()), file=out)
    return report


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--min-gap", type=float, default=0.5)
    p.add_argument("--max-gap", type=float, default=2.0)
    a = p.parse_args()
    report = run(a.kills, a.seed, (a.min_gap, a.max_gap))
    bad = sum(report["lost"].values()) or any(v != "ok" for v in report["integrity"].values())
    if bad:
        print(report["lost_detail"])
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
