"""Shared fixture of the end-to-end tests: a suite started by `cnet up` on
free ports with a temporary HOME (and so data directory), driven only
through the built `cnet` binary as a subprocess."""
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import tempfile
import threading

RUNFILES = os.environ.get("TEST_SRCDIR", "") + "/claudenet"
CNET = os.path.join(RUNFILES, "tools/cnet/cnet")
BIN_DIR = os.path.join(RUNFILES, "services")
SERVICES = ["config", "registry", "macs-gateway", "tasks", "skills"]
ADDR_KEYS = ["CONFIG", "REGISTRY", "MACS", "TASKS", "SKILLS"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"  # a zombie counts as gone
    except FileNotFoundError:
        return False


class Suite:
    """One node: HOME, project dir and ports of its own."""

    def __init__(self):
        self.home = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        self.project = os.path.join(self.home, "project")
        os.makedirs(self.project)
        self.env = {"HOME": self.home, "PATH": "/usr/bin:/bin",
                    "CNET_SKILLS__LIBRARY_DIR": os.path.join(RUNFILES, "skills")}
        for key in ADDR_KEYS:
            self.env[f"CNET_SERVICES__{key}_ADDR"] = f"127.0.0.1:{free_port()}"
            self.env[f"CNET_SERVICES__{key}_METRICS_PORT"] = str(free_port())
        self.background = []

    def cnet(self, *args, env=None, input=None, timeout=60):
        return subprocess.run([CNET, "--project-dir", self.project, *args],
                              env={**self.env, **(env or {})}, capture_output=True, text=True,
                              input=input, timeout=timeout)

    def ok(self, *args, **kw):
        """Runs cnet --json ARGS, requires exit 0 and returns the parsed JSON."""
        r = self.cnet("--json", *args, **kw)
        if r.returncode != 0:
            raise AssertionError(f"cnet {' '.join(args)}: exit {r.returncode}: "
                                 f"{r.stdout} {r.stderr}\n{self.log_tails()}")
        return json.loads(r.stdout)

    def log_tails(self, lines=5):
        """The last lines of each service's output, for failure messages."""
        out = []
        logs = os.path.join(self.home, ".claude-network/logs")
        run = os.path.join(self.home, ".claude-network/data/run")
        for name in SERVICES:
            try:
                with open(os.path.join(run, name + ".pid")) as f:
                    pid = int(f.read())
                state = f"pid {pid} {'alive' if pid_alive(pid) else 'GONE'}"
            except (OSError, ValueError):
                state = "no pid file"
            tail = []
            for suffix in (".out", ".log"):
                try:
                    with open(os.path.join(logs, name + suffix)) as f:
                        tail += f.read().splitlines()[-lines:]
                except OSError:
                    pass
            out.append(f"--- {name} ({state})\n" + "\n".join(tail))
        return "\n".join(out)

    def up(self):
        return self.ok("up", "--bin-dir", BIN_DIR)

    def down(self):
        return self.cnet("down")

    def join(self, name, *caps):
        args = ["agent", "join", "--name", name]
        for c in caps:
            args += ["-c", c]
        return self.ok(*args)["agent"]["id"]

    def start(self, *args):
        p = Background([CNET, "--project-dir", self.project, *args], self.env)
        self.background.append(p)
        return p

    def close(self):
        for p in self.background:
            p.stop()
        self.down()
        shutil.rmtree(self.home, ignore_errors=True)


class Background:
    """A long-running cnet (agent run, msg watch) whose stdout lines are
    collected as they come."""

    def __init__(self, argv, env):
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.seen = []
        self.stderr = []
        self.errlines = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines),
                         daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.errlines),
                         daemon=True).start()

    @staticmethod
    def _pump(stream, q):
        for line in stream:
            q.put(line)

    def wait_for(self, predicate, timeout=30):
        """The first JSON line (already seen or arriving) matching predicate."""
        for event in self.seen:
            if predicate(event):
                return event
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no matching event within {timeout}s; saw {self.seen}; "
                                     f"stderr {''.join(self.stderr)}")
            event = json.loads(line)
            self.seen.append(event)
            if predicate(event):
                return event

    def wait_stderr(self, text, timeout=30):
        """Waits for a stderr line containing text."""
        while True:
            if any(text in line for line in self.stderr):
                return
            try:
                self.stderr.append(self.errlines.get(timeout=timeout))
            except queue.Empty:
                raise AssertionError(f"no {text!r} on stderr: {''.join(self.stderr)}")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)
