"""Example Claude Network client in Python, from stubs generated out of
proto/ (tools/gen_clients.sh). It registers two agents, sends a signed
message from one to the other and reads it back, then creates a task and
has the second agent take it (pushed by the scheduler, or claimed) and
start it.

  tools/gen_clients.sh /tmp/cnet-clients
  PYTHONPATH=/tmp/cnet-clients/python:examples/python /usr/bin/python3 \
      examples/python/example.py --registry 127.0.0.1:7101 --macs 127.0.0.1:7102 \
      --tasks 127.0.0.1:7103 --secret-file ~/.claude-network/data/message.secret
"""
import argparse
import os
import sys
import time
import uuid

import grpc
from google.protobuf import struct_pb2

from proto.claudenet.v1 import macs_pb2, macs_pb2_grpc
from proto.claudenet.v1 import registry_pb2, registry_pb2_grpc
from proto.claudenet.v1 import tasks_pb2, tasks_pb2_grpc

import claudenet_signing


def auth(token):
    return [("authorization", "Bearer " + token)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--registry", default="127.0.0.1:7101")
    ap.add_argument("--macs", default="127.0.0.1:7102")
    ap.add_argument("--tasks", default="127.0.0.1:7103")
    ap.add_argument("--secret-file",
                    default=os.path.expanduser("~/.claude-network/data/message.secret"))
    args = ap.parse_args()
    with open(args.secret_file) as f:
        secret = f.read().strip()

    registry = registry_pb2_grpc.RegistryServiceStub(grpc.insecure_channel(args.registry))
    macs = macs_pb2_grpc.MacsGatewayStub(grpc.insecure_channel(args.macs))
    tasks = tasks_pb2_grpc.TaskServiceStub(grpc.insecure_channel(args.tasks))
    suffix = uuid.uuid4().hex[:8]

    agents = {}
    for role, caps in (("alice", ["python", "review"]), ("bob", ["python", "build"])):
        resp = registry.Register(registry_pb2.RegisterRequest(
            name=f"py-{role}-{suffix}", capabilities=caps), timeout=10)
        agents[role] = (resp.agent.id, resp.token)
        print(f"registered {role}: {resp.agent.id}")
    alice_id, alice_token = agents["alice"]
    bob_id, bob_token = agents["bob"]

    # A signed direct message; the signature is computed here, in Python.
    now = int(time.time())
    msg_id = "msg-py-" + uuid.uuid4().hex
    payload = {"attempt": 1, "lang": "python"}
    canonical = claudenet_signing.canonical_bytes(
        msg_id, alice_id, bob_id, macs_pb2.MESSAGE_TYPE_DIRECT, "hello", "hi bob, from python",
        payload, 0, claudenet_signing.rfc3339(now), 0, "", "", "")
    message = macs_pb2.Message(
        id=msg_id, sender=alice_id, recipient=bob_id, type=macs_pb2.MESSAGE_TYPE_DIRECT,
        subject="hello", body="hi bob, from python",
        signature=claudenet_signing.sign(secret, canonical))
    message.payload.update(payload)
    message.created_at.FromSeconds(now)
    sent = macs.Send(macs_pb2.SendRequest(message=message), metadata=auth(alice_token),
                     timeout=10)
    print(f"sent {sent.message_id} to {sent.recipient_count} recipient(s)")

    inbox = macs.FetchInbox(macs_pb2.FetchInboxRequest(agent_id=bob_id),
                            metadata=auth(bob_token), timeout=10)
    got = [e for e in inbox.entries if e.message.id == msg_id]
    if not got:
        print("message not found in bob's inbox", file=sys.stderr)
        return 1
    print(f"bob read: {got[0].message.subject!r}: {got[0].message.body!r}")
    macs.Ack(macs_pb2.AckRequest(agent_id=bob_id, inbox_sequences=[got[0].inbox_sequence]),
             metadata=auth(bob_token), timeout=10)

    created = tasks.CreateTask(tasks_pb2.CreateTaskRequest(
        title=f"build the thing {suffix}", required_capabilities=["build"]),
        metadata=auth(alice_token), timeout=10)
    print(f"created task {created.task.id}")
    # The scheduler may already have pushed it to bob (the only agent with
    # "build"); otherwise bob pulls it.
    task = tasks.GetTask(tasks_pb2.GetTaskRequest(task_id=created.task.id),
                         metadata=auth(bob_token), timeout=10).task
    if task.state == tasks_pb2.TASK_STATE_ASSIGNED and task.assignee == bob_id:
        lease, how = task.lease, "was assigned"
    else:
        claimed = tasks.Claim(tasks_pb2.ClaimRequest(agent_id=bob_id, task_id=task.id),
                              metadata=auth(bob_token), timeout=10)
        lease, how = claimed.lease, "claimed"
    tasks.Start(tasks_pb2.StartRequest(task_id=task.id, lease_id=lease.lease_id,
                                       lease_epoch=lease.epoch),
                metadata=auth(bob_token), timeout=10)
    print(f"bob {how} and started {task.id} (lease epoch {lease.epoch})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
