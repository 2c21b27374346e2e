"""Latency of the agent-experience paths, printed (never asserted).

    bazel run //tests/agentx:agentx_bench [-- --hooks 50 --calls 500]

Starts its own suite on free ports (temporary HOME), then measures:
- `cnet hook pre-tool-use` end to end (process start, CheckPaths, inbox
  fetch, JSON out) for a path reserved by another agent (deny) and a free one;
- `cnet hook session-start` (join/rejoin, context);
- `cnet reservations check --staged` as the pre-commit hook runs it;
- MCP tools/call round trips over one `cnet mcp` process (network_status,
  reserve_paths + release_paths, read_inbox).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
RUNFILES = os.environ.get("RUNFILES_DIR") or (os.path.abspath(sys.argv[0]) + ".runfiles")
os.environ.setdefault("TEST_SRCDIR", RUNFILES)
import agentx_test as t  # noqa: E402


def stats(name, samples_ms):
    samples_ms.sort()
    p = lambda q: samples_ms[min(len(samples_ms) - 1, int(q * len(samples_ms)))]
    print("%-44s n=%-5d p50 %7.2f ms  p90 %7.2f ms  p99 %7.2f ms  mean %7.2f ms" %
          (name, len(samples_ms), p(0.5), p(0.9), p(0.99), statistics.mean(samples_ms)))


def timed(fn, n):
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hooks", type=int, default=30)
    ap.add_argument("--calls", type=int, default=300)
    args = ap.parse_args()
    t.RUNFILES = os.path.join(RUNFILES, "claudenet")
    t.CNET = os.path.join(t.RUNFILES, "tools/cnet/cnet")
    os.environ.setdefault("TEST_TMPDIR", tempfile.gettempdir())
    suite = t.Suite()
    suite.up()
    try:
        repo = tempfile.mkdtemp(dir=suite.root)
        subprocess.run(["git", "init", "-q", repo], check=True)
        os.makedirs(os.path.join(repo, "src"))
        def join(name):
            r = suite.cnet("--json", "agent", "join", "--name", name)
            return json.loads(r.stdout)["agent"]["id"]
        alice, bob = join("bench-alice"), join("bench-bob")
        suite.cnet("reserve", "src/**", env={"CNET_AGENT_ID": alice}, cwd=repo)
        def hook(path, agent):
            payload = {"session_id": "bench", "cwd": repo, "hook_event_name": "PreToolUse",
                       "tool_name": "Edit", "tool_input": {"file_path": os.path.join(repo, path)}}
            r = suite.cnet("hook", "pre-tool-use", stdin=json.dumps(payload),
                           env={"CNET_AGENT_ID": agent}, cwd=repo)
            assert r.returncode == 0, r.stderr
        stats("hook pre-tool-use, reserved path (deny)", timed(lambda: hook("src/a.cc", bob),
                                                               args.hooks))
        stats("hook pre-tool-use, free path", timed(lambda: hook("docs/x.md", bob), args.hooks))
        home = tempfile.mkdtemp(dir=suite.root)
        def start():
            payload = {"session_id": "bench-s", "cwd": repo, "hook_event_name": "SessionStart"}
            suite.cnet("hook", "session-start", stdin=json.dumps(payload), home=home, cwd=repo)
        stats("hook session-start (rejoin + context)", timed(start, max(5, args.hooks // 3)))
        suite.cnet("hook", "session-end", stdin=json.dumps({"session_id": "bench-s", "cwd": repo}),
                   home=home, cwd=repo)
        with open(os.path.join(repo, "src/a.cc"), "w") as f:
            f.write("x")
        subprocess.run(["git", "-C", repo, "add", "src/a.cc"], check=True)
        stats("reservations check --staged (pre-commit)",
              timed(lambda: suite.cnet("--timeout", "3", "reservations", "check", "--staged",
                                       env={"CNET_AGENT_ID": bob}, cwd=repo), args.hooks))
        mcp = t.Mcp(suite, bob, repo)
        mcp.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                   "clientInfo": {"name": "bench", "version": "1"}})
        stats("mcp tools/call network_status", timed(lambda: mcp.call("network_status"),
                                                     args.calls))
        def reserve_release():
            mcp.call("reserve_paths", patterns=["docs/**"])
            mcp.call("release_paths", patterns=["docs/**"])
        stats("mcp reserve_paths + release_paths (pair)", timed(reserve_release, args.calls // 2))
        stats("mcp tools/call read_inbox", timed(lambda: mcp.call("read_inbox"), args.calls))
        stats("mcp ping", timed(lambda: mcp.request("ping"), args.calls))
        mcp.close()
        print("machine: %d cores, load average %s" % (os.cpu_count(),
                                                       " ".join("%.2f" % x for x in os.getloadavg())))
    finally:
        suite.down()


if __name__ == "__main__":
    main()
