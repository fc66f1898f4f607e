#!/usr/bin/env python3
"""README command 1 (scripts/quickstart.sh) serving for real on the golden model.

  quickstart_test.py --build-dir BUILD [--model MODEL.gguf] [unittest args]

Runs quickstart.sh against an existing build (--build-dir: no package install,
no build) with two workers, a router and free ports on 127.0.0.1, waits for the
ready-to-paste curl lines it prints, runs them exactly as printed (bash -c) and
checks that a chat completion (and a llama.cpp /completion) comes back; then
sends SIGINT to the script and checks that it and every process it started
exit and that its log directory is gone. Also `--no-serve` (one completion and
exit). Exit status: unittest's (0 = all passed), 77 without curl, 2 when the
build or the model is missing.
"""

import argparse
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deploy_common as dc  # noqa: E402

ARGS = None
SCRIPT = os.path.join(dc.REPO_ROOT, "scripts", "quickstart.sh")
# Bounds on every wait, in seconds (the machine may be shared).
READY_TIMEOUT = 120
CURL_TIMEOUT = 60
STOP_TIMEOUT = 60


def free_port_runs(lengths):
    """For each length n, a port p with p..p+n-1 free on 127.0.0.1, no two runs overlapping."""
    taken, starts = set(), []
    for n in lengths:
        for _ in range(100):
            held = []
            try:
                first = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                held.append(first)
                first.bind(("127.0.0.1", 0))
                p = first.getsockname()[1]
                run = set(range(p, p + n))
                if run & taken or p + n - 1 > 65535:
                    continue
                for q in range(p + 1, p + n):
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    held.append(s)
                    s.bind(("127.0.0.1", q))
            except OSError:
                continue  # a port of the run is taken: try another start
            finally:
                for s in held:
                    s.close()
            taken |= run
            starts.append(p)
            break
        else:
            raise AssertionError(f"found no {n} consecutive free ports on 127.0.0.1")
    return starts


def child_setup():
    # A test runner started in the background may ignore SIGINT, and bash cannot
    # trap a signal ignored on entry: give the script the default disposition.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    dc.die_with_parent()


def group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


class QuickstartServeTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="wf_quickstart_test_")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.output = []
        self.lines = queue.Queue()
        self.proc = None
        self.addCleanup(self.kill_leftovers)

    def kill_leftovers(self):
        if self.proc is None:
            return
        if group_alive(self.proc.pid):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(timeout=STOP_TIMEOUT)
        self.proc.stdout.close()

    def start(self, args):
        env = dict(os.environ, TMPDIR=self.tmp)
        self.proc = subprocess.Popen(["bash", SCRIPT, "--build-dir", ARGS.build_dir, "--model", ARGS.model] + args,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env, cwd=self.tmp, start_new_session=True,
                                     preexec_fn=child_setup)
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        for line in self.proc.stdout:
            self.output.append(line.rstrip("\n"))
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def transcript(self):
        return "\n".join(self.output[-60:])

    def wait_for_line(self, predicate, what, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.fail(f"no {what} within {timeout} s:\n{self.transcript()}")
            if line is None:
                self.fail(f"quickstart.sh exited ({self.proc.wait(timeout=STOP_TIMEOUT)}) before {what}:\n"
                          f"{self.transcript()}")
            if predicate(line):
                return line

    def run_printed(self, line):
        """Runs a printed command exactly as a user pasting it would; returns its parsed JSON output."""
        result = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=CURL_TIMEOUT,
                                stdin=subprocess.DEVNULL)
        self.assertEqual(result.returncode, 0, f"{line}\n{result.stderr}")
        try:
            return json.loads(result.stdout)
        except json.JSONDecodeError:
            self.fail(f"{line}: not JSON: {result.stdout[:500]!r}")

    def test_serves_prints_curl_and_stops_on_sigint(self):
        # Two workers: worker i listens on worker_port + i, metrics_port + i.
        worker_port, metrics_port, http_port, grpc_port = free_port_runs([2, 2, 1, 1])
        self.start(["--workers", "2", "--http-port", str(http_port), "--grpc-port", str(grpc_port),
                    "--worker-port", str(worker_port), "--metrics-port", str(metrics_port)])
        chat = self.wait_for_line(lambda l: l.startswith("curl ") and "/v1/chat/completions" in l,
                                  "printed /v1/chat/completions curl line", READY_TIMEOUT)
        llama = self.wait_for_line(lambda l: l.startswith("curl ") and "/completion " in l,
                                   "printed /completion curl line", READY_TIMEOUT)
        self.wait_for_line(lambda l: "Ctrl-C" in l, "Ctrl-C hint", READY_TIMEOUT)
        self.assertIn(f"http://127.0.0.1:{http_port}/", chat)

        reply = self.run_printed(chat)
        self.assertEqual(reply.get("object"), "chat.completion", reply)
        message = reply["choices"][0]["message"]
        self.assertEqual(message["role"], "assistant")
        self.assertIsInstance(message["content"], str)
        self.assertGreater(reply["usage"]["completion_tokens"], 0)
        self.assertIn(reply["choices"][0]["finish_reason"], ("length", "stop"))
        completion = self.run_printed(llama)
        self.assertIsInstance(completion.get("content"), str, completion)
        self.assertGreater(completion["tokens_predicted"], 0)
        self.assertIsNone(self.proc.poll(), "quickstart.sh stays in the foreground while serving")

        log_dirs = [d for d in os.listdir(self.tmp) if d.startswith("wf-quickstart.")]
        self.assertEqual(len(log_dirs), 1, os.listdir(self.tmp))
        self.proc.send_signal(signal.SIGINT)  # the script only, as a Ctrl-C that reached just the shell
        try:
            status = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail(f"quickstart.sh still running {STOP_TIMEOUT} s after SIGINT:\n{self.transcript()}")
        self.assertEqual(status, 0, self.transcript())
        deadline = time.monotonic() + STOP_TIMEOUT
        while group_alive(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertFalse(group_alive(self.proc.pid), "a worker or router outlived quickstart.sh")
        self.assertEqual([d for d in os.listdir(self.tmp) if d.startswith("wf-quickstart.")], [],
                         "the log directory is removed on exit")
        self.wait_for_line(lambda l: l.startswith("quickstart: stopped"), "'stopped' line", STOP_TIMEOUT)

    def test_no_serve_runs_one_completion_and_exits(self):
        self.start(["--no-serve"])
        try:
            status = self.proc.wait(timeout=READY_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail(f"quickstart.sh --no-serve still running after {READY_TIMEOUT} s")
        self.wait_for_line(lambda l: l.startswith("Model ready: "), "'Model ready' line", STOP_TIMEOUT)
        self.assertEqual(status, 0, self.transcript())
        self.assertFalse(any(line.startswith("curl ") for line in self.output), self.transcript())

    def test_rejects_a_bad_option(self):
        self.start(["--workers", "0"])
        self.assertEqual(self.proc.wait(timeout=STOP_TIMEOUT), 2)
        self.wait_for_line(lambda l: "--workers must be at least 1" in l, "the usage error", STOP_TIMEOUT)


def main():
    global ARGS
    golden_dir = os.environ.get("WF_GOLDEN_DIR") or os.path.join(dc.REPO_ROOT, "..", "shared", "golden")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build-dir", required=True)
    parser.add_argument("--model", default=os.path.join(golden_dir, "bitnet-synth-h256-l4.gguf"))
    ARGS, rest = parser.parse_known_args()
    if not shutil.which("curl"):
        print("SKIP: no curl (scripts/install_deps.sh installs it)", file=sys.stderr)
        return 77
    ARGS.build_dir = os.path.abspath(ARGS.build_dir)
    for rel in ("worker/wf_worker", "router/wf_router", "converter/wf_convert"):
        path = os.path.join(ARGS.build_dir, rel)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            print(f"FAIL: {path}: no such executable; build it first: ninja -C {ARGS.build_dir} "
                  f"{os.path.basename(rel)}", file=sys.stderr)
            return 2
    ARGS.model = os.path.abspath(ARGS.model)
    if not os.path.isfile(ARGS.model):
        print(f"FAIL: --model {ARGS.model} does not exist", file=sys.stderr)
        return 2
    program = unittest.main(argv=[sys.argv[0]] + rest, exit=False, verbosity=2)
    return 0 if program.result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
