"""Shared helpers of the deploy tests: binaries' --help, fixed endpoints, child processes."""

import os
import re
import signal
import subprocess

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(REPO_ROOT, "deploy")

# What the router serves on its HTTP port besides the OpenAI API (`wf_router --help`).
ROUTER_HTTP_PATHS = {"/health", "/ready", "/metrics"}
# What the worker serves: gRPC health services on its --port.
WORKER_HEALTH_SERVICES = {"", "wrinklefree.v1.Worker"}

FLAG_RE = re.compile(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*)")


class Help:
    """One binary's --help: its flags and its text (env vars are named in the text)."""

    def __init__(self, name, text):
        self.name = name
        self.text = text
        self.flags = set(FLAG_RE.findall(text))

    def has_env(self, var):
        return re.search(r"(?<![A-Z0-9_])" + re.escape(var) + r"(?![A-Z0-9_])", self.text) is not None


def binary_help(path, timeout=30):
    """Runs `path --help` and returns a Help; AssertionError naming the problem otherwise."""
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise AssertionError(f"{path}: no such executable (build it first)")
    result = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    text = result.stdout + result.stderr
    if result.returncode != 0 or "--" not in text:
        raise AssertionError(f"{path} --help exited {result.returncode}: {text[-500:]!r}")
    return Help(os.path.basename(path), text)


def router_help(router_path):
    """The router's --help; AssertionError naming the fix when the binary is missing."""
    if not router_path:
        raise AssertionError("no --router given: pass BUILD/router/wf_router (ninja -C BUILD_DIR wf_router)")
    if not (os.path.isfile(router_path) and os.access(router_path, os.X_OK)):
        raise AssertionError(f"{router_path}: no such executable; build it first: ninja -C BUILD_DIR wf_router")
    return binary_help(router_path)


def flag_name(arg):
    """'--port=50051' -> '--port'; None for a non-flag argument."""
    if not arg.startswith("--"):
        return None
    return arg.split("=", 1)[0]


def die_with_parent():
    """preexec_fn: the child gets SIGKILL if the test process dies (e.g. a CTest timeout)."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def stop_process(proc, timeout=15):
    """SIGTERM, then SIGKILL if it lingers; returns the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    return proc.returncode
