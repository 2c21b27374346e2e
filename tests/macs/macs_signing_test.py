"""The signing doc is enough to interoperate: a message signed with Python's
standard library (hmac, hashlib) following docs/macs.md is accepted by the
real gateway, and the documented test vector is reproduced byte for byte."""
import hashlib
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import macs_testlib as lib  # noqa: E402

import grpc  # noqa: E402


class TestVector(unittest.TestCase):
    def test_documented_vector(self):
        data = lib.canonical_bytes(
            "msg-0001", "agent-alice", "agent-bob", 1, "Build status",
            "Tests pass on main \u2713",
            {"run": 42, "ok": True, "ratio": 0.25, "tags": ["ci", "linux"], "note": None},
            3, "2025-01-02T03:04:05Z", 3600, "thread-7", "", "node-a")
        self.assertEqual(len(data), 225)
        self.assertEqual(hashlib.sha256(data).hexdigest(),
                         "182d1ec9db5b66803c3b0c3a6412d9e6def1ff30c6d55940ad61bfb082f5d2b0")
        self.assertEqual(lib.sign("test-shared-secret-0123456789abcdef", data),
                         "6c8c3299ee8de574eb97185fbe337906ee051649c49e8c003d12d4feef831a43")


class GatewayAcceptsStdlibSignatures(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.common, cls.macs, _ = lib.pb()
        cls.net = lib.Network("alice:python;bob")
        cls.net.start_gateway()
        cls.channel = grpc.insecure_channel(cls.net.addr)

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()
        cls.net.stop()

    def message(self, id, body, payload):
        m = self.macs.Message()
        m.id = id
        m.recipient = "bob"
        m.type = self.macs.MESSAGE_TYPE_QUERY
        m.subject = "From Python \u00e9"
        m.body = body
        m.payload.update(payload)
        m.priority = self.common.PRIORITY_HIGH
        now = int(time.time())
        m.created_at.seconds = now
        m.ttl.seconds = 600
        m.correlation_id = "py-thread"
        m.origin_node = "node-a"
        data = lib.canonical_bytes(m.id, "alice", m.recipient, m.type, m.subject, m.body,
                                   payload, m.priority, lib.rfc3339(now), 600,
                                   m.correlation_id, m.reply_to, m.origin_node)
        m.signature = lib.sign(lib.SECRET, data)
        return m

    def send(self, m):
        req = self.macs.SendRequest()
        req.message.CopyFrom(m)
        return lib.call(self.channel, "Send", req, self.macs.SendResponse, self.net.tokens["alice"])

    def test_signed_message_is_accepted_and_delivered(self):
        payload = {"task": "lint", "files": ["a.py", "b\"c.py"], "n": 3, "ok": False,
                   "nested": {"z": None, "a": "\u2713 done\n"}}
        resp = self.send(self.message("py-1", "hello from the standard library", payload))
        self.assertEqual(resp.sender, "alice")
        self.assertEqual(resp.deliveries[0].agent_id, "bob")
        fetch = self.macs.FetchInboxRequest()
        inbox = lib.call(self.channel, "FetchInbox", fetch, self.macs.FetchInboxResponse,
                         self.net.tokens["bob"])
        got = [e.message for e in inbox.entries if e.message.id == "py-1"]
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0].provenance.hmac, self.macs.SIGNATURE_STATE_VERIFIED)
        self.assertEqual(got[0].payload["files"][1], "b\"c.py")

    def test_tampered_message_is_refused(self):
        m = self.message("py-2", "original body", {"k": 1})
        m.body = "tampered body"
        with self.assertRaises(grpc.RpcError) as err:
            self.send(m)
        self.assertEqual(err.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        self.assertIn("signature", err.exception.details())

    def test_wrong_key_is_refused(self):
        m = self.message("py-3", "body", {})
        m.signature = lib.sign("not-the-secret", b"whatever")
        with self.assertRaises(grpc.RpcError) as err:
            self.send(m)
        self.assertEqual(err.exception.code(), grpc.StatusCode.UNAUTHENTICATED)


if __name__ == "__main__":
    unittest.main()
