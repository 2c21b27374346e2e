"""Hostile sizes against the real binaries: oversized messages, deep YAML
nesting (config and skills), huge repeated fields and enormous page sizes
are refused with the right code before they cost memory, and every service
keeps serving afterwards.

  * gRPC: every server caps a received message at 4 MiB
    (ServerOptions.max_receive_message_bytes): a 5 MiB request is
    RESOURCE_EXHAUSTED before any handler runs.
  * Below that, each rpc's own limit: INVALID_ARGUMENT naming the field.
  * page_size above the rpc's maximum or negative: INVALID_ARGUMENT (never
    silently capped, common.proto).
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seclib as lib  # noqa: E402

import grpc  # noqa: E402

C = grpc.StatusCode
MIB = 1024 * 1024


class HostileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.suite = lib.Suite()
        cls.pb = lib.pb()
        cls.token = cls.suite.register("hostile-agent", ["python"])
        cls.suite.register("bob")

    @classmethod
    def tearDownClass(cls):
        cls.suite.stop()

    def code(self, service, method, request, credential=None):
        with self.suite.channel(service) as ch:
            code, _, details = lib.call_code(ch, lib.GRPC_SERVICE[service], method, request,
                                             self.token if credential is None else credential,
                                             timeout=60)
        return code, details

    def assertServing(self):
        for name in lib.SERVICES:
            self.assertTrue(lib.health_serving(self.suite.addr[name], timeout=10), name)

    def test_oversized_messages_are_refused_by_every_server(self):
        pb = self.pb
        big = "x" * (5 * MIB)
        cases = [
            ("registry", "Register", pb.registry.RegisterRequest(agent_id="huge", name=big)),
            ("macs-gateway", "Send", pb.macs.SendRequest(message=pb.macs.Message(body=big))),
            ("tasks", "CreateTask", pb.tasks.CreateTaskRequest(title="t", description=big)),
            ("skills", "ValidateSkill", pb.skills.ValidateSkillRequest(yaml_document=big)),
            ("config", "ValidateConfig", pb.config.ValidateConfigRequest(yaml_document=big)),
        ]
        for service, method, request in cases:
            code, details = self.code(service, method, request)
            self.assertEqual(code, C.RESOURCE_EXHAUSTED, "%s/%s: %s" % (service, method, details))
        self.assertServing()

    def test_documents_over_the_rpc_limit_are_invalid_argument(self):
        pb = self.pb
        two = "a: " + "x" * (2 * MIB) + "\n"
        for service, method, request, field in [
            ("skills", "ValidateSkill", pb.skills.ValidateSkillRequest(yaml_document=two),
             "yaml_document"),
            ("config", "ValidateConfig", pb.config.ValidateConfigRequest(yaml_document=two),
             "yaml_document"),
            ("tasks", "CreateTask",
             pb.tasks.CreateTaskRequest(title="t", description="d" * (MIB)), "description"),
        ]:
            code, details = self.code(service, method, request)
            self.assertEqual(code, C.INVALID_ARGUMENT, "%s/%s: %s" % (service, method, details))
            self.assertIn(field, details)
        self.assertServing()

    def test_deep_yaml_nesting_is_an_issue_not_a_crash(self):
        pb = self.pb
        docs = ["a: " + "[" * 100000, "a: " + "{" * 100000,
                "a:\n" + "".join(" " * (i + 1) + "-\n" for i in range(1400))]  # < 1 MiB
        for doc in docs:
            with self.suite.channel("config") as ch:
                resp = lib.call(ch, lib.GRPC_SERVICE["config"], "ValidateConfig",
                                pb.config.ValidateConfigRequest(yaml_document=doc, name="d.yaml"),
                                "", timeout=60)
            self.assertFalse(resp.valid)
            self.assertTrue(any("YAML" in i.reason or "deeper" in i.reason for i in resp.issues),
                            resp.issues)
            with self.suite.channel("skills") as ch:
                resp = lib.call(ch, lib.GRPC_SERVICE["skills"], "ValidateSkill",
                                pb.skills.ValidateSkillRequest(yaml_document=doc,
                                                               file_name="d.yaml"),
                                self.token, timeout=60)
            self.assertFalse(resp.valid)
            self.assertTrue(resp.issues)
        self.assertServing()

    def test_huge_repeated_fields_are_refused(self):
        pb = self.pb
        many = ["id-%07d" % i for i in range(200000)]  # ~2.4 MiB, under the gRPC cap
        cases = [
            ("macs-gateway", "Ack", pb.macs.AckRequest(message_ids=many)),
            ("registry", "ListAgents", pb.registry.ListAgentsRequest(capabilities_any=many)),
            ("registry", "FindAgents", pb.registry.FindAgentsRequest(exclude_agent_ids=many)),
            ("tasks", "CreateTask", pb.tasks.CreateTaskRequest(title="t", tags=many)),
            ("tasks", "CheckPaths", pb.tasks.CheckPathsRequest(workspace="w", paths=many)),
            ("tasks", "Reserve", pb.tasks.ReserveRequest(workspace="w", patterns=many)),
        ]
        results = []
        for service, method, request in cases:
            code, details = self.code(service, method, request)
            results.append("%s/%s: %s %s" % (service, method, code.name, details[:100]))
        print("\n".join(results))
        for line in results:
            self.assertIn("INVALID_ARGUMENT", line)
        self.assertServing()

    def test_enormous_page_sizes_are_invalid_argument(self):
        pb = self.pb
        cases = [
            ("registry", "ListAgents", pb.registry.ListAgentsRequest),
            ("registry", "ListAgentCards", pb.registry.ListAgentCardsRequest),
            ("macs-gateway", "FetchInbox", pb.macs.FetchInboxRequest),
            ("macs-gateway", "ListDeadLetters", pb.macs.ListDeadLettersRequest),
            ("tasks", "ListTasks", pb.tasks.ListTasksRequest),
            ("tasks", "ListReservations", pb.tasks.ListReservationsRequest),
            ("skills", "ListSkills", pb.skills.ListSkillsRequest),
            ("skills", "ListRuns", pb.skills.ListRunsRequest),
            ("config", "ListOverrides", pb.config.ListOverridesRequest),
        ]
        for service, method, cls in cases:
            for size in (2 ** 31 - 1, 1001, -1):
                code, details = self.code(service, method, cls(page_size=size),
                                          lib.ADMIN if service == "config" else None)
                self.assertEqual(code, C.INVALID_ARGUMENT,
                                 "%s/%s page_size %d: %s %s" % (service, method, size,
                                                                code.name, details))
                self.assertIn("page_size", details)
        self.assertServing()


if __name__ == "__main__":
    unittest.main(testRunner=unittest.TextTestRunner(stream=sys.stdout, verbosity=2))
