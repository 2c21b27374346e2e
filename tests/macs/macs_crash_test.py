"""Acknowledged means on disk: send messages concurrently to the real
gateway, kill -9 it in the middle, restart it on the same data directory,
and check that every message whose Send returned OK is in the inbox
(lost = 0). Resending everything with the same ids then delivers each
message exactly once (the receiver's view after dedupe)."""
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import macs_testlib as lib  # noqa: E402

import grpc  # noqa: E402

N = 4000
IN_FLIGHT = 64
KILL_AFTER = 1200  # acknowledgements


class CrashTest(unittest.TestCase):
    def setUp(self):
        self.common, self.macs, _ = lib.pb()
        self.net = lib.Network(
            "alice;bob",
            {"CNET_LIMITS__RATE_LIMIT_PER_SEC": "1000000",
             "CNET_LIMITS__RATE_LIMIT_BURST": "1000000",
             "CNET_LIMITS__INBOX_CAP": "100000"})

    def tearDown(self):
        self.net.stop()

    def request(self, i, now):
        m = self.macs.Message()
        m.id = "crash-%05d" % i
        m.recipient = "bob"
        m.body = "message %d" % i
        m.created_at.seconds = now
        data = lib.canonical_bytes(m.id, "alice", "bob", 0, "", m.body, {}, 0,
                                   lib.rfc3339(now), 0, "", "", "")
        m.signature = lib.sign(lib.SECRET, data)
        req = self.macs.SendRequest()
        req.message.CopyFrom(m)
        return req

    def send_all(self, channel, requests, kill_after=None):
        acked, failed = set(), set()
        lock = threading.Lock()
        slots = threading.Semaphore(IN_FLIGHT)
        done = threading.Event()
        pending = [len(requests)]
        killed = [False]

        def finished(i, fut):
            try:
                fut.result()
                ok = True
            except grpc.RpcError:
                ok = False
            with lock:
                (acked if ok else failed).add(i)
                if kill_after is not None and not killed[0] and len(acked) >= kill_after:
                    killed[0] = True
                    self.net.kill_gateway()
                pending[0] -= 1
                if pending[0] == 0:
                    done.set()
            slots.release()

        for i, req in requests:
            slots.acquire()
            fut = lib.call_future(channel, "Send", req, self.macs.SendResponse, self.net.tokens["alice"],
                                  timeout=10)
            fut.add_done_callback(lambda f, i=i: finished(i, f))
        self.assertTrue(done.wait(120))
        return acked, failed

    def inbox_ids(self, channel):
        ids = []
        req = self.macs.FetchInboxRequest(filter=self.macs.INBOX_FILTER_UNACKED, page_size=1000)
        while True:
            resp = lib.call(channel, "FetchInbox", req, self.macs.FetchInboxResponse, self.net.tokens["bob"])
            ids += [e.message.id for e in resp.entries]
            if not resp.next_page_token:
                return ids
            req.page_token = resp.next_page_token

    def test_no_acknowledged_message_is_lost_across_kill_9(self):
        self.net.start_gateway()
        now = int(time.time())
        requests = [(i, self.request(i, now)) for i in range(N)]
        channel = grpc.insecure_channel(self.net.addr)
        acked, failed = self.send_all(channel, requests, kill_after=KILL_AFTER)
        channel.close()
        self.assertGreaterEqual(len(acked), KILL_AFTER)
        self.assertGreater(len(failed), 0, "the kill came too late to interrupt sends")

        self.net.start_gateway()
        channel = grpc.insecure_channel(self.net.addr)
        present = set(self.inbox_ids(channel))
        want = {"crash-%05d" % i for i in acked}
        lost = want - present
        print(f"sent {N}, acknowledged before kill -9: {len(acked)}, failed: {len(failed)}, "
              f"in inbox after restart: {len(present)}, lost acknowledged messages: {len(lost)}")
        self.assertEqual(len(lost), 0, sorted(lost)[:10])

        # The sender retries everything with the same ids: acknowledged ones
        # come back as duplicates, the rest are accepted; each id once.
        acked2, failed2 = self.send_all(channel, requests)
        self.assertEqual(failed2, set())
        ids = self.inbox_ids(channel)
        self.assertEqual(len(ids), N)
        self.assertEqual(len(set(ids)), N)
        channel.close()


if __name__ == "__main__":
    unittest.main()
