"""Smoke test of the benchmark tool: `bench --quick` runs to the end, starts
and stops its own suite, and writes every figure to its JSON report. It
asserts presence and shape, never speed."""
import json
import os
import subprocess
import sys
import unittest

RUNFILES = os.environ.get("TEST_SRCDIR", "") + "/claudenet"
BENCH = os.path.join(RUNFILES, "tools/bench/bench")

EXPECTED = {
    "baseline": ["unary ping-pong p50", "unary ping-pong p99", "max unary req/s (64 in flight)"],
    "suite": ["cnet up -> all SERVING", "idle RSS config", "idle RSS registry",
              "idle RSS macs-gateway", "idle RSS tasks", "idle RSS skills"],
    "registry": ["register 100k agents", "heartbeats/s", "FindAgents p50", "FindAgents p99",
                 "ListAgents by capability p50", "ListAgents by capability p99",
                 "registry RSS with 100k agents"],
    "macs": ["durable sends/s (1 sender)", "durable sends/s (16 senders)",
             "durable sends/s (64 senders)", "send->deliver p50 @1000/s",
             "send->deliver p95 @1000/s", "send->deliver p99 @1000/s",
             "broadcast fan-out to 100 agents"],
    "tasks": ["create->ASSIGNED p50", "create->ASSIGNED p99", "claims/s (16 agents, 100k queued)"],
    "skills": ["trivial skill runs/s", "per-step overhead p99 (50 parallel)"],
}
# Workloads whose figures must be measured (not just listed) today.
MEASURED = {"baseline", "suite", "registry", "macs", "tasks", "skills"}


class BenchSmokeTest(unittest.TestCase):
    def test_quick_run_reports_every_figure(self):
        out = os.path.join(os.environ["TEST_TMPDIR"], "bench.json")
        run = subprocess.run([BENCH, "--quick", "--out", out], capture_output=True,
                             text=True, timeout=300, env={"PATH": "/usr/bin:/bin",
                                                           "HOME": os.environ["TEST_TMPDIR"]})
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        with open(out) as f:
            report = json.load(f)
        self.assertGreaterEqual(report["machine"]["cores"], 1)
        self.assertEqual(report["parameters"]["mode"], "quick")
        figures = {(f["workload"], f["name"]): f for f in report["figures"]}
        for workload, names in EXPECTED.items():
            for name in names:
                self.assertIn((workload, name), figures)
                fig = figures[(workload, name)]
                if workload in MEASURED:
                    self.assertTrue(fig["available"], fig)
                    self.assertGreater(fig["value"], 0, fig)
                else:
                    self.assertTrue(fig["available"] or fig["note"], fig)
        self.assertIn("workload", run.stdout.splitlines()[0])


if __name__ == "__main__":
    unittest.main()
